"""Hardware sweep: the digits example at several weight widths and multiplier counts.

    python benchmarks/hardware_sweep.py [--quick] [--out DIR] [--html compare.html]

Compiles examples/digits_mlp.onnx once per setting (a recipe with `[lower] weight_bits`, `[plan]`
`multipliers`), synthesizing each build, then prints `mpc compare`'s table and each build's
modelled energy gain over the float32 baseline, beside CirCNN's claimed 6-102x.

CirCNN (Ding et al., MICRO 2017) claims 6x-102x energy efficiency for block-circulant
designs against other FPGA/ASIC implementations; our ratio is against a float32 processor
reading weights from DRAM, by the Horowitz (ISSCC 2014) model in compiler/report/energy.py.
The two are not the same baseline: the line is a sanity check of magnitude, not a match.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from compiler import api
from compiler.report.compare import compare, load_build

CIRCNN_CLAIM = (6.0, 102.0)
FULL = [(bits, mult) for bits in (8, 6, 4) for mult in (4, 16)]
QUICK = [(8, 16), (6, 16), (4, 4)]


def build(out_root: Path, weight_bits: int, multipliers: int, synth_timeout: float) -> Path:
    out = out_root / f"w{weight_bits}-m{multipliers}"
    recipe = out_root / f"{out.name}.toml"
    recipe.write_text(f"[lower]\nweight_bits = {weight_bits}\n[plan]\nmultipliers = {multipliers}\n")
    api.compile(
        REPO_ROOT / "examples" / "digits_mlp.onnx",
        REPO_ROOT / "examples" / "digits.npz",
        out,
        recipe=recipe,
        force=True,
        log=lambda *_: None,
        progress=False,
        synth_timeout=synth_timeout,
    )
    return out


def circnn_lines(builds: list[Path]) -> list[str]:
    low, high = CIRCNN_CLAIM
    lines = [f"energy gain over float32 (modelled) vs CirCNN's claimed {low:g}-{high:g}x:"]
    for b in builds:
        ratio = load_build(b)["energy_ratio"]
        where = "below" if ratio < low else "within" if ratio <= high else "above"
        lines.append(f"  {b.name:>8}: {ratio:8.1f}x  ({where} CirCNN's range)")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"3 settings {QUICK} instead of {len(FULL)}")
    p.add_argument("--out", type=Path, help="keep the builds in this folder (default: a temporary one)")
    p.add_argument("--html", type=Path, help="also write the comparison as an HTML page")
    p.add_argument("--synth-timeout", type=float, default=300.0, help="yosys limit per build, seconds")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mpc-hw-sweep-") as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        builds = []
        for weight_bits, multipliers in QUICK if args.quick else FULL:
            start = time.perf_counter()
            builds.append(build(root, weight_bits, multipliers, args.synth_timeout))
            synth = load_build(builds[-1])
            print(
                f"built {builds[-1].name} in {time.perf_counter() - start:.1f} s "
                f"(LUT {synth['lut']}, DSP {synth['dsp']})",
                flush=True,
            )
        print()
        print(compare(builds, html_path=args.html))
        print()
        print("\n".join(circnn_lines(builds)))
        if args.html:
            print(f"\nwrote {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
