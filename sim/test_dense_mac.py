"""cocotb bench for rtl/dense_mac.v against kernels.dense_mac (+ kernels.requantize).

Environment: MPC_TB_CONFIG = JSON {"parameters": the DUT's parameters (N_IN, N_OUT, P, IN_BITS,
..., REQUANT, PROTECT), "stimulus": .npz with w_q [N_OUT, N_IN], b_q [N_OUT], x_q [vectors, N_IN],
and optionally "flips" (ROM bits flipped before the run) and "expect_fault"
(sim/engine_checks.py apply_rom_flips, check_fault)}. The ROM files the DUT loads must hold the
same w_q and b_q (kernels/rom.py; as codewords with PROTECT != 0). Every test checks `fault` at
its end; with expect_fault only `fault` is checked.
"""

import json
import os
import random

import cocotb
import numpy as np
from engine_checks import (
    apply_rom_flips,
    check_fault,
    check_row_timing,
    check_values,
    expects_fault,
    out_width,
    read_signed_out,
)
from streams import collect_stream, drive_stream, expect_no_output, start_clock_and_reset

from kernels import dense_mac, requantize
from kernels.dense_mac import dense_schedule


def _load():
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    params = cfg["parameters"]
    stim = np.load(cfg["stimulus"])
    w_q, b_q, x_q = (np.asarray(stim[k], dtype=np.int64) for k in ("w_q", "b_q", "x_q"))
    expected = dense_mac(x_q, w_q, b_q)
    if params["REQUANT"]:
        expected = requantize(expected, params["SHIFT"], params["OUT_BITS"], bool(params["RELU"]))
    return cfg, params, x_q, expected


@cocotb.test()
async def full_rate_matches_kernel_and_timing(dut):
    """Back-to-back inputs, out_ready high: exact values and the documented cycle timing."""
    cfg, params, x_q, expected = _load()
    assert len(dut.out_data) == out_width(params), f"out_data is {len(dut.out_data)} bits, expected {out_width(params)}"
    await start_clock_and_reset(dut)
    apply_rom_flips(dut, cfg)
    schedule = dense_schedule(params["N_IN"], params["N_OUT"], params["P"])

    accepted = []
    driver = cocotb.start_soon(drive_stream(dut, x_q.ravel(), params["IN_BITS"], accepted))
    beats = await collect_stream(dut, expected.size, read_signed_out)
    await driver
    if not expects_fault(cfg):
        check_values(beats, expected)
        check_row_timing(accepted, [edge for edge, _ in beats], schedule)
    await expect_no_output(dut, schedule.n_in + schedule.words + 10)
    check_fault(dut, cfg)


@cocotb.test()
async def random_handshakes_match_kernel(dut):
    """Random gaps on in_valid and random out_ready back-pressure: values only."""
    cfg, params, x_q, expected = _load()
    await start_clock_and_reset(dut)
    apply_rom_flips(dut, cfg)
    rng = random.Random(7)
    driver = cocotb.start_soon(drive_stream(dut, x_q.ravel(), params["IN_BITS"], gap_prob=0.3, rng=rng))
    beats = await collect_stream(dut, expected.size, read_signed_out, ready_prob=0.4, rng=rng)
    await driver
    if not expects_fault(cfg):
        check_values(beats, expected)
    check_fault(dut, cfg)
