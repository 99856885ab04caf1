"""`mpc`: the command line. One module per command, each with `add_arguments(parser)` and
`run(args)`; common.py holds what they share. Errors the user can fix (every `MpcError`) print
one line and exit 2, never a traceback."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys

from compiler.cli import audit, check, compare, compile, explore, simulate
from compiler.cli.common import ArgumentsError, Parser
from compiler.errors import MpcError
from compiler.outdir import handle_signals

DESCRIPTION = """\
mpc: a hardware-aware compression compiler for neural-network classifiers.

  mpc check model.onnx
  mpc compile model.onnx --data data.npz --target fpga -o build/
  mpc simulate build/ --samples 256 [--simulator verilator] [--serial]
  mpc audit build/ [--attacks threshold,shadow,lira,label_only] [--shadows 16]
  mpc audit build/ --attacks backdoor --trigger trigger.npz
  mpc compare build-a/ build-b/ ... [--html compare.html]
  mpc explore model.onnx --data data.npz --space space.toml -o explore/ [--workers N] [--budget N]

check: what mpc will do with every node (engine, fused, folded, refused and why), no data needed.
compile: ONNX -> passes (canonicalize, [admm, circulant,] lower, plan) -> integer graph
(graph.json + params.npz), model.int.onnx, synthesizable Verilog (rtl/) and report.md/json.
simulate: runs the generated Verilog in a cocotb testbench and compares every output with
the golden integer executor, bit for bit.
audit: membership-inference attacks on the original float model and on the compiled model's
exact integer outputs (audit.json, ROC plots, report.md section; docs/audit.md); with a
trigger file, the backdoor's attack success rate on both (docs/security.md).
compare: one table across builds (accuracy, compression, hardware cost, cycles, energy, attacks).
explore: a grid (or a budgeted search) of recipes, each point built as a Ray task; results table,
Pareto set and plots (docs/explore.md).
"""

# in the order `mpc --help` lists them
COMMANDS = {
    "compile": compile,
    "check": check,
    "compare": compare,
    "simulate": simulate,
    "audit": audit,
    "explore": explore,
}


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="mpc", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.HELP, description=command.DESCRIPTION))
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except ArgumentsError as e:  # its message is the whole line
        print(e, file=sys.stderr)
        return 2
    # SIGTERM and SIGHUP end a command as Ctrl-C does: temporary folders removed, children killed
    with handle_signals():
        try:
            return COMMANDS[args.command].run(args)
        except MpcError as e:
            print(f"mpc {args.command}: error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as e:
            signum = getattr(e, "signum", signal.SIGINT)
            with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
                print(f"mpc {args.command}: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
            return 128 + signum
