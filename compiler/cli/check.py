"""`mpc check MODEL`: what mpc will do with every node (compiler/check.py); exit 2 if any is refused."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "say what mpc will do with every node of a model, without data or compiling"
DESCRIPTION = (
    "Print, for every node of MODEL.onnx, what mpc will do with it: imported as which op "
    "and where that op ends up in hardware (which engine, fused, free), folded as a constant, "
    "removed by import normalization, or refused and why. Exits 2 if anything is refused."
)


def add_arguments(ch: argparse.ArgumentParser) -> None:
    ch.add_argument("model", type=Path, help="the ONNX model to check")


def run(args) -> int:
    from compiler.check import check, render

    verdicts = check(args.model)
    print(render(args.model, verdicts))
    return 2 if any(v.status == "refused" for v in verdicts) else 0
