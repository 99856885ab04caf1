"""The Python API, mirroring the CLI: `compile(...)`, `simulate(...)` and `audit(...)`.

With the pass manager, this is the only place that knows the whole flow:
frontend -> passes (checkpoint after each) -> integer ONNX + Verilog backends -> report.
The recipe is read and checked by compiler/recipe.py (`read_flow`); this module runs the flow it
returns. A build is written to a temporary folder beside OUT and moved into place only when
complete, so a failure never leaves a half-written OUT. Every error a user can act on is an
`MpcError` (compiler/errors.py), raised as it is: nothing here translates errors.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

import kernels
from compiler import passes  # noqa: F401  (registers every pass)
from compiler.build import BuildError
from compiler.data import Dataset, load_data
from compiler.errors import MpcError
from compiler.frontend.onnx import load_onnx
from compiler.ir import Graph
from compiler.outdir import (
    build_lock,
    check_target,
    handle_signals,
    place,
    record_files,
    record_folders,
    staging,
    write_error,
)
from compiler.passes.base import Context, PassError
from compiler.passes.manager import run_flow
from compiler.recipe import check_flow, read_flow

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
    return load_data(data, graph.inputs[0].shape, n_classes, layout=graph.meta.get("input_layout"))


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
                )
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


def simulate(out: str | Path, samples: int = 64, simulator: str = "icarus", log=print, serial: bool = False) -> dict:
    """Simulate OUT/rtl on the first `samples` test vectors against the golden executor.

    Writes OUT/sim.json and adds the measured cycles to OUT/report.json/.md. Returns the sim
    result; `result["mismatches"] > 0` means the hardware is not bit-exact. `serial`: simulate
    the board top instead (rtl/serial_top.v through its UART pins, sim/test_serial_top.py) and
    write OUT/sim_serial.json; the report is left as it is."""
    from compiler.build import BuildError, open_build
    from compiler.report.report import set_cycles, write_report
    from sim.runner import SimulationError, run_cocotb

    out = Path(out).resolve()  # the simulator runs in its own folder: hand it absolute paths
    try:  # every file read is checked: a damaged one is named, with "recompile"
        build = open_build(out, rtl=True, vectors=True)
    except BuildError as e:
        raise MpcError(str(e)) from None
    graph, design, report = build.graph, build.design or {}, build.report
    assert build.x_q is not None
    if simulator not in ("icarus", "verilator"):
        raise MpcError(f"unknown simulator {simulator!r} (icarus or verilator)")
    available = len(build.x_q)
    if not 1 <= samples <= available:
        raise MpcError(f"--samples must be in 1..{available} (the build holds {available} test vectors)")
    x_q = build.x_q[:samples].astype(np.int64)
    if serial:
        return _simulate_serial(out, build, x_q, simulator, log)
    work = out / "sim_build" / simulator
    record_folders(out, [work])  # the build's manifest: mpc's own, before anything is written there
    stimulus = _write_stimulus(work, out, graph, design, x_q)
    log(f"simulating {samples} samples with {simulator} ...")
    start = time.perf_counter()
    result_path = work / "result.json"
    try:
        run = run_cocotb(
            [out / "rtl" / s for s in design["sources"]],
            design["top"],
            "test_design",
            work,
            simulator=simulator,
            extra_env={"MPC_STIMULUS": str(stimulus), "MPC_SIM_RESULT": str(result_path)},
        )
    except SimulationError as e:
        raise MpcError(str(e)) from None
    if not result_path.exists():
        raise MpcError(f"the {simulator} simulation ended without a result (see {work / 'sim.log'})")
    sim = json.loads(result_path.read_text())
    result = {
        "simulator": simulator,
        "samples": samples,
        "mismatches": sim["mismatches"],
        "cycles_per_inference": sim["latency_first_sample"],  # one inference, empty pipeline
        "initiation_interval": sim.get("initiation_interval"),  # steady state, back to back
        "mean_latency_streaming": sim["cycles_per_inference"],
        "first_mismatches": sim.get("first_mismatches", []),
        "error": sim.get("error"),  # the testbench broke off
        "wall_seconds": round(time.perf_counter() - start, 2),  # build + run
        "run_seconds": _simulation_seconds(run["results_xml"]),
    }  # the testbench alone
    (out / "sim.json").write_text(json.dumps(result, indent=1))
    report["simulation"] = result
    if result["cycles_per_inference"] is not None:
        set_cycles(report["hardware"], result["cycles_per_inference"], "simulation", result["initiation_interval"])
    write_report(report, out)
    record_files(out, ["sim.json", "report.json", "report.md"])
    return result


SERIAL_SIM_PARAMETERS = {"CLKS_PER_BIT": 8, "IDLE_BITS": 64}  # a short line in simulation


def _simulate_serial(out: Path, build, x_q: np.ndarray, simulator: str, log) -> dict:
    """`simulate(serial=True)`: the design's serial_top (design.json) driven through rx/tx."""
    from compiler.build import serial_top
    from sim.runner import SimulationError, run_cocotb

    try:
        entry = serial_top(build)
    except BuildError as e:
        raise MpcError(str(e)) from None
    work = out / "sim_build" / f"serial_{simulator}"
    record_folders(out, [work])
    stimulus = _write_stimulus(work, out, build.graph, build.design, x_q)
    params = entry["parameters"] | SERIAL_SIM_PARAMETERS
    log(f"simulating {len(x_q)} samples through the serial top with {simulator} ...")
    start, result_path = time.perf_counter(), work / "result.json"
    env = {
        "MPC_STIMULUS": str(stimulus),
        "MPC_SIM_RESULT": str(result_path),
        "MPC_SERIAL_PARAMETERS": json.dumps(params),
    }
    try:
        run = run_cocotb(
            [out / "rtl" / s for s in entry["sources"]], entry["module"], "test_serial_top", work,
            simulator=simulator, parameters=params, extra_env=env,
        )  # fmt: skip
    except SimulationError as e:
        raise MpcError(str(e)) from None
    if not result_path.exists():
        raise MpcError(f"the {simulator} simulation ended without a result (see {work / 'sim.log'})")
    sim = json.loads(result_path.read_text())
    keys = ("mismatches", "first_mismatches", "error", "clks_per_bit", "window", "bytes_in", "bytes_out")
    result = {"simulator": simulator, "samples": len(x_q), "top": entry["module"]} | {k: sim.get(k) for k in keys}
    result |= {
        "latency_first_vector": sim.get("latency_first_vector"),  # cycles, first byte in -> last byte out
        "cycles_per_vector": sim.get("cycles_per_vector"),  # back to back, the host's window full
        "wall_seconds": round(time.perf_counter() - start, 2),
        "run_seconds": _simulation_seconds(run["results_xml"]),
    }
    (out / "sim_serial.json").write_text(json.dumps(result, indent=1))
    record_files(out, ["sim_serial.json"])
    return result


def simulate_design(
    out: Path,
    work: Path,
    graph: Graph,
    design: dict,
    x_q: np.ndarray,
    roms: dict,
    simulator: str = "icarus",
    expect_fault: bool = False,
) -> dict:
    """The design of OUT simulated in `work` (mpc's own folder) with some ROM files replaced
    (`roms`: {file: (codewords, width)}) against the golden executor on `graph`, accumulators
    wrapped as the registers hold them (the bit-flip audit's flipped designs). The bench's
    summary (sim/test_design.py), with its `fault`; `expect_fault`: the bench checks only that
    the design raises fault (a detected ROM error), not its outputs."""
    from kernels.rom import write_mem
    from sim.runner import SimulationError, run_cocotb

    record_folders(out, [work])
    stimulus = _write_stimulus(work, out, graph, design, x_q, wrap=True)
    for name, (codes, width) in roms.items():
        write_mem(work / name, codes, width)  # codewords as they are: protection bits included
    result_path = work / "result.json"
    try:
        run_cocotb(
            [out / "rtl" / s for s in design["sources"]], design["top"], "test_design", work, simulator=simulator,
            extra_env={"MPC_STIMULUS": str(stimulus), "MPC_SIM_RESULT": str(result_path)}
            | ({"MPC_EXPECT_FAULT": "1"} if expect_fault else {}),
        )  # fmt: skip
    except SimulationError as e:
        if not result_path.exists():
            raise MpcError(str(e)) from None
    if not result_path.exists():
        raise MpcError(f"the {simulator} simulation ended without a result (see {work / 'sim.log'})")
    return json.loads(result_path.read_text())


def _write_stimulus(work: Path, out: Path, graph: Graph, design: dict, x_q: np.ndarray, wrap: bool = False) -> Path:
    """A fresh simulation folder: the ROM images ($readmemh resolves names from the simulator's
    folder) and the inputs with the golden executor's expected outputs."""
    from compiler.exec import golden

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for mem in (out / "rtl").glob("*.mem"):
        shutil.copy(mem, work / mem.name)
    expected = golden.run_integer(graph, x_q, wrap=wrap)
    stimulus = work / "stimulus.npz"
    np.savez(
        stimulus,
        x_q=stream_order(x_q, design),
        expected_logits=expected.logits_q,
        # what the design's argmax stage emits (for a binary classifier, whose class is its one
        # output against a threshold, that is index 0; the output itself is compared bit for bit)
        expected_argmax=kernels.argmax(expected.logits_q),
        in_bits=design["in_bits"],
        logit_bits=design["logit_bits"],
        n_classes=design["n_classes"],
    )
    return stimulus


def stream_order(x_q: np.ndarray, design: dict) -> np.ndarray:
    """[N, elements] in the order the design's input stream takes them: an image [N, C, H, W]
    channel-last (design.json "input_order": "hwc", for y, for x, for c), anything else row-major."""
    if design.get("input_order") == "hwc":
        x_q = x_q.reshape(len(x_q), *design["input_shape"]).transpose(0, 2, 3, 1)
    return x_q.reshape(len(x_q), -1)


def _simulation_seconds(results_xml: str) -> float | None:
    """Real time the testbench ran (cocotb's results.xml), without the simulator's build."""
    import xml.etree.ElementTree as ET

    case = ET.parse(results_xml).find(".//testcase")
    return None if case is None else float(case.get("time", "nan"))
