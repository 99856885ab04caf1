"""rtl/concat.v (the channel join) against kernels.concat: cocotb benches (Icarus) on several
channel counts, widths and alignments, a planted bug the bench must catch, Verilator lint and
yosys without latches.

Run from the repository root: python -m pytest tests/sim/test_concat_rtl.py -q
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import rtl
from kernels.fixed import int_range
from sim.runner import lint_verilator, run_cocotb
from tests.sim.test_rtl_modules import STALL_ENV, _assert_passed, latch_report, synthesize

SOURCES = rtl.paths("concat.v")

CASES = {
    # the dag_models concat: both inputs Q(8, f) of one frac, 4 + 4 channels on a few pixels
    "same_format_4_4": dict(A_BITS=8, B_BITS=8, C_A=4, C_B=4, SHIFT_A=0, SHIFT_B=0, OUT_BITS=8, pixels=9),
    # b finer by 3 bits (rounded half up), unequal channel counts, one channel of a per pixel
    "align_b_1_3": dict(A_BITS=8, B_BITS=8, C_A=1, C_B=3, SHIFT_A=0, SHIFT_B=3, OUT_BITS=8, pixels=12),
    # a narrower and finer than b, shifted into b's wider format: every code of a appears
    "narrow_a_shifted": dict(A_BITS=4, B_BITS=6, C_A=5, C_B=2, SHIFT_A=2, SHIFT_B=0, OUT_BITS=6, pixels=8),
    # vectors: one "pixel" of 7 + 1 elements; a shifted beyond its width (every value rounds to 0)
    "vector_7_1": dict(A_BITS=8, B_BITS=8, C_A=7, C_B=1, SHIFT_A=9, SHIFT_B=0, OUT_BITS=8, pixels=1),
}


def module_parameters(case: dict) -> dict:
    return {k: v for k, v in case.items() if k != "pixels"}


def concat_case(case: dict, directory: Path, seed: int = 0, frames: int = 3) -> Path:
    """Both input streams for `frames` frames: every input's extreme codes (min, -1, 0, 1, max)
    first, then random codes."""
    rng = np.random.default_rng(seed)
    streams = {}
    for name, bits, c in (("a_q", case["A_BITS"], case["C_A"]), ("b_q", case["B_BITS"], case["C_B"])):
        lo, hi = int_range(bits)
        n = frames * case["pixels"] * c
        values = rng.integers(lo, hi + 1, n)
        corners = np.array([lo, -1, 0, 1, hi])[:n]
        values[: corners.size] = corners
        streams[name] = values
    stimulus = directory / "stimulus.npz"
    np.savez(stimulus, **streams)
    return stimulus


def run_concat(params: dict, stimulus: Path, build_dir: Path, sources=None, simulator: str = "icarus") -> dict:
    config = {"parameters": params, "stimulus": str(stimulus)}
    return run_cocotb(
        sources or SOURCES,
        "concat",
        "test_concat",
        build_dir,
        simulator=simulator,
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config), **STALL_ENV},
    )


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_concat_matches_kernel(case, tmp_path):
    params = module_parameters(CASES[case])
    lint_verilator(SOURCES, "concat", params)
    _assert_passed(run_concat(params, concat_case(CASES[case], tmp_path), tmp_path / "build"))


@pytest.mark.parametrize(
    "bug, fix",
    [
        ("on_b  <= on_b ^ last;", "on_b  <= on_b ^ (last || taken == 0);"),  # b's turn after one element
        (".SHIFT   (SHIFT_B),", ".SHIFT   (0),"),  # b not aligned
    ],
    ids=["turn_too_early", "b_not_aligned"],
)
def test_the_bench_catches_a_planted_bug(tmp_path, bug, fix):
    """A copy of rtl/concat.v with one line changed must fail the bench (order or values)."""
    broken = tmp_path / "rtl"
    broken.mkdir()
    for path in SOURCES:
        shutil.copy(path, broken / path.name)
    text = (broken / "concat.v").read_text()
    assert text.count(bug) == 1
    (broken / "concat.v").write_text(text.replace(bug, fix))
    case = CASES["align_b_1_3"] | {"C_A": 3}
    params = module_parameters(case)
    result = run_concat(
        params, concat_case(case, tmp_path, frames=1), tmp_path / "build", [broken / p.name for p in SOURCES]
    )
    assert result["failed"] >= 1, result


def test_concat_synthesizes_without_latches(tmp_path):
    log = synthesize(tmp_path, SOURCES, "concat", module_parameters(CASES["align_b_1_3"]))
    assert "Printing statistics" in log and latch_report(log) == []
