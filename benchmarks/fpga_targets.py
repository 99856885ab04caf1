"""Builds fitted to an FPGA, placed and routed with the open flow: resources, Fmax, latency,
energy against the three baselines (issue #14; docs/fpga.md).

    python benchmarks/fpga_targets.py [--quick] [--target ice40-up5k] [--builds demo,admm,circulant,cnn]

Each build is `mpc compile` of a bundled digits model with a recipe, for the target: the demo MLP
(8-bit PTQ), ADMM 90% / 4-bit, block-circulant b = 8, and the digits CNN. Prints what the fitting
chose, nextpnr's utilisation and Fmax, the latency at that Fmax, and the energy ratios against
float32 with weights in DRAM, float32 with weights in SRAM and the uncompressed design (what
compression saved). A build the device cannot hold prints the refusal. --quick: the demo only.
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

EXAMPLES = ROOT / "examples"
BUILDS = {
    "demo": ("digits_mlp.onnx", None),
    "admm": ("digits_mlp.onnx", 'passes = ["canonicalize", "admm", "lower"]\n[admm]\nsparsity = 0.9\nbits = 4\n'),
    "circulant": ("digits_mlp.onnx", 'passes = ["canonicalize", "circulant", "lower"]\n[circulant]\nblock_size = 8\n'),
    "cnn": ("digits_cnn.onnx", None),
}


def build(name: str, target: str, work: Path) -> dict:
    model, recipe_text = BUILDS[name]
    recipe = None
    if recipe_text:
        recipe = work / f"{name}.toml"
        recipe.write_text(recipe_text)
    start = time.perf_counter()
    try:
        report = api.compile(
            EXAMPLES / model,
            EXAMPLES / "digits.npz",
            work / name,
            target=target,
            recipe=recipe,
            log=lambda *_: None,
            progress=False,
        )
    except api.MpcError as e:
        return {"name": name, "refused": str(e), "seconds": time.perf_counter() - start}
    return {"name": name, "report": report, "seconds": time.perf_counter() - start}


def print_rows(rows: list[dict], target: str) -> None:
    print(f"\n{target}: builds of the bundled digits models, fitted, placed and routed")
    print(
        f"{'build':10} {'acc':>6} {'mults':>5} {'logic':>11} {'DSP':>5} {'RAM':>6} {'Fmax MHz':>8} "
        f"{'cycles':>6} {'lat us':>7} {'inf/s':>8} {'/f32 DRAM':>9} {'/f32 SRAM':>9} {'/uncomp':>7} {'s':>5}"
    )
    for row in rows:
        if "refused" in row:
            print(f"{row['name']:10} refused: {row['refused']}")
            continue
        r = row["report"]
        hw = r["hardware"]
        util, base = hw.get("utilization") or {}, hw.get("energy_baselines", {})
        frac = {k: f"{util[k][0]}/{util[k][1]}" if k in util else "n/a" for k in ("logic", "dsp", "block_ram")}
        ratio = {
            k: f"{base[k]['ratio']:,.1f}x" if k in base else "n/a"
            for k in ("float32_dram", "float32_sram", "uncompressed")
        }
        fit = (hw.get("fit") or {}).get("chosen_multipliers", "-")
        print(
            f"{row['name']:10} {r['compiled']['test_accuracy']:6.4f} {fit!s:>5} {frac['logic']:>11} {frac['dsp']:>5} "
            f"{frac['block_ram']:>6} {hw['fmax_mhz'] or float('nan'):8.2f} {hw['cycles_per_inference']:6} "
            f"{hw['latency_us']:7.2f} {hw['throughput_per_s']:8,.0f} {ratio['float32_dram']:>9} "
            f"{ratio['float32_sram']:>9} {ratio['uncompressed']:>7} {row['seconds']:5.0f}"
        )
    print("cycles: the engines' timing estimate (mpc simulate measures them); latency and inf/s at Fmax")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the demo only")
    ap.add_argument("--target", default="ice40-up5k", help="an FPGA target (default: ice40-up5k)")
    ap.add_argument("--builds", default=",".join(BUILDS), help=f"comma list of {', '.join(BUILDS)}")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mpc-fpga-"))
    names = ["demo"] if args.quick else args.builds.split(",")
    rows = []
    for name in names:
        print(f"== {name} for {args.target}", flush=True)
        rows.append(build(name, args.target, work))
    print_rows(rows, args.target)


if __name__ == "__main__":
    main()
