"""cocotb bench for rtl/pool2d.v against kernels.pool2d.

Environment: MPC_TB_CONFIG = JSON {"parameters": the DUT's parameters (C, H, W, KH, KW,
STRIDE, PAD_*, MODE, IN_BITS), "stimulus": .npz with x_q [frames, C, H, W]}. Streams are
channel-last raster order (for y, for x, for c).
"""
import json
import os
import random

import cocotb
import numpy as np

from kernels.pool2d import avg_pool2d, max_pool2d
from engine_checks import check_values, read_signed_out
from test_conv2d import Geometry, _check_timing
from test_design import collect_stream, drive_stream, expect_no_output, start_clock_and_reset

PIPELINE_CYCLES = 2  # rtl/pool2d.v: output completes at its last read + 3


def _load():
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    p = cfg["parameters"]
    x_q = np.asarray(np.load(cfg["stimulus"])["x_q"], dtype=np.int64)
    pool = max_pool2d if p["MODE"] == 0 else avg_pool2d
    pads = (p["PAD_T"], p["PAD_L"], p["PAD_B"], p["PAD_R"])
    expected = pool(x_q, (p["KH"], p["KW"]), p["STRIDE"], pads)
    return p, x_q.transpose(0, 2, 3, 1), expected.transpose(0, 2, 3, 1)


def _as_conv(p):
    """pool2d's schedule is conv2d's with all channels in one word and one per group."""
    return dict(p, C_IN=p["C"], C_OUT=p["C"], P_CO=1, P_CI=p["C"])


@cocotb.test()
async def full_rate_matches_kernel_and_timing(dut):
    """Back-to-back inputs, out_ready high: exact values and the documented cycle timing."""
    p, x_stream, expected = _load()
    assert len(dut.out_data) == p["IN_BITS"]
    await start_clock_and_reset(dut)
    accepted = []
    driver = cocotb.start_soon(drive_stream(dut, x_stream.ravel(), p["IN_BITS"], accepted))
    beats = await collect_stream(dut, expected.size, read_signed_out)
    await driver
    check_values(beats, expected)
    _check_timing(_as_conv(p), accepted, [edge for edge, _ in beats], x_stream.shape[0],
                  pipeline=PIPELINE_CYCLES)
    await expect_no_output(dut, Geometry(_as_conv(p)).row_cyc * 2 + 20)


@cocotb.test()
async def random_handshakes_match_kernel(dut):
    """Random gaps on in_valid and random out_ready back-pressure: values only."""
    p, x_stream, expected = _load()
    await start_clock_and_reset(dut)
    rng = random.Random(5)
    driver = cocotb.start_soon(
        drive_stream(dut, x_stream.ravel(), p["IN_BITS"], gap_prob=0.3, rng=rng))
    beats = await collect_stream(dut, expected.size, read_signed_out, ready_prob=0.4, rng=rng)
    await driver
    check_values(beats, expected)
