"""cocotb bench for rtl/conv2d.v against kernels.conv2d (+ kernels.requantize).

Environment: MPC_TB_CONFIG = JSON {"parameters": the DUT's parameters (C_IN, H, W, C_OUT, KH,
KW, STRIDE, PAD_*, P_CO, P_CI, P_K (default 1), ..., REQUANT), "stimulus": .npz with w_q
[C_OUT, C_IN, KH, KW], b_q [C_OUT], x_q [frames, C_IN, H, W]}. The ROM files the DUT loads
must hold the same w_q and b_q (kernels/conv_rom.py). Streams are channel-last raster order
(for y, for x, for c).
"""
import json
import os
import random

import cocotb
import numpy as np

from kernels import requantize
from kernels.conv2d import conv2d, conv_output_size
from engine_checks import check_values, read_signed_out
from test_design import collect_stream, drive_stream, expect_no_output, start_clock_and_reset

PIPELINE_CYCLES = 3  # rtl/conv2d.v: beat p of a group completes at its last read + 4 + p


def _load():
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    p = cfg["parameters"]
    stim = np.load(cfg["stimulus"])
    w_q, b_q, x_q = (np.asarray(stim[k], dtype=np.int64) for k in ("w_q", "b_q", "x_q"))
    pads = (p["PAD_T"], p["PAD_L"], p["PAD_B"], p["PAD_R"])
    expected = conv2d(x_q, w_q, b_q, p["STRIDE"], pads)
    if p["REQUANT"]:
        expected = requantize(expected, p["SHIFT"], p["OUT_BITS"], bool(p["RELU"]))
    # channel-last raster order, as the streams carry them
    return p, x_q.transpose(0, 2, 3, 1), expected.transpose(0, 2, 3, 1)


class Geometry:
    def __init__(self, p):
        self.p = p
        self.h, self.w, s = p["H"], p["W"], p["STRIDE"]
        self.h_out = conv_output_size(self.h, p["KH"], s, p["PAD_T"], p["PAD_B"])
        self.w_out = conv_output_size(self.w, p["KW"], s, p["PAD_L"], p["PAD_R"])
        self.ncw = -(-p["C_IN"] // p["P_CI"])
        self.ncg = -(-p["C_OUT"] // p["P_CO"])
        self.steps = -(-(p["KH"] * p["KW"]) // p.get("P_K", 1))   # kernel steps: ceil(KH*KW / P_K)
        self.g = self.steps * self.ncw
        self.row_cyc = self.w_out * self.ncg * self.g
        self.nrows = p["KH"] + s

    def rows(self, oy):
        """(lo, rel, hi) of output row oy, as in the RTL header."""
        p, s, h = self.p, self.p["STRIDE"], self.h
        clip = lambda v: min(max(v, 0), h)  # noqa: E731
        lo = clip(oy * s - p["PAD_T"])
        last = oy == self.h_out - 1
        rel = h if last else clip((oy + 1) * s - p["PAD_T"])
        hi = h - 1 if last else max(min(oy * s - p["PAD_T"] + p["KH"] - 1, h - 1), rel - 1)
        return lo, rel, hi


def _check_timing(p, accepted, out_edges, frames, pipeline=PIPELINE_CYCLES):
    """Replay rtl/conv2d.v's timing model (full rate, out_ready high) edge by edge.

    Also rtl/pool2d.v's (the same schedule with C_IN = C_OUT = P_CI = C, P_CO = 1 and
    pipeline = 2)."""
    geo = Geometry(p)
    if geo.g < p["P_CO"]:
        return  # the output shift register paces the groups (and the releases): values only
    row_elems = geo.w * p["C_IN"]
    starts, releases = [], []  # per output row over all frames: start C, (edge, rows released)
    for f in range(frames):
        for oy in range(geo.h_out):
            lo, rel, hi = geo.rows(oy)
            last_in = accepted[(f * geo.h + hi + 1) * row_elems - 1]
            c = last_in + 1 if not starts else max(last_in + 1, starts[-1] + geo.row_cyc)
            starts.append(c)
            releases.append((c + geo.row_cyc - 1, f * geo.h + rel))
    # inputs: back to back, except the first element of a row waiting for a ring slot
    for i in range(1, len(accepted)):
        want = accepted[i - 1] + 1
        g, first = divmod(i, row_elems)
        if first == 0 and g >= geo.nrows:
            freed = min(edge for edge, total in releases if total >= g - geo.nrows + 1)
            want = max(want, freed + 1)
        assert accepted[i] == want, f"input {i} (row {g}) accepted at {accepted[i]}, model {want}"
    want = []
    for f in range(frames):
        for oy in range(geo.h_out):
            c = starts[f * geo.h_out + oy]
            for ox in range(geo.w_out):
                for co in range(p["C_OUT"]):
                    grp, lane = divmod(co, p["P_CO"])
                    want.append(c + (ox * geo.ncg + grp + 1) * geo.g + pipeline + lane)
    bad = [(i, w, g) for i, (w, g) in enumerate(zip(want, out_edges)) if w != g]
    assert not bad, f"{len(bad)} output edges differ from the model (beat, model, got): {bad[:5]}"


@cocotb.test()
async def full_rate_matches_kernel_and_timing(dut):
    """Back-to-back inputs, out_ready high: exact values and the documented cycle timing."""
    p, x_stream, expected = _load()
    out_w = p["OUT_BITS"] if p["REQUANT"] else p["ACC_BITS"]
    assert len(dut.out_data) == out_w, f"out_data is {len(dut.out_data)} bits, expected {out_w}"
    await start_clock_and_reset(dut)
    accepted = []
    driver = cocotb.start_soon(drive_stream(dut, x_stream.ravel(), p["IN_BITS"], accepted))
    beats = await collect_stream(dut, expected.size, read_signed_out)
    await driver
    check_values(beats, expected)
    _check_timing(p, accepted, [edge for edge, _ in beats], x_stream.shape[0])
    await expect_no_output(dut, Geometry(p).row_cyc * 2 + 20)


@cocotb.test()
async def random_handshakes_match_kernel(dut):
    """Random gaps on in_valid and random out_ready back-pressure: values only."""
    p, x_stream, expected = _load()
    await start_clock_and_reset(dut)
    rng = random.Random(11)
    driver = cocotb.start_soon(
        drive_stream(dut, x_stream.ravel(), p["IN_BITS"], gap_prob=0.3, rng=rng))
    beats = await collect_stream(dut, expected.size, read_signed_out, ready_prob=0.4, rng=rng)
    await driver
    check_values(beats, expected)
