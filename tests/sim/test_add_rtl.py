"""rtl/add.v (the residual join) against kernels.add: cocotb benches (Icarus) on several widths
and alignments, Verilator lint, yosys without latches, and one Verilator simulation (slow).

Run from the repository root: python -m pytest tests/sim/test_add_rtl.py -q
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import rtl
from kernels.fixed import int_range
from sim.runner import lint_verilator, run_cocotb
from tests.sim.test_rtl_modules import STALL_ENV, _assert_passed, latch_report, synthesize

SOURCES = rtl.paths("add.v")

CASES = {
    "same_frac_8": dict(A_BITS=8, B_BITS=8, SHIFT_A=0, SHIFT_B=0, SHIFT=1, OUT_BITS=8, RELU=0),
    "align_b_relu": dict(A_BITS=8, B_BITS=8, SHIFT_A=0, SHIFT_B=3, SHIFT=2, OUT_BITS=8, RELU=1),
    "narrow_exhaustive": dict(A_BITS=4, B_BITS=6, SHIFT_A=2, SHIFT_B=0, SHIFT=0, OUT_BITS=5, RELU=0),
    "shift_beyond_inputs": dict(A_BITS=8, B_BITS=3, SHIFT_A=0, SHIFT_B=7, SHIFT=9, OUT_BITS=4, RELU=1),
}


def add_case(params: dict, directory: Path, seed: int = 0):
    """Stimulus: every pair of codes where there are at most 1024, else every pair of extreme codes
    (min, -1, 0, 1, max) and random pairs."""
    rng = np.random.default_rng(seed)
    (alo, ahi), (blo, bhi) = int_range(params["A_BITS"]), int_range(params["B_BITS"])
    if (ahi - alo + 1) * (bhi - blo + 1) <= 1024:
        pairs = np.array(list(itertools.product(range(alo, ahi + 1), range(blo, bhi + 1))))
        pairs = pairs[rng.permutation(len(pairs))]
    else:
        corners = np.array(list(itertools.product((alo, -1, 0, 1, ahi), (blo, -1, 0, 1, bhi))))
        random_pairs = np.stack([rng.integers(alo, ahi + 1, 300), rng.integers(blo, bhi + 1, 300)], axis=1)
        pairs = np.concatenate([corners, random_pairs])
    stimulus = directory / "stimulus.npz"
    np.savez(stimulus, a_q=pairs[:, 0], b_q=pairs[:, 1])
    return stimulus


def run_add(params, stimulus, build_dir, simulator="icarus"):
    config = {"parameters": params, "stimulus": str(stimulus)}
    return run_cocotb(
        SOURCES,
        "add",
        "test_add",
        build_dir,
        simulator=simulator,
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config), **STALL_ENV},
    )


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_add_matches_kernel(case, tmp_path):
    params = CASES[case]
    lint_verilator(SOURCES, "add", params)
    _assert_passed(run_add(params, add_case(params, tmp_path), tmp_path / "build"))


def test_add_synthesizes_without_latches(tmp_path):
    log = synthesize(tmp_path, SOURCES, "add", CASES["align_b_relu"])
    assert "Printing statistics" in log and latch_report(log) == []


@pytest.mark.slow
def test_add_in_verilator(tmp_path):
    params = CASES["align_b_relu"]
    _assert_passed(run_add(params, add_case(params, tmp_path), tmp_path / "build_verilator", "verilator"))
