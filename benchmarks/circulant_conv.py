"""Block-circulant convolutions on the conv engine: what the vector ROM saves, and what the
FFT alternative would cost (docs/fixed-point.md "Block-circulant convolutions").

    python benchmarks/circulant_conv.py [--quick] [--multipliers 16]

For LeNet-5 (1x28x28: conv5x5(6, pad 2) - pool2 - conv5x5(16) - pool2 - 400-120-84-10) with
random integer weights, its second conv (6x14x14 -> 16x10x10) dense and block-circulant in its
channels at b = 4 and 8, planned by the `plan` pass at `multipliers` (the default 16): the
conv engine's parallelism, multipliers, cycles per frame and weight ROM bits (compiler/hw/conv.py,
the formulas of rtl/conv2d.v's header), and per output pixel the real multiplies of the direct
product against FFTs across the channel blocks (kernels.circulant_conv.fft_conv_multiplies).
No training, no simulation (tests/sim/test_conv_rtl.py confirms the engine's values and cycles
with CIRC_B). --quick: the same table (it takes about a second).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONV2 = "L2_conv2d"


def lenet5_planned(block: int, multipliers: int):
    """The integer LeNet-5 (benchmarks/cnn_graphs.py) with conv2 block-circulant at `block` (1: dense),
    planned by the plan pass."""
    from benchmarks.cnn_graphs import build_cnn, conv, dense, flatten, maxpool
    from compiler.passes.base import Context
    from compiler.passes.manager import run_flow
    from kernels.circulant_conv import conv_circulant_expand
    from kernels.circulant_mac import block_grid

    graph = build_cnn(
        (1, 28, 28),
        [
            conv(6, k=5, pad=2),
            maxpool(2),
            conv(16, k=5, pad=0),
            maxpool(2),
            flatten(),
            dense(120),
            dense(84),
            dense(10),
        ],
    )
    graph.meta["planned"] = False
    for node in graph.nodes:
        for key in ("engine", "multipliers", "p_co", "p_ci", "p_k", "delta_bits"):
            node.annotations.pop(key, None)
    if block > 1:
        node = graph.node(CONV2)
        w = graph.params[node.inputs[1]]
        p, q = block_grid(16, 6, block)
        v = np.random.default_rng(0).integers(-40, 41, size=(p, q, block, 5, 5))
        graph.params[node.inputs[1]] = conv_circulant_expand(v, 16, 6).astype(w.dtype)
        node.attrs["circulant"] = {"block": block, "p": p, "q": q}
    ctx = Context(data=None, recipe={"plan": {"multipliers": multipliers}}, log=lambda *_: None, progress=False)
    return run_flow(graph, ["plan"], ctx)[0]


def main() -> None:
    from kernels.circulant_conv import fft_conv_multiplies

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the same table (it is quick anyway)")
    ap.add_argument("--multipliers", type=int, default=16, help="[plan] multipliers (default 16)")
    args = ap.parse_args()
    print(f"LeNet-5 conv2 (6x14x14 -> 16x10x10, 5x5), plan multipliers = {args.multipliers}")
    head = "b  | P_CO x P_CI x P_K | multipliers | cycles/frame | weight ROM bits | direct mults/px | FFT mults/px"
    print(head)
    print("-" * len(head))
    for b in (1, 4, 8):
        node = lenet5_planned(b, args.multipliers).node(CONV2)
        a, cost = node.annotations, node.annotations["cost"]["conv"]
        split = f"{a['p_co']} x {a['p_ci']} x {a['p_k']}"
        if b > 1:
            m = fft_conv_multiplies((6, 14, 14), 16, (5, 5), b, (10, 10))
            mults = f"{m.direct:>15} | {m.fft:>12.0f}"
        else:
            mults = f"{5 * 5 * 16 * 6:>15} | {'-':>12}"
        print(
            f"{b:<2} | {split:>17} | {a['multipliers']:>11} | {cost['compute_cycles']:>12} | "
            f"{cost['weight_rom_bits']:>15} | {mults}"
        )


if __name__ == "__main__":
    main()
