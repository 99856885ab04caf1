"""Block-circulant vs ADMM pruning vs both, at equal stored bits (issue #19).

    python benchmarks/circulant_vs_admm.py [--quick] [--seeds N] [--simulate] [--shared ../shared/data]

Models: a 64-96-48-10 MLP trained on scikit-learn's digits (the bundled split) and, without --quick, LeNet-5 trained
on 5,000 images of the MNIST test set in ../shared/data (the other 5,000 are its test split).
The compressed layers are the same for every method: the hidden dense layers, and LeNet-5's
conv2 (its conv1 has one input channel, and the classifier layer stays dense everywhere).

Methods, each compiled by `mpc compile` (canonicalize, the method, lower; 8-bit weights):
  dense       no compression: the reference design
  circulant   block size B (MLP 8, LeNet-5 4): one length-B vector per B x B block, 1/B of the
              weights, retrained in the structure (the circulant pass's defaults)
  admm        ADMM pruning (irregular, the admm pass's defaults) to the sparsity whose sparse-
              engine ROM (values + delta-coded indices) matches circulant's stored bits
  both        block size B/2 with half of each layer's blocks pruned whole (`prune_blocks`):
              the same number of stored integers as circulant at B, plus one bit per block

"stored bits" counts what a compressed layer must keep: circulant, the defining integers
(8 bits each) and, with pruned blocks, a one-bit-per-block map; admm, its sparse ROM (values,
indices and padding, as compiled). "weight ROM" is what the compiled design holds for all its
layers: a circulant layer's FFT engine stores its weight *spectra* (B/2 + 1 complex words of
16-bit parts per block), so its ROM is larger than its stored integers. Cycles per inference
and multipliers are the compiled design's (simulated with --simulate, else the timing model),
energy the report's model (pJ per inference, docs/report.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.datasets import (
    MlpRecipe,
    load_mnist,
    make_lenet5,
    member_split,
    train_onnx_mlp,
    train_onnx_model,
)

METHODS = ("dense", "circulant", "admm", "both")
WEIGHT_BITS = 8
INDEX_BITS_GUESS = 4  # delta-coded column index per stored nonzero: the first guess, then measured


def _layers(model: Path) -> tuple[list[str], list[str]]:
    """(compressed layer names, the others): every dense layer but the last and every conv with
    at least 2 input channels are compressed."""
    from compiler.frontend.onnx import load_onnx

    graph = load_onnx(model)
    nodes = graph.weighted_nodes(include_conv=True)
    compressed = [n.name for n in nodes[:-1] if graph.params[n.inputs[1]].shape[1] >= 2]
    return compressed, [n.name for n in nodes if n.name not in compressed]


def _toml_layers(section: str, names: list[str], body: str) -> str:
    return "".join(f"[{section}.layers.{json.dumps(n)}]\n{body}\n" for n in names)


def recipe_text(method: str, block: int, compressed: list[str], others: list[str], sparsity: float, mult: int) -> str:
    """The recipe of one method; `others` are the weighted layers it leaves dense."""
    plan = f"[plan]\nmultipliers = {mult}\n"
    if method == "dense":
        return f'passes = ["canonicalize", "lower"]\n{plan}'
    if method in ("circulant", "both"):
        b = block if method == "circulant" else block // 2
        prune = "prune_blocks = 0.5\n" if method == "both" else ""
        return (
            'passes = ["canonicalize", "circulant", "lower"]\n[circulant]\nblock_size = 1\n'
            + _toml_layers("circulant", compressed, f"block_size = {b}\n{prune}")
            + plan
        )
    return (
        f'passes = ["canonicalize", "admm", "lower"]\n[admm]\nsparsity = {sparsity:.4f}\n'
        + _toml_layers("admm", others, "sparsity = 0.0")
        + plan
    )


def stored_bits(out: Path, report: dict, compressed: list[str]) -> int:
    """What the compressed layers keep (see the module docstring)."""
    from compiler.ir import Graph

    graph = Graph.load(out)
    total = 0
    for layer in report["layers"]:
        if layer["name"] not in compressed:
            continue
        node = graph.node(layer["name"])
        circ = node.attrs.get("circulant")
        if circ is None:
            total += int(layer["weight_bits"])  # dense or sparse engine: its ROM as compiled
            continue
        b = int(circ["block"])
        w = graph.params[node.inputs[1]]
        blocks = _nonzero_blocks(w, b)
        total += blocks.sum() * b * layer["bits"] + (blocks.size if not blocks.all() else 0)
    return int(total)


def _nonzero_blocks(w: np.ndarray, b: int) -> np.ndarray:
    """[p, q] (over kernel positions too): whether block (i, j) holds any nonzero weight."""
    n_out, n_in = w.shape[:2]
    p, q = -(-n_out // b), -(-n_in // b)
    padded = np.zeros((p * b, q * b) + w.shape[2:], dtype=w.dtype)
    padded[:n_out, :n_in] = w
    blocks = padded.reshape(p, b, q, b, -1)
    return np.abs(blocks).sum(axis=(1, 3, 4)) > 0


def compile_method(model: Path, data: Path, out: Path, text: str, seed: int) -> dict:
    from compiler import api
    from compiler.report.compare import load_build

    recipe = out.with_suffix(".toml")
    recipe.write_text(text)
    start = time.perf_counter()
    report = api.compile(
        model, data, out, recipe=recipe, seed=seed, force=True, log=lambda *_: None, progress=False, synth_timeout=None
    )
    return load_build(out) | {"seconds": time.perf_counter() - start, "report": report}


def run_model(name, model, data, block, seed, mult, work: Path, simulate: bool) -> dict[str, dict]:
    compressed, others = _layers(model)
    rows: dict[str, dict] = {}
    for method in METHODS:
        out = work / f"{name}-s{seed}-{method}"
        if method == "admm":
            target = rows["circulant"]["stored_bits"]
            row = _admm_at(target, rows["dense"], model, data, out, block, (compressed, others), seed, mult)
        else:
            row = compile_method(model, data, out, recipe_text(method, block, compressed, others, 0.0, mult), seed)
            row["stored_bits"] = stored_bits(out, row["report"], compressed) if method != "dense" else None
        if simulate:
            sim = api_simulate(out)
            row["cycles"], row["cycles_source"], row["mismatches"] = (
                sim["cycles_per_inference"],
                "sim",
                sim["mismatches"],
            )
        rows[method] = row
        print(f"  {name} seed {seed} {method}: {row['compiled_accuracy']:.4f} ({row['seconds']:.0f} s)", flush=True)
    return rows


def _admm_at(target: int, dense: dict, model, data, out: Path, block: int, layers, seed: int, mult: int) -> dict:
    """ADMM at the sparsity whose stored bits (sparse ROM) match `target`: a first guess at
    WEIGHT_BITS + INDEX_BITS_GUESS bits per nonzero, then one correction at the measured bits
    per nonzero if the first is more than 10% off."""
    compressed, others = layers
    weights = sum(
        int(np.prod(layer["original_shape"])) for layer in dense["report"]["layers"] if layer["name"] in compressed
    )
    per_entry = WEIGHT_BITS + INDEX_BITS_GUESS
    for _ in range(2):
        sparsity = 1.0 - target / (weights * per_entry)
        row = compile_method(model, data, out, recipe_text("admm", block, compressed, others, sparsity, mult), seed)
        row |= {"sparsity": sparsity, "stored_bits": stored_bits(out, row["report"], compressed)}
        if abs(row["stored_bits"] - target) <= 0.1 * target:
            break
        per_entry = row["stored_bits"] / max(1, _nonzeros(row["report"], compressed))
    return row


def _nonzeros(report: dict, compressed: list[str]) -> int:
    return sum(
        round(np.prod(layer["original_shape"]) * (1 - layer["sparsity"]))
        for layer in report["layers"]
        if layer["name"] in compressed
    )


def api_simulate(out: Path) -> dict:
    from compiler import api

    return api.simulate(out, samples=8, log=lambda *_: None)


def print_table(name: str, block: int, runs: list[dict[str, dict]]) -> None:
    print(f"\n### {name} (B = {block}; median over {len(runs)} seed(s))\n")
    print(
        "| method | float acc | compiled acc | drop (pt) | stored bits | weight ROM bits | multipliers | "
        "cycles/inference | energy (pJ) | sim mismatches |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for method in METHODS:
        rows = [r[method] for r in runs]

        def med(key, rows=rows):
            values = [r[key] for r in rows if r.get(key) is not None]
            return statistics.median(values) if values else None

        drop = statistics.median((r["float_accuracy"] - r["compiled_accuracy"]) * 100 for r in rows)
        stored = med("stored_bits")
        label = method if method != "admm" else f"admm {med('sparsity'):.1%}"
        print(
            f"| {label} | {med('float_accuracy'):.4f} | {med('compiled_accuracy'):.4f} | {drop:+.2f} | "
            f"{'—' if stored is None else f'{stored:,.0f}'} | {med('weight_bits'):,.0f} | "
            f"{rows[0]['report']['hardware']['multipliers']} | {med('cycles'):,.0f} ({rows[0]['cycles_source']}) | "
            f"{med('energy_compiled_pj'):,.0f} | {_mismatches(rows)} |"
        )


def _mismatches(rows: list[dict]) -> str:
    """Mismatches against the golden executor over every simulated seed ("—" if not simulated)."""
    counts = [r["mismatches"] for r in rows if "mismatches" in r]
    return f"{sum(counts)} of {8 * len(counts)} samples" if counts else "—"


def _digits(work: Path, seed: int) -> tuple[Path, Path]:
    """The bundled example's split of scikit-learn's digits (examples/digits.npz: 898 training
    rows, 899 test rows), as a new user would start."""
    with np.load(ROOT / "examples" / "digits.npz") as f:
        data = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    return train_onnx_mlp(data, work, f"digits-mlp-s{seed}", MlpRecipe(hidden=(96, 48), epochs=60, seed=seed))


def _lenet(work: Path, seed: int, shared: Path) -> tuple[Path, Path]:
    x, y = load_mnist(shared)
    data = member_split(x[:, None], y, 5000, 5000, seed=0)
    return train_onnx_model(make_lenet5, data, work, f"lenet5-s{seed}", MlpRecipe(epochs=8, seed=seed))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the digits MLP only")
    ap.add_argument("--lenet-only", action="store_true", help="LeNet-5 only")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per model (the table shows medians)")
    ap.add_argument("--multipliers", type=int, default=16, help="[plan] multipliers of every design")
    ap.add_argument("--simulate", action="store_true", help="simulate each design (Icarus, 8 samples)")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="mpc-circ-admm-"))
    models = [] if args.lenet_only else [("digits MLP 64-96-48-10", 8, lambda s: _digits(work, s))]
    if not args.quick:
        models.append(("LeNet-5 / MNIST", 4, lambda s: _lenet(work, s, args.shared)))
    for name, block, make in models:
        runs = []
        for seed in range(args.seeds):
            model, data = make(seed)
            runs.append(run_model(name.split()[0], model, data, block, seed, args.multipliers, work, args.simulate))
        print_table(name, block, runs)
    print(f"\n(work files in {work})")


if __name__ == "__main__":
    main()
