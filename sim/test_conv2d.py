"""cocotb bench for rtl/conv2d.v against kernels.conv2d (+ kernels.requantize).

Environment: MPC_TB_CONFIG = JSON {"parameters": the DUT's parameters (C_IN, H, W, C_OUT, KH,
KW, STRIDE, PAD_*, P_CO, P_CI, P_K (default 1), DEPTHWISE (default 0), ..., REQUANT, PROTECT),
"stimulus": .npz with w_q [C_OUT, C_IN, KH, KW] (DEPTHWISE: [C, 1, KH, KW]), b_q [C_OUT], x_q
[frames, C_IN, H, W], and optionally "flips" (ROM
bits flipped before the run) and "expect_fault" (sim/engine_checks.py apply_rom_flips,
check_fault)}. The ROM files the DUT loads must hold the same w_q and b_q (kernels/conv_rom.py;
as codewords with PROTECT != 0). Streams are channel-last raster order (for y, for x, for c).
Every test checks `fault` at its end; with expect_fault only `fault` is checked.
"""

import json
import os
import random

import cocotb
import numpy as np
from engine_checks import apply_rom_flips, check_fault, check_values, expects_fault, read_signed_out
from streams import collect_stream, drive_stream, expect_no_output, start_clock_and_reset

from kernels import requantize
from kernels.conv2d import CONV_PIPELINE_EDGES, LineGeometry, conv2d, conv_geometry


def _load():
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    p = cfg["parameters"]
    stim = np.load(cfg["stimulus"])
    w_q, b_q, x_q = (np.asarray(stim[k], dtype=np.int64) for k in ("w_q", "b_q", "x_q"))
    pads = (p["PAD_T"], p["PAD_L"], p["PAD_B"], p["PAD_R"])
    conv = depthwise_conv2d if p.get("DEPTHWISE", 0) else conv2d
    expected = conv(x_q, w_q, b_q, p["STRIDE"], pads)
    if p["REQUANT"]:
        expected = requantize(expected, p["SHIFT"], p["OUT_BITS"], bool(p["RELU"]))
    # channel-last raster order, as the streams carry them
    return cfg, p, x_q.transpose(0, 2, 3, 1), expected.transpose(0, 2, 3, 1)


def depthwise_conv2d(x_q, w_q, b_q, stride, pads):
    """Depthwise (group == C): channel c alone through kernels.conv2d.conv2d with its own filter
    w_q[c] [1, 1, KH, KW], which is the definition acc[c] = b[c] + sum W[c, 0] * x_pad[c]."""
    channels = [conv2d(x_q[:, c : c + 1], w_q[c : c + 1], b_q[c : c + 1], stride, pads) for c in range(len(w_q))]
    return np.concatenate(channels, axis=1)


def geometry(p) -> LineGeometry:
    """The DUT's schedule (kernels.conv2d.LineGeometry) from its parameters."""
    pads = (p["PAD_T"], p["PAD_L"], p["PAD_B"], p["PAD_R"])
    return conv_geometry(
        (p["C_IN"], p["H"], p["W"]),
        p["C_OUT"],
        (p["KH"], p["KW"]),
        p["STRIDE"],
        pads,
        p["P_CO"],
        p["P_CI"],
        p.get("P_K", 1),
        bool(p.get("DEPTHWISE", 0)),
    )


def check_timing(geo: LineGeometry, accepted, out_edges, frames, pipeline=CONV_PIPELINE_EDGES):
    """Replay the line-buffered schedule (rtl/conv2d.v, rtl/pool2d.v headers, as
    kernels.conv2d.LineGeometry states it) at full rate, out_ready high, edge by edge."""
    if geo.group < geo.p_co:
        return  # the output shift register paces the groups (and the releases): values only
    row_elems = geo.w * geo.c_in
    starts: list[int] = []
    releases: list[tuple[int, int]] = []  # per output row over all frames: start C, (edge, rows released)
    for f in range(frames):
        for oy in range(geo.h_out):
            lo, rel, hi = geo.rows(oy)
            last_in = accepted[(f * geo.h + hi + 1) * row_elems - 1]
            c = last_in + 1 if not starts else max(last_in + 1, starts[-1] + geo.row_cycles)
            starts.append(c)
            releases.append((c + geo.row_cycles - 1, f * geo.h + rel))
    # inputs: back to back, except the first element of a row waiting for a ring slot
    for i in range(1, len(accepted)):
        want = accepted[i - 1] + 1
        g, first = divmod(i, row_elems)
        if first == 0 and g >= geo.ring_rows:
            freed = min(edge for edge, total in releases if total >= g - geo.ring_rows + 1)
            want = max(want, freed + 1)
        assert accepted[i] == want, f"input {i} (row {g}) accepted at {accepted[i]}, model {want}"
    want = []
    for f in range(frames):
        for oy in range(geo.h_out):
            c = starts[f * geo.h_out + oy]
            for ox in range(geo.w_out):
                for co in range(geo.c_out):
                    grp, lane = divmod(co, geo.p_co)
                    want.append(c + (ox * geo.groups + grp + 1) * geo.group + pipeline + lane)
    bad = [(i, w, g) for i, (w, g) in enumerate(zip(want, out_edges)) if w != g]
    assert not bad, f"{len(bad)} output edges differ from the model (beat, model, got): {bad[:5]}"


@cocotb.test()
async def full_rate_matches_kernel_and_timing(dut):
    """Back-to-back inputs, out_ready high: exact values and the documented cycle timing."""
    cfg, p, x_stream, expected = _load()
    out_w = p["OUT_BITS"] if p["REQUANT"] else p["ACC_BITS"]
    assert len(dut.out_data) == out_w, f"out_data is {len(dut.out_data)} bits, expected {out_w}"
    await start_clock_and_reset(dut)
    apply_rom_flips(dut, cfg)
    accepted = []
    driver = cocotb.start_soon(drive_stream(dut, x_stream.ravel(), p["IN_BITS"], accepted))
    beats = await collect_stream(dut, expected.size, read_signed_out)
    await driver
    if not expects_fault(cfg):
        check_values(beats, expected)
        check_timing(geometry(p), accepted, [edge for edge, _ in beats], x_stream.shape[0])
    await expect_no_output(dut, geometry(p).row_cycles * 2 + 20)
    check_fault(dut, cfg)


@cocotb.test()
async def random_handshakes_match_kernel(dut):
    """Random gaps on in_valid and random out_ready back-pressure: values only."""
    cfg, p, x_stream, expected = _load()
    await start_clock_and_reset(dut)
    apply_rom_flips(dut, cfg)
    rng = random.Random(11)
    driver = cocotb.start_soon(drive_stream(dut, x_stream.ravel(), p["IN_BITS"], gap_prob=0.3, rng=rng))
    beats = await collect_stream(dut, expected.size, read_signed_out, ready_prob=0.4, rng=rng)
    await driver
    if not expects_fault(cfg):
        check_values(beats, expected)
    check_fault(dut, cfg)
