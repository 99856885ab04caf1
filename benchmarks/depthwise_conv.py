"""A depthwise 3x3 layer on the conv engine (rtl/conv2d.v DEPTHWISE = 1) against the same layer as a
groups = 1 conv with block-diagonal weights (what mpc built before depthwise support): cycles by the
engine's timing model (compiler/hw, the rtl header's timing), ROM bits, and yosys cells of the
engine alone (`synth_xilinx -flatten`, as compiler/fpga/synth.py runs it for xc7a35t).

    python benchmarks/depthwise_conv.py [--quick] [--multipliers 9 1] [--no-synth]

The layer: DS-CNN KWS's depthwise layers, 64 channels on a 25x5 map, 3x3, stride 1, pads 1,
8-bit weights and activations, requantized to 8 bits. For each multiplier budget, each form takes
the engine's fastest split within it (compiler/hw/conv.py fastest_conv_split). --quick: 16
channels.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import kernels
import rtl
from benchmarks.cnn_graphs import build_cnn, conv, dense, flatten
from compiler.fpga.synth import resources
from compiler.hw import conv as hw_conv


def layer(c: int, h: int, w: int, depthwise: bool, seed: int = 0):
    """A planned graph quantize -> 3x3 conv -> requantize -> flatten -> dense, the conv depthwise
    (group = C, weights [C, 1, 3, 3]) or its block-diagonal groups = 1 twin; (graph, conv node)."""
    graph = build_cnn((c, h, w), [conv(c), flatten(), dense(12)], seed)
    node = next(n for n in graph.nodes if n.op == "conv2d")
    w_dw = np.random.default_rng(seed).integers(-128, 128, size=(c, 1, 3, 3)).astype(np.int32)
    if depthwise:
        weights = w_dw
        node.attrs["group"] = c
    else:
        weights = np.zeros((c, c, 3, 3), dtype=np.int32)
        weights[np.arange(c), np.arange(c)] = w_dw[:, 0]
    graph.params[node.inputs[1]] = weights
    node.attrs["acc_bits"] = kernels.conv_accumulator_bits(weights, graph.params[node.inputs[2]], 8)
    return graph, node


def plan(graph, node, multipliers: int):
    """The fastest split within `multipliers`, written into the node's annotations; its spec."""
    split = hw_conv.fastest_conv_split(node, multipliers)
    node.annotations.update(p_co=split.p_co, p_ci=split.p_ci, p_k=split.p_k, multipliers=split.multipliers)
    follow = graph.nodes[graph.nodes.index(node) + 1]
    return hw_conv.Conv().spec(graph, node, follow, 0, list(node.attrs["in_shape"]))


def synthesize(graph, spec, folder: Path) -> dict:
    """The engine alone through synth_xilinx -flatten: LUT, FF, DSP, BRAM, LUTRAM."""
    hw_conv.Conv().write_roms(graph, spec, folder)
    params = dict(spec.parameters, W_FILE=str(folder / spec.w_file), B_FILE=str(folder / spec.b_file))
    chparams = " ".join(f"-set {k} {json.dumps(v) if isinstance(v, str) else v}" for k, v in params.items())
    sources = " ".join(str(s) for s in rtl.paths("conv2d.v"))
    script = (
        f"read_verilog -defer {sources}; chparam {chparams} conv2d; synth_xilinx -family xc7 -top conv2d -flatten; "
        f"tee -q -o {folder / 'stat.json'} stat -json"
    )
    subprocess.run(["yosys", "-q", "-p", script], cwd=folder, check=True, capture_output=True)
    stat = json.loads((folder / "stat.json").read_text())
    cells = next(iter(stat["modules"].values()))["num_cells_by_type"]
    return resources(cells, "fpga")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 channels instead of 64")
    parser.add_argument("--multipliers", type=int, nargs="+", default=[9, 1])
    parser.add_argument("--no-synth", action="store_true", help="cycles and ROM only")
    args = parser.parse_args()
    c, h, w = (16 if args.quick else 64), 25, 5
    synth = not args.no_synth and shutil.which("yosys") is not None
    print(f"{c} channels, {h}x{w} map, 3x3, stride 1, pads 1, int8; engine alone (compiler/hw timing model)")
    head = f"{'form':<26} {'mult':>4} {'P_CO x P_CI x P_K':>17} {'cycles/frame':>12} {'interval':>9} {'ROM bits':>9}"
    print(head + ("  LUT    FF  DSP  BRAM  LUTRAM" if synth else ""))
    for budget in args.multipliers:
        for name, depthwise in (("depthwise (DEPTHWISE=1)", True), ("block-diagonal (group=1)", False)):
            graph, node = layer(c, h, w, depthwise)
            spec = plan(graph, node, budget)
            st, cost = spec.stage, spec.cost
            split = f"{st.p_co} x {st.p_ci} x {st.p_k}"
            line = (
                f"{name:<26} {spec.multipliers:>4} {split:>17} {cost.compute_cycles:>12} {cost.interval:>9} "
                f"{cost.rom_bits:>9}"
            )
            if synth:
                with tempfile.TemporaryDirectory() as tmp:
                    r = synthesize(graph, spec, Path(tmp))
                line += f" {r['lut']:>5} {r['ff']:>5} {r['dsp']:>4} {r['bram']:>5} {r['lutram']:>7}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
