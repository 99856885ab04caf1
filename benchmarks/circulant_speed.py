"""Block-circulant layers: FFT matvec speed against dense BLAS, and what the structure costs.

    python benchmarks/circulant_speed.py [--quick]        # speed table + crossover
    python benchmarks/circulant_speed.py --accuracy       # digits: accuracy vs block size,
                                                          # fixed-point FFT error per layer

Speed: float32, one process, measured in one run. Dense is `x @ W.T` (numpy -> BLAS: gemv for
batch 1, gemm for batch 64); FFT is kernels.circulant_mac.circulant_matvec_spectra with the
weight spectra precomputed by circulant_spectra (as the hardware stores them; the dense side has W precomputed
too). Each cell is the best of several timed repeats; the ratio is dense time / FFT time, so
> 1 means the FFT is faster. The crossover is the smallest block size from which the FFT wins
for every larger block size too.
Whatever OPENBLAS_CORETYPE / thread settings the environment has are left as they are.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels.circulant_mac import circulant_expand, circulant_matvec_spectra, circulant_spectra

FULL = dict(sizes=(256, 512, 1024, 2048, 4096), blocks=(8, 16, 32, 64, 128, 256), min_time=0.05, repeats=7)
QUICK = dict(sizes=(256, 1024), blocks=(8, 64, 256), min_time=0.01, repeats=3)
BATCHES = (1, 64)


def best_time(fn, min_time: float, repeats: int) -> float:
    """Seconds per call: calls are batched until one batch takes min_time; best of repeats."""
    fn()
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            break
        calls *= 2
    best = elapsed / calls
    for _ in range(repeats - 1):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def measure_row(n: int, batch: int, blocks, rng, min_time: float, repeats: int) -> list[dict]:
    """One table row: dense timed before and after the FFT cells (best of both, so a burst of
    load from other processes during one of them does not decide the ratio)."""
    x = rng.standard_normal((batch, n)).astype(np.float32)
    dense = rng.standard_normal((n, n)).astype(np.float32)
    t_dense = best_time(lambda: x @ dense.T, min_time, repeats)
    cells = []
    for b in (b for b in blocks if b <= n):
        vectors = rng.standard_normal((n // b, n // b, b)).astype(np.float32)
        spectra = circulant_spectra(vectors)
        if n <= 1024:  # the FFT path computes the expanded matrix's product
            np.testing.assert_allclose(
                circulant_matvec_spectra(spectra, x, b),
                x @ circulant_expand(vectors).T,
                rtol=1e-3,
                atol=1e-3 * np.sqrt(n),
            )
        t_fft = best_time(partial(circulant_matvec_spectra, spectra, x, b), min_time, repeats)
        cells.append({"n": n, "b": b, "batch": batch, "fft_us": t_fft * 1e6})
    t_dense = min(t_dense, best_time(lambda: x @ dense.T, min_time, repeats))
    for cell in cells:
        cell["dense_us"] = t_dense * 1e6
        cell["ratio"] = cell["dense_us"] / cell["fft_us"]
    return cells


def speed_table(quick: bool) -> list[dict]:
    cfg = QUICK if quick else FULL
    rng = np.random.default_rng(0)
    rows = []
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other processes skew timings)")
    for batch in BATCHES:
        print(f"\nbatch {batch}: dense time / FFT time (> 1: FFT faster); times in microseconds")
        print(f"{'n':>6} {'dense_us':>10} " + " ".join(f"{'b=' + str(b):>16}" for b in cfg["blocks"]))
        for n in cfg["sizes"]:
            cells = measure_row(n, batch, cfg["blocks"], rng, cfg["min_time"], cfg["repeats"])
            rows += cells
            text = " ".join(f"{c['ratio']:6.2f} ({c['fft_us']:7.0f})" for c in cells)
            print(f"{n:>6} {cells[0]['dense_us']:>10.0f} {text}", flush=True)
    print("\ncrossover: smallest block size from which the FFT is faster than dense at every larger b")
    for batch in BATCHES:
        for n in cfg["sizes"]:
            row = [r for r in rows if r["n"] == n and r["batch"] == batch]
            wins = [r["b"] for i, r in enumerate(row) if all(s["ratio"] > 1.0 for s in row[i:])]
            print(f"  batch {batch:>2}, n = {n:>4}: " + (f"b >= {min(wins)}" if wins else "never (in this range)"))
    return rows


# ------------------------------------------------------------------------ accuracy
def accuracy_table(seeds=(0, 1, 2)) -> None:
    """Digits MLP: test accuracy vs block size (first layer only, every hidden layer), default
    pass options; then each lowered circulant layer run through the fixed-point FFT kernel."""
    from compiler import passes  # noqa: F401
    from compiler.data import load_data
    from compiler.frontend.onnx import load_onnx
    from compiler.passes.base import Context
    from compiler.passes.manager import run_flow, test_accuracy

    root = Path(__file__).resolve().parents[1] / "examples"
    data = load_data(root / "digits.npz", (8, 8), 10)
    model = load_onnx(root / "digits_mlp.onnx")
    ctx = lambda recipe, seed=0: Context(data=data, recipe=recipe, log=lambda *_: None, progress=False, seed=seed)
    base, _ = run_flow(model, ["canonicalize"], ctx({}))
    first = base.weighted_nodes()[0].name
    print(f"\ndigits MLP 64-32-16-10, float test accuracy {test_accuracy(base, data):.4f}")
    print(f"{'b':>4} {'layers':>12} " + " ".join(f"{'seed ' + str(s):>8}" for s in seeds) + "   (projection only)")
    for b in (2, 4, 8, 16):
        for where in ("first", "all hidden"):
            recipe = (
                {"block_size": b} if where == "all hidden" else {"block_size": 1, "layers": {first: {"block_size": b}}}
            )
            accs = [test_accuracy(run_flow(base, ["circulant"], ctx({"circulant": recipe}, s))[0], data) for s in seeds]
            projected = run_flow(base, ["circulant"], ctx({"circulant": dict(recipe, epochs=0)}))[0]
            print(
                f"{b:>4} {where:>12} "
                + " ".join(f"{a:8.4f}" for a in accs)
                + f"   ({test_accuracy(projected, data):.4f})",
                flush=True,
            )
    fixed_point_table(base, data, ctx)


def fixed_point_table(base, data, ctx) -> None:
    """Lower a b=8 circulant model, run it in integers with every circulant layer computed by
    the fixed-point FFT kernel instead of dense_mac: per-layer error and end accuracy."""
    import kernels
    from compiler.passes.manager import run_flow
    from kernels.circulant_mac import circulant_error, circulant_mac, circulant_vectors, plan_circulant

    lowered = run_flow(base, ["circulant", "lower"], ctx({"circulant": {"block_size": 8}}))[0]
    x = kernels.quantize(data.x_test, lowered.meta["input_format"]["frac"], lowered.meta["input_format"]["bits"])
    dense_x, fft_x = x.reshape(len(x), -1), x.reshape(len(x), -1)
    print("\nfixed-point FFT vs exact product, b = 8, digits test set (accumulator LSBs)")
    for node in lowered.nodes[1:]:
        if node.op == "dequantize":
            break
        if node.op == "dense":
            w, bias = lowered.params[node.inputs[1]], lowered.params[node.inputs[2]]
            dense_x = kernels.dense_mac(dense_x, w, bias)
            if "block_size" in node.annotations:
                b = node.annotations["block_size"]
                layer = plan_circulant(
                    circulant_vectors(w.astype(np.int64), b),
                    bias,
                    w.shape[1],
                    w.shape[0],
                    in_bits=node.attrs["input_format"]["bits"],
                )
                err = circulant_error(fft_x, layer)
                print(
                    f"  {node.name}: max {err['max_abs']} mean {err['mean_abs']:.2f} (bound {err['bound']:.0f}) "
                    f"of |acc| up to {err['max_exact']}; acc_bits {layer.acc_bits} vs dense {node.attrs['acc_bits']}"
                )
                fft_x = circulant_mac(fft_x, layer)
            else:
                fft_x = kernels.dense_mac(fft_x, w, bias)
        elif node.op == "requantize":
            args = (node.attrs["shift"], node.attrs["bits"], node.attrs["relu"])
            dense_x, fft_x = kernels.requantize(dense_x, *args), kernels.requantize(fft_x, *args)
    same = np.mean(np.argmax(dense_x, 1) == np.argmax(fft_x, 1))
    print(
        f"  integer model accuracy: dense kernels {np.mean(np.argmax(dense_x, 1) == data.y_test):.4f}, "
        f"FFT kernels {np.mean(np.argmax(fft_x, 1) == data.y_test):.4f}; same class on {same:.4f} of samples"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, short timings")
    parser.add_argument("--accuracy", action="store_true", help="digits accuracy vs block size and fixed-point error")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="BLAS threads for both sides (default: as the environment sets them). On a busy "
        "machine, 1 avoids multi-threaded BLAS stalling on oversubscribed cores",
    )
    args = parser.parse_args(argv)
    if args.accuracy:
        accuracy_table(seeds=(0,) if args.quick else (0, 1, 2))
        return
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=args.threads, user_api="blas"):
        blas = [
            f"{i['internal_api']} {i['num_threads']} thread(s)" for i in threadpool_info() if i["user_api"] == "blas"
        ]
        print(f"BLAS: {', '.join(blas) or 'unknown'}")
        speed_table(args.quick)


if __name__ == "__main__":
    main()
