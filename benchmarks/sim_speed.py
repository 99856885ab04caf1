"""Whole-design simulation speed: Icarus against Verilator on the same builds.

    python benchmarks/sim_speed.py [--quick] [--samples 4,16] [--simulators icarus,verilator] [--shared DIR]

Compiles each model (`mpc compile`, no synthesis) and simulates its design with each simulator
as `mpc simulate` does, for each sample count in turn: the first run of a simulator builds its
model (build seconds), the later ones reuse it (OUT/sim_build/model_<simulator>/, the build
column of those rows is "reused"). Prints build and run seconds, simulated samples per second
(the testbench's run: every sample streamed, up to 8 replayed under back-pressure), what
`--simulator auto` picks for each run, and the sample count from which Verilator's build pays
off. Then the bit-flip audit's path (`simulate_design`, the ROM files copied into a folder of
its own) on the Verilator model: whether it reuses the build.

Models: --quick, the bundled digits CNN (examples/digits_cnn.onnx); otherwise also LeNet-5
(conv5x5(6)-pool-conv5x5(16)-pool-120-84-10), trained 2 epochs on 1,000 MNIST images from
../shared/data, or on random images of MNIST's shape where that data is missing (simulation
speed does not depend on the weights' quality).
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


def quiet(*_) -> None:
    pass


def lenet5(work: Path, shared: Path) -> tuple[Path, Path, str]:
    """LeNet-5 in ONNX with its DATA.npz, and what it was trained on."""
    import numpy as np

    from benchmarks.datasets import MlpRecipe, load_mnist, make_lenet5, member_split, train_onnx_model

    if (shared / "mnist").exists():
        x, y = load_mnist(shared)
        origin = "MNIST"
    else:
        rng = np.random.default_rng(0)
        x, y = rng.random((1200, 28, 28), dtype=np.float32), rng.integers(0, 10, 1200)
        origin = "random images"
    data = member_split(x[:, None], y, 1000, 200, seed=0)
    model, data_path = train_onnx_model(make_lenet5, data, work, "lenet5", MlpRecipe(epochs=2, seed=0))
    return model, data_path, origin


def compile_build(model: Path, data: Path, out: Path) -> dict:
    return api.compile(model, data, out, log=quiet, progress=False, synth_timeout=None)


def simulate(out: Path, samples: int, simulator: str) -> dict:
    """One `mpc simulate` run; exits on a mismatch (a speed figure of a wrong design means nothing)."""
    result = api.simulate(out, samples=samples, simulator=simulator, log=quiet)
    if result["mismatches"]:
        raise SystemExit(f"{simulator}: {result['mismatches']} mismatches on {out}")
    return result


def auto_choice(out: Path, samples: int) -> str:
    from compiler.build import open_build
    from compiler.simulate import choose_simulator

    design = open_build(out, rtl=True).design
    assert design is not None
    return choose_simulator("auto", out, design, samples)


def flipped_copy_run(out: Path, samples: int) -> dict:
    """The bit-flip audit's path: the design in a folder of its own (OUT/sim_build/bench_flip)
    through simulate_design with Verilator; its ROM files are copied there at run time."""
    from compiler.build import open_build
    from compiler.simulate import simulate_design

    build = open_build(out, rtl=True, vectors=True)
    assert build.x_q is not None and build.design is not None
    start = time.perf_counter()
    x_q = build.x_q[:samples].astype("int64")
    sim = simulate_design(out, out / "sim_build" / "bench_flip", build.graph, build.design, x_q, {}, "verilator")
    return sim | {"wall": time.perf_counter() - start}


def break_even(icarus: list[dict], verilator: list[dict]) -> str:
    """Samples from which Verilator's build plus run beats Icarus' run (linear fit per sample)."""
    if len(icarus) < 2 or len(verilator) < 2:
        return "n/a (needs two sample counts)"
    (n0, i0, v0), (n1, i1, v1) = [
        (a["samples"], a["run_seconds"], b["run_seconds"])
        for a, b in ((icarus[0], verilator[0]), (icarus[-1], verilator[-1]))
    ]
    gain = ((i1 - v1) - (i0 - v0)) / (n1 - n0)  # seconds saved per extra sample
    fixed = i0 - v0 - gain * n0  # seconds saved at zero samples (startup, drain)
    build = max(r["build_seconds"] for r in verilator)
    if gain <= 0:
        return "never (Verilator not faster per sample)"
    samples = (build - fixed) / gain
    return "the first sample" if samples <= 1 else f"{samples:.0f} samples"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the bundled digits CNN only")
    ap.add_argument("--samples", default="4,16", help="comma-separated sample counts (default 4,16)")
    ap.add_argument("--simulators", default="icarus,verilator")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args(argv)
    counts = [int(n) for n in args.samples.split(",")]
    simulators = args.simulators.split(",")
    work = Path(tempfile.mkdtemp(prefix="mpc-simspeed-"))
    models = [("digits CNN", ROOT / "examples" / "digits_cnn.onnx", ROOT / "examples" / "digits.npz")]
    if not args.quick:
        model, data, origin = lenet5(work, args.shared)
        models.append((f"LeNet-5 ({origin})", model, data))

    print(f"{'model':24} {'cycles/inf':>10} {'simulator':9} {'samples':>7} {'build s':>8} {'run s':>7} "
          f"{'samples/s':>9} {'auto':>9}")  # fmt: skip
    for i, (name, model, data) in enumerate(models):
        out = work / f"build{i}"
        compile_build(model, data, out)
        runs: dict[str, list[dict]] = {}
        for simulator in simulators:
            for n in counts:
                picks = auto_choice(out, n)  # before this run builds anything
                r = simulate(out, n, simulator)
                runs.setdefault(simulator, []).append(r)
                build = "reused" if r["build_reused"] else f"{r['build_seconds']:.1f}"
                print(
                    f"{name:24} {r['cycles_per_inference']:>10} {simulator:9} {n:>7} {build:>8} "
                    f"{r['run_seconds']:>7.2f} {r['samples_per_second']:>9.3g} {picks:>9}",
                    flush=True,
                )
        if "icarus" in runs and "verilator" in runs:
            ic, vl = runs["icarus"][-1], runs["verilator"][-1]
            print(
                f"  {name}: Verilator runs {ic['run_seconds'] / vl['run_seconds']:.1f}x faster at {ic['samples']} "
                f"samples; its build pays off from {break_even(runs['icarus'], runs['verilator'])}"
            )
        if "verilator" in runs:
            flip = flipped_copy_run(out, counts[0])
            print(
                f"  {name}: bit-flip path (simulate_design, own folder): model "
                f"{'reused' if flip.get('build_reused') else 'rebuilt'}, {flip['wall']:.1f} s wall, "
                f"{flip['mismatches']} mismatches"
            )


if __name__ == "__main__":
    main()
