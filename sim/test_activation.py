"""cocotb bench for rtl/activation.v against kernels.activation.

Environment: MPC_TB_CONFIG = JSON {"parameters": the DUT's parameters (IN_BITS, OUT_BITS,
ROM_FILE), "stimulus": .npz with table [2**IN_BITS] and x_q [n]}.
"""

import json
import os
import random

import cocotb
import numpy as np
from engine_checks import check_values, read_signed_out
from streams import collect_stream, drive_stream, expect_no_output, start_clock_and_reset

from kernels.activation import TableSchedule, table_lookup


def _load():
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    data = np.load(cfg["stimulus"])
    x_q = np.asarray(data["x_q"], dtype=np.int64)
    return cfg["parameters"], x_q, table_lookup(x_q, data["table"])


@cocotb.test()
async def full_rate_matches_kernel_and_timing(dut):
    """Back-to-back inputs, out_ready high: exact values, one element per edge, latency 1."""
    p, x_q, expected = _load()
    assert len(dut.out_data) == p["OUT_BITS"]
    await start_clock_and_reset(dut)
    accepted: list[int] = []
    driver = cocotb.start_soon(drive_stream(dut, x_q, p["IN_BITS"], accepted))
    beats = await collect_stream(dut, expected.size, read_signed_out)
    await driver
    check_values(beats, expected)
    schedule = TableSchedule(len(x_q))
    outputs = [edge for edge, _ in beats]
    assert accepted == list(range(accepted[0], accepted[0] + len(x_q))), "inputs not accepted back to back"
    assert outputs == schedule.output_edges(accepted), "output edges differ from the schedule"
    assert outputs[-1] - accepted[0] == schedule.latency
    schedule.check_edges(accepted, outputs)
    await expect_no_output(dut, 10)


@cocotb.test()
async def random_handshakes_match_kernel(dut):
    """Random gaps on in_valid and random out_ready back-pressure: values and the FIFO's edges."""
    p, x_q, expected = _load()
    await start_clock_and_reset(dut)
    rng = random.Random(7)
    accepted: list[int] = []
    driver = cocotb.start_soon(drive_stream(dut, x_q, p["IN_BITS"], accepted, gap_prob=0.3, rng=rng))
    beats = await collect_stream(dut, expected.size, read_signed_out, ready_prob=0.4, rng=rng)
    await driver
    check_values(beats, expected)
    TableSchedule(len(x_q)).check_edges(accepted, [edge for edge, _ in beats])
    await expect_no_output(dut, 10)


@cocotb.test()
async def stalled_output_fills_fifo(dut):
    """out_ready low: exactly two elements are taken, then in_ready falls until one leaves."""
    p, x_q, expected = _load()
    await start_clock_and_reset(dut)
    accepted: list[int] = []
    driver = cocotb.start_soon(drive_stream(dut, x_q[:3], p["IN_BITS"], accepted))
    for _ in range(8):  # out_ready stays low (start_clock_and_reset cleared it)
        await cocotb.triggers.FallingEdge(dut.clk)
    assert len(accepted) == 2, f"{len(accepted)} elements taken with the output stalled"
    beats = await collect_stream(dut, 3, read_signed_out)
    await driver
    check_values(beats, expected[:3])
    TableSchedule(3).check_edges(accepted, [edge for edge, _ in beats])
