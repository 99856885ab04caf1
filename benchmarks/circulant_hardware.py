"""Block-circulant layers through the whole flow: accuracy vs block size, and what the FFT
engine costs in cycles and ROM against dense and sparse engines storing as many weights.

    python benchmarks/circulant_hardware.py [--quick] [--accuracy | --hardware] [--simulate]

(2) Accuracy vs block size (`--accuracy`): the circulant pass (its default retraining)
    on every dense layer but the last, then lower. Per block size b: weights stored in the
    circulant layers, test accuracy of the float circulant model, of the integer graph (the
    fixed-point FFT, what the hardware computes) and of the same integer graph with exact
    products in place of the FFTs (the FFT's accuracy cost), and per layer the largest
    accumulator error of the FFT on x_test in LSBs (`fft_error`, against |acc| up to ...).
    Models: the bundled digits MLP 64-32-16-10 and, without --quick, LeNet-300-100 trained on
    5,000 images of the MNIST test set in ../shared/data (the other 5,000 are its test split).

(3) Hardware (`--hardware`): per layer shape and b, by compiler/hw (the engines' cost models) (the formulas of the
    rtl/ headers): the circulant engine (one complex multiplier: 3) against a sparse engine storing as many
    weight values (an irregular random mask of density 1/b, 8-bit weights; values + delta
    indices in ROM) and the dense engine, both with 4 multipliers; then the parallel engine
    (BF butterfly units, SM spectral lanes) against dense at equal multipliers. `--simulate` then
    compiles the digits MLP three ways with equal storage in its hidden layers (dense; 87.5%
    magnitude-pruned on the sparse engine; circulant b = 8), 4 multipliers in each hidden
    layer (3 for the FFT engine: one complex multiplier), simulates each design in Icarus
    (cocotb, bit-exact against golden) and prints the simulated latency / interval beside the
    cost model's; without --quick also LeNet-300-100
    at b = 8. Only those rows are confirmed by simulation here; the module benches
    (sim/test_*_mac.py) confirm each engine's per-output timing formula at other shapes.

(4) The parallel engine (`--parallel`): the 64-96-48-10 digits MLP (b = 8 on both hidden layers,
    the pass's default retraining) and the dense int8 design, each with `[plan] multipliers = N`
    (8, 16, 32), and the circulant design with `[plan] cycle_budget` = the dense design's budget
    (the fewest multipliers within it), compiled and simulated (Icarus): every layer's engine and
    multipliers, the simulated cycles per inference (first sample through an empty pipeline) and
    interval beside design.json's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler import passes  # noqa: F401
from compiler.data import load_data
from compiler.frontend.onnx import load_onnx
from compiler.hw import circulant as hw_circulant
from compiler.hw import dense as hw_dense
from compiler.hw import sparse as hw_sparse
from compiler.passes.base import Context
from compiler.passes.manager import run_flow, test_accuracy
from kernels.dense_mac import dense_schedule

DIGITS = ("digits MLP 64-32-16-10", ROOT / "examples" / "digits_mlp.onnx", ROOT / "examples" / "digits.npz")


def _models(quick: bool, shared: Path, work: Path) -> list[tuple[str, Path, Path]]:
    models = [DIGITS]
    if not quick:
        from benchmarks.compile_and_simulate import mnist_model

        lenet = mnist_model(work, shared)
        if lenet:
            models.append(("LeNet-300-100, MNIST (test set split 5,000/5,000)", *lenet))
    return models


# ------------------------------------------------------------------------ (2) accuracy
def accuracy_rows(name: str, model: Path, data_path: Path, blocks, seed: int = 0) -> None:
    graph = load_onnx(model)
    data = load_data(data_path, graph.inputs[0].shape, 10)
    ctx = lambda recipe: Context(data=data, recipe=recipe, seed=seed, log=lambda *_: None, progress=False)
    base, _ = run_flow(graph, ["canonicalize"], ctx({}))
    float_acc = test_accuracy(base, data)
    dense_int, _ = run_flow(base, ["lower"], ctx({}))
    hidden = base.weighted_nodes()[:-1]
    dense_weights = sum(base.params[n.inputs[1]].size for n in hidden)
    print(
        f"\n## {name}: {len(data.x_train)} train / {len(data.x_test)} test; float accuracy {float_acc:.4f}, "
        f"integer (no circulant) {test_accuracy(dense_int, data):.4f}"
    )
    print(
        f"hidden layers {', '.join(f'{n.name} {list(base.params[n.inputs[1]].shape)}' for n in hidden)}: "
        f"{dense_weights:,} weights"
    )
    print(
        f"{'b':>3} {'stored':>8} {'ratio':>6} {'float circ':>10} {'int FFT':>8} {'int exact':>9} {'drop':>6}  "
        f"{'max FFT error per layer, x_test (LSB / max |acc|)':50} {'s':>5}"
    )
    for b in blocks:
        start = time.perf_counter()
        circ, _ = run_flow(base, ["circulant"], ctx({"circulant": {"block_size": b}}))
        lowered, _ = run_flow(circ, ["lower"], ctx({}))
        acc = test_accuracy(lowered, data)
        exact = lowered.meta["circulant_test_accuracy_exact_product"]
        nodes = [n for n in lowered.nodes if n.op == "circulant"]
        stored = sum(n.annotations["circulant"]["stored_weights"] for n in nodes)
        errors = ", ".join(
            f"{n.annotations['fft_error']['test']['max_abs']}/{n.annotations['fft_error']['test']['max_exact']}"
            for n in nodes
        )
        print(
            f"{b:>3} {stored:>8,} {dense_weights / stored:6.1f} {test_accuracy(circ, data):10.4f} {acc:8.4f} "
            f"{exact:9.4f} {100 * (float_acc - acc):6.2f}  {errors:50} {time.perf_counter() - start:5.0f}",
            flush=True,
        )


# ------------------------------------------------------------------------ (3) hardware
def _sparse_at_density(n_out: int, n_in: int, keep: int, rng) -> np.ndarray:
    """8-bit weights, exactly `keep` nonzeros at random (irregular) positions."""
    w = np.zeros(n_out * n_in, dtype=np.int64)
    where = rng.choice(w.size, size=keep, replace=False)
    w[where] = rng.choice(np.r_[-128:0, 1:128], size=keep)
    return w.reshape(n_out, n_in)


def hardware_table(shapes, blocks, multipliers: int = 4, acc_bits: int = 24) -> None:
    """compiler/hw (the engines' cost models) at equal weight storage: circulant b vs a 1/b-dense
    sparse layer vs dense."""
    rng = np.random.default_rng(0)
    print(
        "\n## Cycles and ROM per layer (compiler/hw (the engines' cost models); 8-bit weights, 16-bit spectra, "
        f"16-bit twiddle fraction, {acc_bits}-bit bias words; dense and sparse with {multipliers} multipliers, "
        "circulant with one complex multiplier: 3)"
    )
    print(
        f"{'layer':>10} {'b':>3} {'engine':>10} {'stored':>8} {'weight ROM bits':>15} {'cycles':>7} "
        f"{'interval':>8} {'multiplies':>10}"
    )
    for n_out, n_in in shapes:
        dense = hw_dense.dense_cost(n_in, n_out, multipliers, 8, acc_bits)
        print(
            f"{n_out}x{n_in:<6} {'-':>3} {'dense':>10} {n_out * n_in:8,} {dense.weight_rom_bits:15,} "
            f"{dense.compute_cycles:7,} {dense.interval:8,} {n_out * n_in:10,}"
        )
        for b in (b for b in blocks if b <= min(n_out, n_in)):
            circ = hw_circulant.circulant_cost(n_in, n_out, b, 16, 16, acc_bits)
            p, q = -(-n_out // b), -(-n_in // b)
            stored = p * q * b
            w = _sparse_at_density(n_out, n_in, stored, rng)
            sparse = hw_sparse.sparse_cost(hw_sparse.sparse_encoding(w, multipliers, 8), 8, acc_bits)
            print(
                f"{'':>10} {b:>3} {'circulant':>10} {stored:8,} {circ.weight_rom_bits:15,} "
                f"{circ.compute_cycles:7,} {circ.interval:8,} {hw_circulant.circulant_multiplies(n_in, n_out, b):10,}"
            )
            print(
                f"{'':>10} {b:>3} {'sparse':>10} {stored:8,} {sparse.weight_rom_bits:15,} "
                f"{sparse.compute_cycles:7,} {sparse.interval:8,} {stored:10,}"
            )
    print(
        "cycles: dense/sparse ROM words read (one per cycle); circulant: from the end of loading to the last "
        "output. interval: steady-state cycles per vector, inputs one per cycle (circulant: its compute, or "
        "its input buffer's release plus N_IN if longer)"
    )


def parallel_table(shapes, blocks, settings=(3, 6, 12, 24, 48)) -> None:
    """(3b) The parallel engine: per layer and b, at equal multipliers M the circulant engine's split
    (BF butterfly units, SM spectral lanes, 3*max(BF, SM) multipliers used) and interval against
    the dense engine's; and the fewest circulant multipliers reaching the dense engine's cycles."""
    print(
        "\n## The parallel FFT engine at equal multipliers (compiler/hw: CirculantSchedule, dense_schedule); "
        "`to dense`: the circulant multipliers the plan needs to reach the dense engine's cycles with M"
    )
    print(
        f"{'layer':>10} {'b':>3} {'M':>4} {'BF':>3} {'SM':>3} {'used':>5} {'circ interval':>13} "
        f"{'dense':>7} {'to dense':>8}"
    )
    for n_out, n_in in shapes:
        for b in (b for b in blocks if b <= min(n_out, n_in)):
            for m in settings:
                s = hw_circulant.circulant_schedule(n_in, n_out, b, m)
                dense = dense_schedule(n_in, n_out, min(m, n_in)).words
                reach, _ = hw_circulant.choose_schedule(n_in, n_out, b, dense)
                need = f"{reach.multipliers}" if reach.interval <= dense else "-"
                print(
                    f"{n_out}x{n_in:<6} {b:>3} {m:>4} {s.bf:>3} {s.sm:>3} {s.multipliers:>5} {s.interval:>13,} "
                    f"{dense:>7,} {need:>8}"
                )


def _design_recipes(hidden: list[str], last: str) -> dict[str, str]:
    layers = "".join(f'[plan.layers."{n}"]\nmultipliers = 4\n' for n in hidden)
    keep_last = f'[magnitude_prune.layers."{last}"]\nsparsity = 0.0\n'
    return {
        "dense": f'passes = ["canonicalize", "lower"]\n[plan]\nengine = "dense"\n{layers}',
        "sparse 87.5%": (
            'passes = ["canonicalize", "magnitude_prune", "lower"]\n[magnitude_prune]\nsparsity = 0.875\n'
            f'{keep_last}[plan]\nengine = "sparse"\n{layers}'
        ),
        # 4 multipliers per hidden layer: the FFT engine rounds down to one complex multiplier (3)
        "circulant b=8": f'passes = ["canonicalize", "circulant", "lower"]\n[circulant]\nblock_size = 8\n{layers}',
    }


def compile_and_simulate(model: Path, data_path: Path, out: Path, recipe_text: str, samples: int):
    """(report, simulation result, design.json) of one design compiled with `recipe_text`."""
    from compiler import api

    recipe = out.parent / f"{out.name}.toml"
    recipe.write_text(recipe_text)
    report = api.compile(
        model, data_path, out, recipe=recipe, force=True, log=lambda *_: None, progress=False, synth_timeout=None
    )
    sim = api.simulate(out, samples=samples, log=lambda *_: None)
    return report, sim, json.loads((out / "rtl" / "design.json").read_text())


def simulated_designs(models, work: Path, samples: int, quick: bool) -> None:

    print(
        f"\n## Whole designs simulated (Icarus, {samples} samples + 8 replayed with back-pressure; "
        "4 multipliers per hidden layer)"
    )
    print(
        f"{'model':24} {'design':14} {'test acc':>8} {'hidden weight ROM':>17} {'latency sim/est':>17} "
        f"{'interval sim/est':>17} {'mismatches':>10} {'s':>5}"
    )
    for name, model, data_path in models:
        nodes = load_onnx(model).weighted_nodes()
        recipes = _design_recipes([n.name for n in nodes[:-1]], nodes[-1].name)
        if name != DIGITS[0]:
            recipes = {"circulant b=8": recipes["circulant b=8"]}  # the large designs: the FFT one only
        for design, text in recipes.items():
            start = time.perf_counter()
            out = work / f"{model.stem}-{design.split()[0]}"
            report, sim, est = compile_and_simulate(model, data_path, out, text, samples)
            rom = sum(layer["weight_bits"] for layer in report["layers"][:-1])
            print(
                f"{name[:24]:24} {design:14} {report['compiled']['test_accuracy']:8.4f} {rom:17,} "
                f"{sim['cycles_per_inference']:>8,}/{est['estimated_latency']:<8,} "
                f"{sim['initiation_interval']:>8,.0f}/{est['estimated_interval']:<8,} {sim['mismatches']:>10} "
                f"{time.perf_counter() - start:5.0f}",
                flush=True,
            )


# ------------------------------------------------------------------------ (4) the parallel engine
WIDE_HIDDEN = (96, 48)  # the 64-96-48-10 digits MLP of issue #19


def _layer_multipliers(out: Path) -> list[tuple[str, int]]:
    design = json.loads((out / "rtl" / "design.json").read_text())
    return [(e["engine"], int(e["multipliers"])) for e in design["engines"]]


def _yosys_xilinx(rtl: Path, timeout: int = 1200) -> str:
    """LUTs / FFs / DSP48E1 / block RAMs of a generated design (synth_xilinx -top mpc_top), or why not."""
    import re
    import shutil
    import subprocess

    if shutil.which("yosys") is None:
        return "no yosys"
    sources = json.loads((rtl / "design.json").read_text())["sources"]
    script = f"read_verilog -defer {' '.join(sources)}; synth_xilinx -top mpc_top; stat"
    try:
        proc = subprocess.run(["yosys", "-p", script], cwd=rtl, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    design = proc.stdout[proc.stdout.rfind("=== design hierarchy ===") :]

    def count(pattern: str) -> int:
        return sum(int(n) for n in re.findall(rf"^\s+{pattern}\s+(\d+)$", design, flags=re.MULTILINE))

    return (
        f"{count('LUT[1-6]'):,} LUT, {count('FD[RSCP]E'):,} FF, {count('DSP48E1')} DSP, {count('RAMB(?:18|36)E1')} BRAM"
    )


def parallel_designs(
    work: Path, settings=(8, 16, 32), samples: int = 8, epochs: int = 120, synth: bool = False
) -> None:
    """(4) The 64-96-48-10 digits MLP, b = 8 on both hidden layers, against the dense int8 design,
    each compiled with `[plan] multipliers = N` and simulated (Icarus): cycles per inference
    (first sample, empty pipeline) and interval, and every layer's engine and multipliers; and
    the circulant design planned with the fewest `[plan] multipliers` whose cycle budget is within
    the dense design's (`circ N=...`)."""
    from benchmarks.datasets import MlpRecipe, load_digits, member_split, train_onnx_mlp

    x, y = load_digits()
    data = member_split(x, y, 1200, 597)
    model, data_path = train_onnx_mlp(data, work, "digits_96_48", MlpRecipe(hidden=WIDE_HIDDEN, epochs=20))
    print(
        f"\n## The parallel circulant engine: digits MLP 64-96-48-10, b = 8 on both hidden layers, against "
        f"dense int8 ([plan] multipliers = N for both; Icarus, {samples} samples)"
    )
    print(
        f"{'N':>3} {'design':11} {'layers (engine: multipliers)':40} {'total':>5} {'latency sim/est':>16} "
        f"{'interval sim/est':>17} {'budget':>6} {'acc':>6} {'s':>4}"
    )

    def circulant_recipe(plan: str) -> str:
        return (
            'passes = ["canonicalize", "circulant", "lower"]\n[circulant]\nblock_size = 8\n'
            f"epochs = {epochs}\n[plan]\n{plan}\n"
        )

    for n in settings:
        dense_budget = dense_schedule(64, 96, n).words  # the dense design's cycle budget (its largest layer)
        recipes = {
            "dense": f'passes = ["canonicalize", "lower"]\n[plan]\nengine = "dense"\nmultipliers = {n}\n',
            "circulant": circulant_recipe(f"multipliers = {n}"),
            # the fewest multipliers per layer within the dense design's budget
            f"circ T={dense_budget}": circulant_recipe(f"cycle_budget = {dense_budget}"),
        }
        for design, text in recipes.items():
            start = time.perf_counter()
            out = work / f"wide-{design.replace(' ', '').replace('=', '')}-{n}"
            report, sim, est = compile_and_simulate(model, data_path, out, text, samples)
            layers = _layer_multipliers(out)
            plan = json.loads(sorted((out / "checkpoints").glob("*-plan/graph.json"))[-1].read_text())["meta"]["plan"]
            text_layers = ", ".join(f"{e}: {m}" for e, m in layers)
            cells = f" {_yosys_xilinx(out / 'rtl')}" if synth else ""
            print(
                f"{n:>3} {design:11} {text_layers:40} {sum(m for _, m in layers):>5} "
                f"{sim['cycles_per_inference']:>7,}/{est['estimated_latency']:<8,} "
                f"{sim['initiation_interval']:>8,.0f}/{est['estimated_interval']:<8,} "
                f"{plan['cycle_budget']:>6} "
                f"{report['compiled']['test_accuracy']:6.3f} {time.perf_counter() - start:4.0f}{cells}",
                flush=True,
            )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="digits only, fewer block sizes")
    ap.add_argument("--accuracy", action="store_true", help="only (2): accuracy vs block size")
    ap.add_argument("--hardware", action="store_true", help="only (3): cycles and ROM bits")
    ap.add_argument("--simulate", action="store_true", help="with (3): compile and simulate whole designs")
    ap.add_argument(
        "--parallel", action="store_true", help="only (4): the parallel engine on the 64-96-48-10 MLP, simulated"
    )
    ap.add_argument("--synth", action="store_true", help="with (4): yosys synth_xilinx cells of every design")
    ap.add_argument("--samples", type=int, default=None, help="samples per simulation (default 16, quick 8)")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # more threads only contend on a small, shared machine
    both = not (args.accuracy or args.hardware or args.parallel)
    work = Path(tempfile.mkdtemp(prefix="mpc-circulant-"))
    if args.parallel:
        parallel_designs(work, samples=args.samples or 8, synth=args.synth)
        print(f"\n(work files in {work})")
        return
    models = _models(args.quick, args.shared, work)
    if args.accuracy or both:
        for name, model, data_path in models:
            lenet = name != DIGITS[0]
            blocks = ((4, 8, 16, 32, 64) if lenet else (2, 4, 8, 16)) if not args.quick else (4, 8, 16)
            accuracy_rows(name, model, data_path, blocks)
    if args.hardware or both:
        shapes = [(32, 64), (16, 32)] + ([] if args.quick else [(300, 784), (100, 300)])
        hardware_table(shapes, (4, 8, 16) if args.quick else (4, 8, 16, 32, 64))
        parallel_table([(96, 64), (48, 96)] + shapes[2:], (8,) if args.quick else (8, 16))
        if args.simulate:
            simulated_designs(models, work, args.samples or (8 if args.quick else 16), args.quick)
    print(f"\n(work files in {work})")


if __name__ == "__main__":
    main()
