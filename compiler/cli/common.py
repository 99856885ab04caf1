"""What every `mpc` command shares: the parser whose errors are one line, the option value types,
and the log the --quiet commands use."""

from __future__ import annotations

import argparse
import math
import re

from compiler.errors import MpcError

SEED_MAX = 2**32 - 1  # numpy's legacy seeding takes 0..2**32-1; passes add small offsets for torch


class ArgumentsError(MpcError):
    """A bad command line: one line, exit 2. The message is the whole line (`mpc compile: error: ...`)."""


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (`mpc compile: error: ...`) and no usage block."""

    def error(self, message: str):
        # "argument --seed: --seed must be ..." -> "--seed must be ..." (our checks name the option)
        m = re.fullmatch(r"argument [^:]+: (--\S+ .*)", message)
        raise ArgumentsError(f"{self.prog}: error: {m.group(1) if m else message}")


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"--seed must be an integer in 0..{SEED_MAX} (got {text!r})")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"--synth-timeout must be a positive number of seconds (got {text!r}; --no-synth skips synthesis)"
        )
    return value


def non_negative(option: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise argparse.ArgumentTypeError(f"{option} must be an integer >= 0 (got {text!r})")
        return value

    return parse


def positive(option: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"{option} must be an integer >= 1 (got {text!r})")
        return value

    return parse


def accuracy(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"--bitflip-target must be an accuracy in 0..1 (got {text!r})")
    return value


def log_of(args):
    """print, or nothing with --quiet."""
    return (lambda *_: None) if args.quiet else print
