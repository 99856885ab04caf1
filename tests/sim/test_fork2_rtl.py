"""rtl/fork2.v (a stream broadcast to two branches): its cocotb bench (Icarus), Verilator lint,
yosys without latches (also for rtl/fifo.v, whose bench runs in tests/sim/test_fifo_rtl.py).

Run from the repository root: python -m pytest tests/sim/test_fork2_rtl.py -q
"""

from __future__ import annotations

import json

import pytest

import rtl
from sim.runner import lint_verilator, run_cocotb
from tests.sim.test_rtl_modules import STALL_ENV, _assert_passed, latch_report, synthesize


def test_fork2_delivers_every_beat_to_both_branches_once(tmp_path):
    sources = rtl.paths("fork2.v")
    lint_verilator(sources, "fork2", {})
    config = {"parameters": {}}
    result = run_cocotb(
        sources, "fork2", "test_fork2", tmp_path / "build", extra_env={"MPC_TB_CONFIG": json.dumps(config), **STALL_ENV}
    )
    _assert_passed(result)
    assert result["passed"] == 3


@pytest.mark.parametrize("module, params", [("fork2.v", {}), ("fifo.v", dict(WIDTH=8, DEPTH=76))])
def test_fork2_and_fifo_synthesize_without_latches(tmp_path, module, params):
    log = synthesize(tmp_path, rtl.paths(module), module.removesuffix(".v"), params)
    assert "Printing statistics" in log and latch_report(log) == []
