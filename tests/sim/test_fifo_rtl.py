"""rtl/fifo.v (the FIFO in front of a join's early input): its cocotb bench (Icarus) on several
depths and widths, Verilator lint. (Synthesis without latches: tests/sim/test_fork2_rtl.py.)

Run from the repository root: python -m pytest tests/sim/test_fifo_rtl.py -q
"""

from __future__ import annotations

import json

import pytest

import rtl
from sim.runner import lint_verilator, run_cocotb
from tests.sim.test_rtl_modules import STALL_ENV, _assert_passed

FIFO_CASES = {"depth1": dict(WIDTH=8, DEPTH=1), "depth2": dict(WIDTH=5, DEPTH=2), "depth7": dict(WIDTH=8, DEPTH=7)}


@pytest.mark.parametrize("case", FIFO_CASES, ids=list(FIFO_CASES))
def test_fifo_keeps_order_latency_and_depth(case, tmp_path):
    params = FIFO_CASES[case]
    sources = rtl.paths("fifo.v")
    lint_verilator(sources, "fifo", params)
    config = {"parameters": params}
    result = run_cocotb(
        sources, "fifo", "test_fifo", tmp_path / "build", parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config), **STALL_ENV},
    )  # fmt: skip
    _assert_passed(result)
