"""Bench of sim/streams.py's expect_no_output on tests/sim/late_beat.v (one beat DELAY edges
after reset): whether the check catches the beat for a window of MPC_NO_OUTPUT_CYCLES cycles,
and the simulation time it ends at. Writes {"caught", "start_ns", "end_ns"} to MPC_SIM_RESULT."""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.utils import get_sim_time
from streams import expect_no_output, start_clock_and_reset


@cocotb.test()
async def no_output_window(dut):
    cycles = int(os.environ["MPC_NO_OUTPUT_CYCLES"])
    await start_clock_and_reset(dut)
    start = get_sim_time("ns")
    try:
        await expect_no_output(dut, cycles)
        caught = False
    except AssertionError:
        caught = True
    with open(os.environ["MPC_SIM_RESULT"], "w") as f:
        json.dump({"caught": caught, "start_ns": start, "end_ns": get_sim_time("ns")}, f)
