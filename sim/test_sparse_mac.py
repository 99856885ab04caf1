"""cocotb bench for rtl/sparse_mac.v against kernels.sparse_mac (+ kernels.requantize).

Environment: MPC_TB_CONFIG = JSON {"parameters": the DUT's parameters (N_IN, N_OUT, P, IN_BITS,
W_BITS, D_BITS, CNT_BITS, N_WORDS, ..., REQUANT, PROTECT), "stimulus": .npz with w_q
[N_OUT, N_IN] (the dense matrix, zeros included), b_q [N_OUT], x_q [vectors, N_IN], and
optionally "flips" (ROM bits flipped before the run) and "expect_fault" (sim/engine_checks.py
apply_rom_flips, check_fault)}. The bench encodes w_q itself (kernels.sparse_mac.encode_sparse(
w_q, P, D_BITS)); the ROM files the DUT loads must hold that encoding and b_q (kernels/rom.py
sparse_rom_words, row_count_words, vector_rom_words; as codewords with PROTECT != 0). Every
test checks `fault` at its end; with expect_fault only `fault` is checked.
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
from kernels.sparse_mac import encode_sparse, sparse_mac, sparse_schedule


def _load():
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    params = cfg["parameters"]
    stim = np.load(cfg["stimulus"])
    w_q, b_q, x_q = (np.asarray(stim[k], dtype=np.int64) for k in ("w_q", "b_q", "x_q"))
    enc = encode_sparse(w_q, params["P"], params["D_BITS"])
    assert params["N_WORDS"] == int(enc.row_words.sum()), (
        f"N_WORDS {params['N_WORDS']}, encoding has {int(enc.row_words.sum())} words"
    )
    assert int(enc.row_words.max()) < (1 << params["CNT_BITS"]), "CNT_BITS too narrow"
    expected = sparse_mac(x_q, enc, b_q)
    # The encoding only skips zeros: the dense kernel must agree (guards the stimulus itself).
    assert np.array_equal(expected, dense_mac(x_q, w_q, b_q)), "sparse and dense kernels differ"
    if params["REQUANT"]:
        expected = requantize(expected, params["SHIFT"], params["OUT_BITS"], bool(params["RELU"]))
    return cfg, params, enc, x_q, expected


@cocotb.test()
async def full_rate_matches_kernel_and_timing(dut):
    """Back-to-back inputs, out_ready high: exact values and the documented cycle timing."""
    cfg, params, enc, x_q, expected = _load()
    assert len(dut.out_data) == out_width(params), f"out_data is {len(dut.out_data)} bits, expected {out_width(params)}"
    await start_clock_and_reset(dut)
    apply_rom_flips(dut, cfg)
    n_in = params["N_IN"]

    accepted = []
    driver = cocotb.start_soon(drive_stream(dut, x_q.ravel(), params["IN_BITS"], accepted))
    beats = await collect_stream(dut, expected.size, read_signed_out)
    await driver
    schedule = sparse_schedule(enc)
    if not expects_fault(cfg):
        check_values(beats, expected)
        assert schedule.n_in == n_in
        check_row_timing(accepted, [edge for edge, _ in beats], schedule)
    await expect_no_output(dut, n_in + schedule.words + 10)
    check_fault(dut, cfg)


@cocotb.test()
async def random_handshakes_match_kernel(dut):
    """Random gaps on in_valid and random out_ready back-pressure: values only."""
    cfg, params, _, x_q, expected = _load()
    await start_clock_and_reset(dut)
    apply_rom_flips(dut, cfg)
    rng = random.Random(7)
    driver = cocotb.start_soon(drive_stream(dut, x_q.ravel(), params["IN_BITS"], gap_prob=0.3, rng=rng))
    beats = await collect_stream(dut, expected.size, read_signed_out, ready_prob=0.4, rng=rng)
    await driver
    if not expects_fault(cfg):
        check_values(beats, expected)
    check_fault(dut, cfg)


@cocotb.test()
async def slow_consumer_matches_kernel(dut):
    """Inputs at full rate into a rarely-ready consumer: the pipeline sits stalled while the
    next vectors overwrite the buffer it was reading (the held operands must be used)."""
    cfg, params, _, x_q, expected = _load()
    await start_clock_and_reset(dut)
    apply_rom_flips(dut, cfg)
    rng = random.Random(11)
    driver = cocotb.start_soon(drive_stream(dut, x_q.ravel(), params["IN_BITS"]))
    beats = await collect_stream(dut, expected.size, read_signed_out, ready_prob=0.15, rng=rng)
    await driver
    if not expects_fault(cfg):
        check_values(beats, expected)
    check_fault(dut, cfg)
