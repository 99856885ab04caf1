"""The Python API, mirroring the CLI: `compile(...)`, `simulate(...)` and `audit(...)`.

With the pass manager, this is the only place that knows the whole flow:
frontend -> passes (checkpoint after each) -> integer ONNX + Verilog backends -> report.
The recipe is read and checked by compiler/recipe.py (`read_flow`); this module runs the flow it
returns. A build is written to a temporary folder beside OUT and moved into place only when
complete, so a failure never leaves a half-written OUT. Every error a user can act on is an
`MpcError` (compiler/errors.py), raised as it is: nothing here translates errors.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from compiler import passes  # noqa: F401  (registers every pass)
from compiler.data import REGRESSION, Dataset, is_regression, load_data, regression_scores
from compiler.errors import MpcError
from compiler.frontend.onnx import load_onnx
from compiler.ir import Graph
from compiler.outdir import (
    build_lock,
    check_target,
    handle_signals,
    place,
    staging,
    write_error,
)
from compiler.passes.base import Context, PassError
from compiler.passes.manager import run_flow
from compiler.recipe import check_flow, read_flow
from compiler.simulate import simulate  # noqa: F401  (the public api.simulate)

MAX_TEST_VECTORS = 10_000


def compile(
    model: str | Path,
    data: str | Path | None,
    out: str | Path,
    target: str = "fpga",
    recipe: str | Path | None = None,
    seed: int = 0,
    force: bool = False,
    log=print,
    progress: bool = True,
    audit: bool = False,
    synth_timeout: float | None = 300.0,
    place_and_route: bool = True,
) -> dict:
    """Compile MODEL.onnx into OUT/; return the report (also in OUT/report.json).
    `synth_timeout`: seconds allowed to yosys synthesis (None: no synthesis).
    `place_and_route`: for an iCE40 target, place, route and pack the fitted design (docs/fpga.md).
    `audit`: run `audit(OUT)` with the default attacks as the last stage (needs data)."""
    out = Path(out)
    inputs = [("input model", model), ("data file", data), ("recipe", recipe)]
    check_target(out, force, inputs)  # checked again under the build lock
    if audit and data is None:
        raise MpcError("--audit needs --data DATA.npz (members and non-members)")
    with handle_signals():  # SIGTERM and SIGHUP end a build as Ctrl-C does: cleaned up
        graph, original = _load_model(Path(model))
        flow = read_flow(recipe, graph, target, Path(model))
        dataset = _load_dataset(data, graph)
        _record_task(graph, original, dataset)
        ctx = Context(data=dataset, recipe=flow.recipe, target=target, seed=seed, log=log, progress=progress)
        with build_lock(out):  # a second build into OUT fails at once; held through the audit
            check_target(out, force, inputs)
            report = _build(
                graph, ctx, flow.passes, Path(model), out, force, synth_timeout, original=original, pnr=place_and_route
            )
            if audit:
                report["privacy"] = _audit_stage(out, seed=seed, data=data, log=log, progress=progress)
    return report


def audit(out: str | Path, **options) -> dict:
    """Membership-inference audit of a build: writes OUT/audit.json, ROC plots and the report's
    "Membership inference" section. Options: see compiler/audit/run.py's `audit` (docs/audit.md);
    `workers`/`address` train the shadow models as Ray tasks (compiler/parallel.py)."""
    from compiler.audit.run import audit as run_audit

    return run_audit(out, **options)


def recipe_checker(model: str | Path, data: str | Path | None = None):
    """Load MODEL (and check DATA against it) once; return `check(recipe, target, where)`, which
    raises RecipeError for a recipe document `compile` would refuse, as `compile` words it."""
    model = Path(model)
    graph, _ = _load_model(model)
    _load_dataset(data, graph)

    def check(recipe: dict, target: str = "fpga", where: str = "recipe") -> None:
        check_flow(recipe, graph, target, where, model)

    return check


_audit_stage = audit  # compile's `audit` flag shadows the name inside compile()


def _load_dataset(data, graph: Graph) -> Dataset | None:
    if data is None:
        return None
    n_classes = int(np.prod(graph.outputs[0].shape))
    return load_data(
        data,
        graph.inputs[0].shape,
        n_classes,
        layout=graph.meta.get("input_layout"),
        output_shape=graph.outputs[0].shape,
    )


def _record_task(graph: Graph, original: Graph, data: Dataset | None) -> None:
    """The data's task into graph.meta["task"] where the flow starts: every pass copies meta, so
    every later stage (training, lower's measures, the report, simulate, the audit) reads it.
    Classification stays as it was (no key); a checkpoint keeps the task it was built with."""
    if data is not None and data.regression:
        for g in {id(graph): graph, id(original): original}.values():
            g.meta["task"] = REGRESSION


def _load_model(model: Path) -> tuple[Graph, Graph]:
    """(the graph the flow starts from, the original float model the report compares with).
    MODEL is an ONNX file, or a checkpoint folder of an earlier build (OUT/checkpoints/NN-<pass>),
    whose original is the `00-import` checkpoint beside it."""
    if not model.is_dir():
        graph = load_onnx(model)
        return graph, graph
    if not (model / "graph.json").is_file():
        raise MpcError(
            f"{model}: a folder, but not a checkpoint (no graph.json); give MODEL.onnx or OUT/checkpoints/NN-<pass>"
        )
    original_dir = model.parent / "00-import"
    if not (original_dir / "graph.json").is_file():
        raise MpcError(
            f"{model}: a checkpoint, but {original_dir} (the original model the report compares "
            "with) is missing; give a checkpoint folder of an mpc build"
        )
    return Graph.load(model), Graph.load(original_dir)


def _build(
    graph: Graph,
    ctx: Context,
    flow: list[str],
    model: Path,
    out: Path,
    force: bool,
    synth_timeout: float | None = None,
    original: Graph | None = None,
    pnr: bool = True,
) -> dict:
    from compiler.backends.onnx import save_onnx
    from compiler.exec import golden, predict_classes
    from compiler.fpga.flow import hardware
    from compiler.report.report import build_report, write_report

    with staging(out) as tmp:  # removed on any error or signal, unless placed as OUT
        try:
            start = time.perf_counter()
            original = original or graph
            compiled, records = run_flow(graph, flow, ctx, checkpoint_dir=tmp / "checkpoints", original=original)
            if not compiled.is_integer:
                raise PassError(f"the flow {flow} does not end in an integer graph: it must end with 'lower'")
            # Verilog, synthesis; for an iCE40 device the plan fitted to it, placed and routed
            compiled, design, synthesis, device = hardware(graph, flow, compiled, ctx, tmp, synth_timeout, pnr)
            compiled.save(tmp)
            save_onnx(compiled, tmp / "model.int.onnx")
            onnx_check = _check_onnx_against_golden(tmp / "model.int.onnx", compiled, ctx.data)
            if ctx.data is not None:
                x_q = golden.quantize_input(compiled, ctx.data.x_test[:MAX_TEST_VECTORS])
                np.savez_compressed(
                    tmp / "test_vectors.npz", x_q=x_q.astype(np.int8), y=ctx.data.y_test[:MAX_TEST_VECTORS]
                )  # a regression's y: its float target rows
            accuracy = {
                "float": _accuracy(original, ctx.data, predict_classes),
                "compiled": _accuracy(compiled, ctx.data, predict_classes),
            }
            report = build_report(
                original,
                compiled,
                design,
                records,
                accuracy,
                onnx_check,
                ctx,
                source=model,
                seconds=time.perf_counter() - start,
                synthesis=synthesis,
                device=device,
            )
            write_report(report, tmp)
            place(tmp, out, force)  # with the manifest; a previous build replaced only if mpc's
            ctx.log(f"wrote {out}/ (report.md, model.int.onnx, rtl/)")
            return report
        except OSError as e:  # ENOSPC, EACCES, EROFS, ENAMETOOLONG ...: one line naming the path
            raise MpcError(write_error(e, tmp, out)) from None


def _accuracy(graph: Graph, data: Dataset | None, predict_classes) -> dict:
    if data is None:
        return {"test_accuracy": None, "train_accuracy": None}
    if is_regression(graph):  # no classes: the outputs' MSE (and the anomaly AUC with a_test) instead
        from compiler.exec import predict_logits

        scores = regression_scores(predict_logits(graph, data.x_test), data, predict_logits(graph, data.x_train))
        return {"test_accuracy": None, "train_accuracy": None} | scores
    return {
        "test_accuracy": float((predict_classes(graph, data.x_test) == data.y_test).mean()),
        "train_accuracy": float((predict_classes(graph, data.x_train) == data.y_train).mean()),
    }


def _check_onnx_against_golden(path: Path, graph: Graph, data: Dataset | None) -> dict:
    """Run model.int.onnx in onnxruntime on all of x_test: its integers must equal golden's."""
    if data is None:
        return {"checked_samples": 0, "identical": None}
    import onnxruntime as ort

    from compiler.exec import golden

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_shape = graph.meta.get("source_input_shape") or graph.inputs[0].shape  # 1-D: [C, L], not [C, 1, L]
    x_onnx = data.x_test.reshape(len(data.x_test), *onnx_shape)
    if graph.meta.get("input_layout") == "nhwc":  # model.int.onnx takes the model's own NHWC layout
        x_onnx = np.ascontiguousarray(data.x_test.transpose(0, 2, 3, 1))
    _, logits_q, classes = session.run(None, {graph.inputs[0].name: x_onnx})
    ref = golden.run(graph, data.x_test)
    identical = bool(np.array_equal(logits_q, ref.logits_q) and np.array_equal(classes, ref.classes))
    if not identical:
        raise PassError(
            f"internal error: model.int.onnx differs from the golden executor on "
            f"{int((logits_q != ref.logits_q).any(axis=1).sum())} test samples"
        )
    return {"checked_samples": int(len(data.x_test)), "identical": identical}
