"""cocotb bench for rtl/dense_mac.v against kernels.dense_mac (+ kernels.requantize).

Environment: MPC_TB_CONFIG = JSON {"parameters": the DUT's parameters (N_IN, N_OUT, P, IN_BITS,
..., REQUANT), "stimulus": .npz with w_q [N_OUT, N_IN], b_q [N_OUT], x_q [vectors, N_IN]}.
The ROM files the DUT loads must hold the same w_q and b_q (kernels/rom.py).
"""
import json
import os
import random

import cocotb
import numpy as np

from kernels import dense_mac, requantize
from test_design import collect_stream, drive_stream, expect_no_output, start_clock_and_reset

PIPELINE_CYCLES = 3  # rtl/dense_mac.v: output o completes at compute start + (o+1)*NCH + 3


def _load():
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    params = cfg["parameters"]
    stim = np.load(cfg["stimulus"])
    w_q, b_q, x_q = (np.asarray(stim[k], dtype=np.int64) for k in ("w_q", "b_q", "x_q"))
    expected = dense_mac(x_q, w_q, b_q)
    if params["REQUANT"]:
        expected = requantize(expected, params["SHIFT"], params["OUT_BITS"], bool(params["RELU"]))
    return params, x_q, expected


def _out_width(params) -> int:
    return params["OUT_BITS"] if params["REQUANT"] else params["ACC_BITS"]


def _read_out(dut):
    return dut.out_data.value.to_signed()


def _check_values(beats, expected):
    got = [value for _, value in beats]
    want = [int(v) for v in expected.ravel()]
    bad = [(i // expected.shape[1], i % expected.shape[1], w, g)
           for i, (w, g) in enumerate(zip(want, got)) if w != g]
    assert not bad, (f"{len(bad)}/{len(want)} outputs differ (vector, output, expected, got), "
                     f"first: {bad[:5]}")


def _check_timing(accepted, out_edges, n_in, n_out, nch):
    """Replay the timing model in rtl/dense_mac.v's header and compare every edge."""
    rounds = n_out * nch
    starts = []  # compute start edge of each vector
    for v in range(len(accepted) // n_in):
        first, last = accepted[v * n_in], accepted[(v + 1) * n_in - 1]
        assert last - first == n_in - 1, f"vector {v}: inputs not accepted back to back"
        if v >= 1:  # right after the previous vector, once vector v-2's buffer has been read
            want_first = accepted[v * n_in - 1] + 1
            if v >= 2:
                want_first = max(want_first, starts[v - 2] + rounds)
            assert first == want_first, f"vector {v}: first input at {first}, model {want_first}"
        starts.append(max(last + 1, starts[-1] + rounds) if starts else last + 1)
        got = out_edges[v * n_out:(v + 1) * n_out]
        want = [starts[v] + (o + 1) * nch + PIPELINE_CYCLES for o in range(n_out)]
        assert got == want, f"vector {v}: output edges {got}, model {want}"


@cocotb.test()
async def full_rate_matches_kernel_and_timing(dut):
    """Back-to-back inputs, out_ready high: exact values and the documented cycle timing."""
    params, x_q, expected = _load()
    assert len(dut.out_data) == _out_width(params), (
        f"out_data is {len(dut.out_data)} bits, expected {_out_width(params)}")
    await start_clock_and_reset(dut)
    n_in, n_out = params["N_IN"], params["N_OUT"]
    nch = -(-n_in // params["P"])

    accepted = []
    driver = cocotb.start_soon(drive_stream(dut, x_q.ravel(), params["IN_BITS"], accepted))
    beats = await collect_stream(dut, expected.size, _read_out)
    await driver
    _check_values(beats, expected)
    _check_timing(accepted, [edge for edge, _ in beats], n_in, n_out, nch)
    await expect_no_output(dut, n_in + n_out * nch + 10)


@cocotb.test()
async def random_handshakes_match_kernel(dut):
    """Random gaps on in_valid and random out_ready back-pressure: values only."""
    params, x_q, expected = _load()
    await start_clock_and_reset(dut)
    rng = random.Random(7)
    driver = cocotb.start_soon(
        drive_stream(dut, x_q.ravel(), params["IN_BITS"], gap_prob=0.3, rng=rng))
    beats = await collect_stream(dut, expected.size, _read_out, ready_prob=0.4, rng=rng)
    await driver
    _check_values(beats, expected)
