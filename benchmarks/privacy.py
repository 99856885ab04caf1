"""Membership-inference leakage of compressed models: one table per data set.

    python benchmarks/privacy.py [--quick] [--data-root ../shared/data] [--json results.json]
    python benchmarks/privacy.py --lira-timing        # LiRA, 16 shadows, on examples/digits_mlp.onnx

For each data set a target MLP is trained (torch, Adam, no regularization) on a small member set
so that it overfits measurably, exported to ONNX, and compiled once per row; each row's model is
audited with the loss-threshold, shadow-model (Shokri) and LiRA-online attacks. All rows of a
data set share one set of shadow models (same architecture, pool and seed; see docs/audit.md).

A row is (name, recipe, target): the recipe is what `mpc compile --recipe` takes (a dict written
as TOML), the target which model(s) of the build are attacked, one table line each: "float" = the
float model the flow hands to `lower` (the compressed or defended float weights; the canonicalized
import for a flow without such a pass), "compiled" = the integer model's exact outputs (golden executor),
"original" = the float import, or any checkpoint name. Every compressed row is measured as float
and as compiled integer model from one build. Rows whose passes are not registered yet are
skipped with a note, so rows for passes still being written can be listed now.

Compression rows share one budget: 80% of every layer's weights pruned (the classifier layer
included) with 60 epochs of training from the target's weights (magnitude: 60 epochs of masked
retraining; ADMM and privacy-aware ADMM: 30 ADMM + 30 masked retraining; prune+quantize adds
30 + 30 for the 4-bit phase); circulant: block size 8 on the hidden layers, 60 epochs; Min-Max:
20 epochs, lambda 3. The table's "kept" column is the stored weights as a share of the dense
model's (nonzeros for pruned layers, one vector per block for circulant ones).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.datasets import (
    MlpRecipe,
    default_data_root,
    load_digits,
    load_location,
    load_mnist,
    member_split,
    train_onnx_mlp,
)
from compiler import api
from compiler.audit.targets import checkpoint_names, load_target
from compiler.build import open_build
from compiler.exec.train import TrainConfig
from compiler.passes.base import REGISTRY

ATTACKS = {"loss": "loss_threshold", "shadow": "shadow", "LiRA": "lira_online"}


@dataclass
class Row:
    name: str
    recipe: dict = field(default_factory=dict)  # {} = the target's default flow
    target: str | tuple[str, ...] = ("float", "compiled")

    @property
    def targets(self) -> tuple[str, ...]:
        return (self.target,) if isinstance(self.target, str) else tuple(self.target)


def middle_flow(middle: str, **options) -> dict:
    """canonicalize, the pass `middle` with `options`, lower: a recipe of one compression or defense."""
    return {"passes": ["canonicalize", middle, "lower"], middle: options}


ADMM_BUDGET = {"admm_epochs": 30, "retrain_epochs": 30}
ROWS = [
    Row("no compression", {"passes": ["canonicalize", "lower"]}, target=("original", "compiled")),
    Row("magnitude pruning 80%", middle_flow("magnitude_prune", sparsity=0.8, epochs=60)),
    Row("ADMM pruning 80%", middle_flow("admm", sparsity=0.8, **ADMM_BUDGET)),
    Row("ADMM 80% + 4-bit weights", middle_flow("admm", sparsity=0.8, bits=4, **ADMM_BUDGET)),
    Row("circulant b=8 (hidden layers)", middle_flow("circulant", block_size=8, epochs=60)),
    Row("Min-Max (lambda 3)", middle_flow("minmax", lambda_=3.0, epochs=20)),
    Row("privacy-aware ADMM 80% (lambda 3)", middle_flow("privacy_admm", sparsity=0.8, lambda_=3.0, **ADMM_BUDGET)),
]


@dataclass
class DataSpec:
    name: str
    load: Callable[[Path], tuple[np.ndarray, np.ndarray]]
    members: int
    non_members: int
    mlp: MlpRecipe


def data_specs(quick: bool) -> list[DataSpec]:
    scale = 0.5 if quick else 1.0
    return [
        DataSpec("digits (sklearn)", lambda root: load_digits(), 500, 500, MlpRecipe(hidden=(128,), epochs=100)),
        DataSpec(
            "Location (Bangkok)",
            load_location,
            int(2000 * scale),
            int(2000 * scale),
            MlpRecipe(hidden=(128,), epochs=60),
        ),
        DataSpec(
            "MNIST (test set)", load_mnist, int(2000 * scale), int(2000 * scale), MlpRecipe(hidden=(128,), epochs=60)
        ),
    ]


def missing_passes(row: Row) -> list[str]:
    named = list(row.recipe.get("passes", [])) + [k for k in row.recipe if k != "passes"]
    return [p for p in dict.fromkeys(named) if p not in REGISTRY]


def to_toml(recipe: dict) -> str:
    """The small TOML subset recipes use: top-level values, then one table per pass."""

    def value(v):
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = [f"{k} = {value(v)}" for k, v in recipe.items() if not isinstance(v, dict)]
    for table, options in ((k, v) for k, v in recipe.items() if isinstance(v, dict)):
        lines += ["", f"[{table}]"] + [f"{k} = {value(v)}" for k, v in options.items()]
    return "\n".join(lines) + "\n"


def compile_row(row: Row, model: Path, data: Path, work: Path, index: int) -> Path:
    recipe = None
    if row.recipe:
        recipe = work / f"row{index}.toml"
        recipe.write_text(to_toml(row.recipe))
    out = work / f"build{index}"
    api.compile(model, data, out, recipe=recipe, force=True, log=lambda *_: None, progress=False, synth_timeout=None)
    return out


def run_data_set(spec: DataSpec, root: Path, shadows: int, work: Path, seed: int) -> dict:
    x, y = spec.load(root)
    split = member_split(x, y, spec.members, spec.non_members, seed=seed)
    model, data = train_onnx_mlp(split, work, "target", spec.mlp, n_classes=int(y.max()) + 1)
    training = TrainConfig(epochs=spec.mlp.epochs, lr=spec.mlp.lr, batch_size=spec.mlp.batch_size)
    cache: dict = {}
    rows = []
    for index, row in enumerate(ROWS):
        missing = missing_passes(row)
        if missing:
            print(f"  note: row '{row.name}' skipped: pass(es) {', '.join(missing)} not registered")
            continue
        start = time.perf_counter()
        try:
            out = compile_row(row, model, data, work, index)
        except api.MpcError as e:
            print(f"  note: row '{row.name}' skipped: compile failed: {e}")
            continue
        names = {t: resolve_target(out, t) for t in row.targets}
        audit = api.audit(
            out,
            attacks=list(ATTACKS.values()),
            targets=list(dict.fromkeys(names.values())),
            shadows=shadows,
            seed=seed,
            shadow_training=training,
            shadow_cache=cache,
            log=lambda *_: None,
            progress=False,
        )
        seconds = round(time.perf_counter() - start, 1)
        for label, name in names.items():
            target = audit["targets"][name]
            rows.append(
                {
                    "row": row.name,
                    "target": label,
                    "model": name,
                    "kind": target["kind"],
                    "recipe": row.recipe,
                    "kept_weights": kept_weights(out, name),
                    "test_accuracy": target["test_accuracy"],
                    "train_accuracy": target["train_accuracy"],
                    "attacks": {a: target["attacks"][attack] for a, attack in ATTACKS.items()},
                    "seconds": seconds,
                }
            )
        print(f"  {row.name}: done in {seconds} s")
    return {
        "data_set": spec.name,
        "members": spec.members,
        "non_members": spec.non_members,
        "mlp": {
            "hidden": list(spec.mlp.hidden),
            "epochs": spec.mlp.epochs,
            "lr": spec.mlp.lr,
            "batch_size": spec.mlp.batch_size,
        },
        "shadows": shadows,
        "seed": seed,
        "rows": rows,
    }


def resolve_target(out: Path, target: str) -> str:
    """ "float": the last float checkpoint before `lower` (the flow's compressed float model)."""
    if target != "float":
        return target
    floats = [n for n in checkpoint_names(open_build(out, checkpoints=True)) if not n.endswith("-lower")]
    return floats[-1]


def kept_weights(out: Path, target: str) -> float:
    """Stored weights over the dense model's: nonzeros, or one length-b vector per circulant block."""
    graph = load_target(open_build(out, checkpoints=True), target).graph
    stored = dense = 0
    for node in graph.weighted_nodes():
        w = graph.params[node.inputs[1]]
        dense += w.size
        info = node.annotations.get("circulant")
        stored += info["stored_weights"] if info else int(np.count_nonzero(w))
    return stored / dense


def _fmt(v, pct=True) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def render(result: dict) -> str:
    mlp = result["mlp"]
    head = (
        f"### {result['data_set']}: {result['members']} members / {result['non_members']} non-members, "
        f"MLP {'-'.join(map(str, mlp['hidden']))} hidden, {mlp['epochs']} epochs (Adam, lr {mlp['lr']}), "
        f"{result['shadows']} shadow models"
    )
    cols = " | ".join(f"{a} acc | {a} AUC | {a} TPR@0.1%" for a in ATTACKS)
    lines = [
        head,
        "",
        f"| model | weights | kept | train acc | test acc | {cols} |",
        "|---" * (5 + 3 * len(ATTACKS)) + "|",
    ]
    for r in result["rows"]:
        cells = " | ".join(
            f"{_fmt(m['balanced_accuracy'])} | {_fmt(m['auc'], pct=False)} | {_fmt(m['tpr_at_0_1pct_fpr'])}"
            for m in r["attacks"].values()
        )
        lines.append(
            f"| {r['row']} | {r['kind']} ({r['model']}) | {_fmt(r['kept_weights'])} | "
            f"{_fmt(r['train_accuracy'])} | {_fmt(r['test_accuracy'])} | {cells} |"
        )
    n = min(result["members"], result["non_members"])
    if n < 1000:
        lines += ["", f"n/a: an FPR of 0.1% is not resolvable with {n} non-members (needs 1,000)."]
    lines += ["", "Recipes (epochs are training epochs from the target's weights; unlisted options at their defaults):"]
    for name, recipe in dict((r["row"], r["recipe"]) for r in result["rows"]).items():
        tables = "; ".join(
            f"[{k}] " + ", ".join(f"{o}={v}" for o, v in opts.items())
            for k, opts in recipe.items()
            if isinstance(opts, dict)
        )
        lines.append(
            f"- {name}: {' -> '.join(recipe.get('passes', ['default flow']))}" + (f"; {tables}" if tables else "")
        )
    return "\n".join(lines)


def lira_timing(work: Path, shadows: int = 16) -> dict:
    """Compile the bundled digits example and time `mpc audit --attacks lira --shadows 16`."""
    root = Path(__file__).resolve().parents[1] / "examples"
    out = work / "digits_example"
    api.compile(
        root / "digits_mlp.onnx",
        root / "digits.npz",
        out,
        force=True,
        log=lambda *_: None,
        progress=False,
        synth_timeout=None,
    )
    start = time.perf_counter()
    audit = api.audit(out, attacks="lira", shadows=shadows, log=lambda *_: None, progress=True)
    seconds = time.perf_counter() - start
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    aucs = {t: {a: m["auc"] for a, m in v["attacks"].items()} for t, v in audit["targets"].items()}
    print(
        f"LiRA, {shadows} shadows, digits example ({audit['n_members']} members / {audit['n_non_members']} "
        f"non-members): {seconds:.1f} s wall on {cores} core(s) (shadow training {audit['seconds']['shadows']} s); "
        f"AUC {aucs}"
    )
    return {"seconds": round(seconds, 1), "cores": cores, "shadows": shadows, "auc": aucs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4 shadows and half-size Location/MNIST sets")
    ap.add_argument(
        "--data-root",
        type=Path,
        default=default_data_root(),
        help="folder holding mnist/ and location/ (default: ../shared/data from the repo root)",
    )
    ap.add_argument("--shadows", type=int, help="shadow models per data set (default: 16, --quick: 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", help="comma-separated data set name prefixes (e.g. digits,MNIST)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--lira-timing", action="store_true", help="only time LiRA with 16 shadows on the digits example")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # these small MLPs train faster on one thread than on contending ones
    shadows = args.shadows or (4 if args.quick else 16)
    results = []
    with tempfile.TemporaryDirectory(prefix="mpc-privacy-") as tmp:
        if args.lira_timing:
            results.append(lira_timing(Path(tmp)))
        else:
            for spec in data_specs(args.quick):
                if args.only and not any(spec.name.lower().startswith(p.lower()) for p in args.only.split(",")):
                    continue
                print(f"{spec.name} ...")
                try:
                    work = Path(tmp) / spec.name.split()[0].lower()
                    work.mkdir()
                    results.append(run_data_set(spec, args.data_root, shadows, work, args.seed))
                except FileNotFoundError as e:
                    print(f"  note: {spec.name} skipped: {e} (set --data-root)")
            print()
            for result in results:
                print(render(result) + "\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
