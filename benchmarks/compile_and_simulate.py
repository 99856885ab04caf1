"""Compile time, integer vs float accuracy, and Icarus vs Verilator simulation throughput.

    python benchmarks/compile_and_simulate.py [--quick] [--samples N]

Compiles the bundled examples (and, without --quick, LeNet-300-100 trained on half of the
MNIST test set in ../shared/data), then simulates the same design with both simulators in
one run and prints inferences per second and their ratio. Verilator's C++ build time is
reported apart from its run time: it is paid once per design.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler import api


def compile_timed(model: Path, data: Path, out: Path, recipe: Path | None = None) -> tuple[dict, float]:
    start = time.perf_counter()
    report = api.compile(model, data, out, recipe=recipe, log=lambda *_: None, progress=False, synth_timeout=None)
    return report, time.perf_counter() - start


def simulate_timed(out: Path, samples: int, simulator: str) -> dict:
    result = api.simulate(out, samples=samples, simulator=simulator, log=lambda *_: None)
    if result["mismatches"]:
        raise SystemExit(f"{simulator}: {result['mismatches']} mismatches on {out}")
    return result


def mnist_model(work: Path, shared: Path) -> tuple[Path, Path] | None:
    """LeNet-300-100 trained on 5,000 MNIST test images (the other 5,000 are its test split)."""
    from benchmarks.datasets import MlpRecipe, load_mnist, member_split, train_onnx_mlp

    if not (shared / "mnist").exists():
        print(f"(skipping LeNet-300-100: no MNIST under {shared})")
        return None
    x, y = load_mnist(shared)
    data = member_split(x, y, 5000, 5000, seed=0)
    return train_onnx_mlp(data, work, "lenet300", MlpRecipe(hidden=(300, 100), epochs=20))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the bundled digits MLP only, fewer samples")
    ap.add_argument("--samples", type=int, default=None, help="samples per simulation (default 64, quick 32)")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args(argv)
    samples = args.samples or (32 if args.quick else 64)
    work = Path(tempfile.mkdtemp(prefix="mpc-bench-"))
    models = [("digits 64-32-16-10", ROOT / "examples" / "digits_mlp.onnx", ROOT / "examples" / "digits.npz")]
    if not args.quick:
        models.append(
            ("digits 64-128-64-10", ROOT / "examples" / "digits_mlp_wide.onnx", ROOT / "examples" / "digits.npz")
        )
        lenet = mnist_model(work, args.shared)
        if lenet:
            models.append(("MNIST LeNet-300-100", *lenet))
    rows = []
    for i, (name, model, data) in enumerate(models):
        report, seconds = compile_timed(model, data, work / f"b{i}")
        icarus = simulate_timed(work / f"b{i}", samples, "icarus")
        verilator = simulate_timed(work / f"b{i}", samples, "verilator")
        rows.append(
            (name, seconds, report["float"]["test_accuracy"], report["compiled"]["test_accuracy"], icarus, verilator)
        )
    print(
        f"\nsamples per simulation: {samples}; inferences/s count the testbench run, not the build "
        "(Verilator's C++ build is paid once per design)"
    )
    print(
        f"{'model':22} {'compile s':>9} {'float acc':>9} {'int acc':>8} {'cycles':>7} "
        f"{'icarus inf/s':>12} {'verilator inf/s':>15} {'ratio':>6}"
    )
    for name, seconds, f_acc, i_acc, ic, vl in rows:
        ic_rate, vl_rate = samples / ic["run_seconds"], samples / vl["run_seconds"]
        print(
            f"{name:22} {seconds:9.1f} {f_acc:9.4f} {i_acc:8.4f} {ic['cycles_per_inference']:7} "
            f"{ic_rate:12.1f} {vl_rate:15.1f} {vl_rate / ic_rate:6.2f}"
        )


if __name__ == "__main__":
    main()
