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
from engine_checks import check_values, read_signed_out
from streams import collect_stream, drive_stream, expect_no_output, start_clock_and_reset
from test_conv2d import check_timing

from kernels.pool2d import POOL_PIPELINE_EDGES, avg_pool2d, max_pool2d, pool_geometry


def _load():
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    p = cfg["parameters"]
    x_q = np.asarray(np.load(cfg["stimulus"])["x_q"], dtype=np.int64)
    pool = max_pool2d if p["MODE"] == 0 else avg_pool2d
    pads = (p["PAD_T"], p["PAD_L"], p["PAD_B"], p["PAD_R"])
    expected = pool(x_q, (p["KH"], p["KW"]), p["STRIDE"], pads)
    return p, x_q.transpose(0, 2, 3, 1), expected.transpose(0, 2, 3, 1)


def geometry(p):
    """The DUT's schedule (kernels.pool2d.pool_geometry) from its parameters."""
    return pool_geometry(
        (p["C"], p["H"], p["W"]), (p["KH"], p["KW"]), p["STRIDE"], (p["PAD_T"], p["PAD_L"], p["PAD_B"], p["PAD_R"])
    )


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
    check_timing(geometry(p), accepted, [edge for edge, _ in beats], x_stream.shape[0], pipeline=POOL_PIPELINE_EDGES)
    await expect_no_output(dut, geometry(p).row_cycles * 2 + 20)


@cocotb.test()
async def random_handshakes_match_kernel(dut):
    """Random gaps on in_valid and random out_ready back-pressure: values only."""
    p, x_stream, expected = _load()
    await start_clock_and_reset(dut)
    rng = random.Random(5)
    driver = cocotb.start_soon(drive_stream(dut, x_stream.ravel(), p["IN_BITS"], gap_prob=0.3, rng=rng))
    beats = await collect_stream(dut, expected.size, read_signed_out, ready_prob=0.4, rng=rng)
    await driver
    check_values(beats, expected)
