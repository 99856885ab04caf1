"""`mpc simulate OUT`: the generated Verilog against the golden executor; exit 1 on a mismatch."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "simulate the generated Verilog against the golden executor"
DESCRIPTION = (
    "Run OUT/rtl in a cocotb testbench on the first N test samples, compare every "
    "logit and the argmax with the golden integer executor, write OUT/sim.json. "
    "Exits 1 on any mismatch."
)


def add_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("out", type=Path, help="a folder written by `mpc compile`")
    s.add_argument("--samples", type=int, default=64, help="number of test samples to simulate (default: 64)")
    s.add_argument(
        "--simulator",
        default="auto",
        choices=["auto", "icarus", "verilator"],
        help="auto (default): verilator when installed and the run is long (about 100,000 clock cycles or more, "
        "from the design's estimated latency and interval) or a verilator model of this build is already "
        "compiled, icarus otherwise; icarus or verilator: that one. Verilator compiles the design once (tens of "
        "seconds, kept in OUT/sim_build/model_verilator/ for later runs) and then runs about 10x faster",
    )
    s.add_argument(
        "--serial",
        action="store_true",
        help="simulate the board top instead (rtl/serial_top.v: the design behind a UART, driven through its "
        "rx/tx pins); writes OUT/sim_serial.json and leaves the report as it is",
    )


def run(args) -> int:
    from compiler import api  # after parsing, so --help is instant

    result = api.simulate(args.out, samples=args.samples, simulator=args.simulator, serial=args.serial)
    if args.serial:
        print(
            f"{result['simulator']}: serial top, {result['samples']} samples, "
            f"{result['mismatches']} mismatches, {result['latency_first_vector']} cycles from first byte in "
            f"to last byte out at "
            f"{result['clks_per_bit']} cycles per bit ({args.out}/sim_serial.json)"
        )
        return 1 if result["mismatches"] else 0
    print(
        f"{result['simulator']}: {result['samples']} samples, {result['mismatches']} mismatches, "
        f"{result['cycles_per_inference']} cycles per inference, {_speed(result)} ({args.out}/sim.json)"
    )
    return 1 if result["mismatches"] else 0


def _speed(result: dict) -> str:
    build = "model reused" if result.get("build_reused") else f"built in {result.get('build_seconds', 0):.1f} s"
    rate = result.get("samples_per_second")
    return f"{rate:.3g} samples/s ({build})" if rate else build
