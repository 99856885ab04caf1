"""`mpc compare OUT...`: one table across builds (compiler/report/compare.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from compiler.errors import MpcError

HELP = "compare builds: accuracy, compression, hardware cost, energy, attacks"
DESCRIPTION = (
    "Print one table across builds from each OUT/report.json (and OUT/audit.json "
    "where `mpc audit` ran); optionally write an HTML page with plots."
)


def add_arguments(k: argparse.ArgumentParser) -> None:
    k.add_argument("outs", type=Path, nargs="+", metavar="OUT", help="folders written by `mpc compile`")
    k.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML page with plots")


def run(args) -> int:
    from compiler.report.compare import compare

    try:
        print(compare(args.outs, html_path=args.html))
    except OSError as e:
        raise MpcError(f"{args.html}: cannot write ({e.strerror})") from None
    if args.html:
        print(f"wrote {args.html}")
    return 0
