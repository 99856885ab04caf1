"""`mpc`: the command line. Errors the user can fix print one line and exit 2, never a traceback."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
mpc: a hardware-aware compression compiler for neural-network classifiers.

  mpc compile model.onnx --data data.npz --target fpga -o build/
  mpc simulate build/ --samples 256 [--simulator verilator]

compile: ONNX -> passes (canonicalize, [admm, circulant,] lower) -> integer graph
(graph.json + params.npz), model.int.onnx, synthesizable Verilog (rtl/) and report.md/json.
simulate: runs the generated Verilog in a cocotb testbench and compares every output with
the golden integer executor, bit for bit.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mpc", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compile", help="compile an ONNX classifier to an integer graph and Verilog",
                       description="Compile MODEL.onnx into OUT/: checkpoints after every pass, the integer graph, "
                                   "model.int.onnx, rtl/ and report.md/json. OUT is written completely or not at all.")
    c.add_argument("model", type=Path, help="trained classifier in ONNX (opset 13+ as torch exports it, or hand-written)")
    c.add_argument("--data", type=Path, help="DATA.npz with x_train, y_train (members), x_test, y_test (non-members); "
                                             "needed to calibrate quantization and to measure accuracy")
    c.add_argument("--target", default="fpga", choices=["fpga", "asic"], help="hardware target (default: fpga)")
    c.add_argument("-o", "--out", type=Path, required=True, help="output folder (must not exist unless --force)")
    c.add_argument("--recipe", type=Path, help="RECIPE.toml: `passes = [...]`, per-pass tables, [<pass>.layers.<node>]")
    c.add_argument("--seed", type=int, default=0, help="seed for every random choice (default: 0)")
    c.add_argument("--force", action="store_true", help="replace OUT if it exists")
    c.add_argument("--quiet", action="store_true", help="print only errors and the final line")

    s = sub.add_parser("simulate", help="simulate the generated Verilog against the golden executor",
                       description="Run OUT/rtl in a cocotb testbench on the first N test samples, compare every "
                                   "logit and the argmax with the golden integer executor, write OUT/sim.json. "
                                   "Exits 1 on any mismatch.")
    s.add_argument("out", type=Path, help="a folder written by `mpc compile`")
    s.add_argument("--samples", type=int, default=64, help="number of test samples to simulate (default: 64)")
    s.add_argument("--simulator", default="icarus", choices=["icarus", "verilator"],
                   help="icarus (default) or verilator (compiles slower, runs faster)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from compiler import api  # after parsing, so --help is instant

    try:
        if args.command == "compile":
            log = (lambda *_: None) if args.quiet else print
            report = api.compile(args.model, args.data, args.out, target=args.target, recipe=args.recipe,
                                 seed=args.seed, force=args.force, log=log, progress=not args.quiet)
            print(_compile_summary(report, args.out))
            return 0
        if args.command == "simulate":
            result = api.simulate(args.out, samples=args.samples, simulator=args.simulator)
            print(f"{result['simulator']}: {result['samples']} samples, {result['mismatches']} mismatches, "
                  f"{result['cycles_per_inference']} cycles per inference ({args.out}/sim.json)")
            return 1 if result["mismatches"] else 0
    except api.MpcError as e:
        print(f"mpc {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mpc {args.command}: interrupted", file=sys.stderr)
        return 130
    return 2


def _compile_summary(report: dict, out: Path) -> str:
    f, c = report["float"]["test_accuracy"], report["compiled"]["test_accuracy"]
    acc = "" if f is None else f"float test accuracy {f:.4f}, integer {c:.4f}; "
    return f"{acc}compression {report['model']['compression_ratio']}x; report: {out}/report.md"


if __name__ == "__main__":
    sys.exit(main())
