"""CNNs through the whole flow: LeNet-5 on MNIST and a small CIFAR-10 CNN.

    python benchmarks/cnn.py [--quick] [--models lenet5,cifar] [--samples 8] [--no-verilator] [--fc-sparsity 0.9,0.95]

For each model: train it in torch on a split of the test set in ../shared/data (the only
split there is), compile it (8-bit post-training quantization), then again with an ADMM recipe
(filter pruning on the convolutions, which removes whole channels from the hardware, and
irregular pruning + 4-bit quantization on the dense layers, which the sparse engine skips),
simulate each design with Icarus (and Verilator) and print float / integer accuracy,
compression, cycles per inference (estimated and simulated) and simulation speed.
--quick runs the bundled digits CNN only (no shared data needed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler import api

ADMM_RECIPE = """passes = ["canonicalize", "admm", "lower"]
[admm]
sparsity = {fc_sparsity}
bits = 4
structure = "irregular"
admm_epochs = {epochs}
retrain_epochs = {epochs}
{conv_tables}
[plan]
multipliers = {multipliers}
"""


@dataclass
class Case:
    name: str
    model: Path
    data: Path
    convs: list[str]  # conv node names (filter-pruned by the ADMM recipe)
    multipliers: int
    epochs: int  # ADMM epochs per phase


def lenet5_case(work: Path, shared: Path, quick_train: bool) -> Case:
    from benchmarks.datasets import MlpRecipe, load_mnist, make_lenet5, member_split, train_onnx_model

    x, y = load_mnist(shared)
    data = member_split(x[:, None], y, 5000, 5000, seed=0)
    model, data_path = train_onnx_model(
        make_lenet5, data, work, "lenet5", MlpRecipe(epochs=4 if quick_train else 12, seed=0)
    )
    return Case("MNIST LeNet-5", model, data_path, ["/0/Conv", "/3/Conv"], 16, 10)


def cifar_case(work: Path, shared: Path, quick_train: bool) -> Case:
    from benchmarks.datasets import MlpRecipe, load_cifar10, make_cifar_cnn, member_split, train_onnx_model

    x, y = load_cifar10(shared)
    data = member_split(x, y, 5000, 5000, seed=0)
    model, data_path = train_onnx_model(
        make_cifar_cnn, data, work, "cifar_cnn", MlpRecipe(epochs=4 if quick_train else 15, seed=0)
    )
    return Case("CIFAR-10 CNN", model, data_path, ["/0/Conv", "/3/Conv", "/6/Conv"], 64, 6)


def digits_case() -> Case:
    return Case(
        "digits CNN",
        ROOT / "examples" / "digits_cnn.onnx",
        ROOT / "examples" / "digits.npz",
        ["/0/Conv", "/3/Conv"],
        16,
        20,
    )


def admm_recipe(case: Case, folder: Path, filter_sparsity: float = 0.5, fc_sparsity: float = 0.9) -> Path:
    tables = "\n".join(
        f'[admm.layers."{c}"]\nsparsity = {filter_sparsity}\nstructure = "filters"\nbits = 8\n' for c in case.convs
    )
    path = folder / f"{case.model.stem}_admm{fc_sparsity}.toml"
    path.write_text(
        ADMM_RECIPE.format(
            fc_sparsity=fc_sparsity, epochs=case.epochs, conv_tables=tables, multipliers=case.multipliers
        )
    )
    return path


def plain_recipe(case: Case, folder: Path) -> Path:
    path = folder / f"{case.model.stem}_ptq.toml"
    path.write_text(f'passes = ["canonicalize", "lower", "plan"]\n[plan]\nmultipliers = {case.multipliers}\n')
    return path


def build(case: Case, recipe: Path, out: Path, samples: int, verilator: bool) -> dict:
    start = time.perf_counter()
    report = api.compile(
        case.model, case.data, out, recipe=recipe, log=lambda *_: None, progress=True, synth_timeout=None
    )
    row = {"compile_s": time.perf_counter() - start, "report": report}
    for sim in ("icarus", "verilator") if verilator else ("icarus",):
        result = api.simulate(out, samples=samples, simulator=sim, log=lambda *_: None)
        if result["mismatches"]:
            raise SystemExit(f"{case.name}: {sim} found {result['mismatches']} mismatches in {out}")
        row[sim] = result
    return row


def print_rows(rows: list[tuple[str, str, dict]], samples: int) -> None:
    print(
        f"\n{samples} samples per simulation, 0 mismatches in every run; inferences/s = samples / testbench "
        "run time (builds excluded)"
    )
    head = (
        f"{'model':15} {'build':8} {'float':>6} {'int':>6} {'ratio':>6} {'weights':>8} {'mults':>5} "
        f"{'est cyc':>8} {'sim cyc':>8} {'interval':>8} {'icarus/s':>8} {'veril/s':>8} {'compile s':>9}"
    )
    print(head)
    for name, build_name, row in rows:
        r = row["report"]
        ic = row["icarus"]
        vl = row.get("verilator")
        kept = sum(int(layer["stored_weights"]) for layer in r["layers"])
        print(
            f"{name:15} {build_name:8} {r['float']['test_accuracy']:6.4f} {r['compiled']['test_accuracy']:6.4f} "
            f"{r['model']['compression_ratio']:6.1f} {kept:8} {r['hardware']['multipliers']:5} "
            f"{r['hardware']['estimated_cycles_per_inference']:8} {ic['cycles_per_inference']:8} "
            f"{ic['initiation_interval'] or 0:8.0f} {samples / ic['run_seconds']:8.2f} "
            f"{(samples / vl['run_seconds']) if vl else float('nan'):8.2f} {row['compile_s']:9.1f}"
        )
    for name, build_name, row in rows:
        layers = ", ".join(
            f"{layer['name']} {layer['engine']} {layer['sparsity']:.0%}"
            f"{' ' + str(layer['shape']) if layer['engine'] == 'conv' else ''}"
            for layer in row["report"]["layers"]
        )
        print(f"  {name} {build_name}: {layers}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the bundled digits CNN only")
    ap.add_argument("--models", default="lenet5,cifar", help="comma list of lenet5, cifar, digits")
    ap.add_argument("--samples", type=int, default=8, help="samples per simulation (default 8)")
    ap.add_argument("--no-verilator", action="store_true", help="simulate with Icarus only")
    ap.add_argument(
        "--fc-sparsity",
        default="0.9",
        help="comma list: one ADMM build per irregular sparsity of the dense layers (default 0.9)",
    )
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mpc-cnn-"))
    names = ["digits"] if args.quick else args.models.split(",")
    makers = {
        "lenet5": lambda: lenet5_case(work, args.shared, args.quick),
        "cifar": lambda: cifar_case(work, args.shared, args.quick),
        "digits": digits_case,
    }
    rows = []
    for key in names:
        case = makers[key]()
        builds = [("ptq", plain_recipe(case, work))] + [
            (f"admm{s}", admm_recipe(case, work, fc_sparsity=float(s))) for s in args.fc_sparsity.split(",")
        ]
        for build_name, recipe in builds:
            print(f"== {case.name}: {build_name}", flush=True)
            rows.append(
                (
                    case.name,
                    build_name,
                    build(case, recipe, work / f"{key}_{build_name}", args.samples, not args.no_verilator),
                )
            )
    print_rows(rows, args.samples)


if __name__ == "__main__":
    main()
