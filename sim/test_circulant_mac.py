"""cocotb bench for rtl/circulant_mac.v against kernels.circulant_mac (+ kernels.requantize).

Environment: MPC_TB_CONFIG = JSON {"parameters": the DUT's parameters, "plan": the keyword
arguments of kernels.circulant_mac.plan_circulant besides the arrays (in_bits, twiddle_frac,
spectrum_bits, fft_guard, ifft_guard), "stimulus": .npz with vectors_q [P, Q, B], bias_q
[N_OUT] (empty: no bias) and x_q [vectors, N_IN], and optionally "flips" (ROM bits flipped
before the run) and "expect_fault" (sim/engine_checks.py apply_rom_flips, check_fault)}. The
bench plans the layer itself, checks that the DUT was built with that plan's parameters, and
compares every output bit for bit. The ROM files the DUT loads must come from the same plan
(kernels/circulant_rom.py; as codewords with PROTECT != 0). Every test checks `fault` at its
end; with expect_fault only `fault` is checked.
"""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly
from engine_checks import apply_rom_flips, check_fault, check_values, expects_fault, read_signed_out
from streams import collect_stream, drive_stream, handshake_edge, start_clock_and_reset

from kernels import requantize
from kernels.circulant_mac import CirculantSchedule, circulant_mac, plan_circulant
from kernels.circulant_rom import circulant_rtl_parameters

NUMERIC_PARAMETERS = (
    "N_IN",
    "N_OUT",
    "B",
    "IN_BITS",
    "TW_FRAC",
    "FFT_GUARD",
    "SPEC_BITS",
    "XS_BITS",
    "DATA_BITS",
    "MAC_BITS",
    "SPEC_SHIFT",
    "IFFT_GUARD",
    "B_BITS",
    "ACC_BITS",
)


def _load():
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    params = cfg["parameters"]
    stim = np.load(cfg["stimulus"])
    bias = np.asarray(stim["bias_q"], dtype=np.int64)
    layer = plan_circulant(
        stim["vectors_q"], bias if bias.size else None, params["N_IN"], params["N_OUT"], **cfg["plan"]
    )
    planned = circulant_rtl_parameters(layer)
    wrong = {k: (params[k], planned[k]) for k in NUMERIC_PARAMETERS if params[k] != planned[k]}
    assert not wrong, f"DUT parameters differ from the plan (given, planned): {wrong}"
    x_q = np.asarray(stim["x_q"], dtype=np.int64)
    expected = circulant_mac(x_q, layer)
    if params["REQUANT"]:
        expected = requantize(expected, params["SHIFT"], params["OUT_BITS"], bool(params["RELU"]))
    return cfg, params, layer, x_q, expected


@cocotb.test()
async def full_rate_matches_kernel_and_cycle_formula(dut):
    """Back-to-back inputs, out_ready high: exact values and the documented cycle counts."""
    cfg, params, layer, x_q, expected = _load()
    out_w = params["OUT_BITS"] if params["REQUANT"] else params["ACC_BITS"]
    assert len(dut.out_data) == out_w, f"out_data is {len(dut.out_data)} bits, expected {out_w}"
    await start_clock_and_reset(dut)
    apply_rom_flips(dut, cfg)

    accepted = []
    driver = cocotb.start_soon(drive_stream(dut, x_q.ravel(), params["IN_BITS"], accepted))
    beats = await collect_stream(dut, expected.size, read_signed_out)
    await driver
    check_fault(dut, cfg)
    if expects_fault(cfg):
        return
    check_values(beats, expected)

    n_in, n_out = layer.n_in, layer.n_out
    # the header's cycle formula (BF butterfly units, SM spectral lanes): vector v's compute starts
    # at the edge of its last input or of the previous vector's last hand-over, whichever is
    # later; its first block is handed over FIRST edges after that start (or, if later, when the
    # vector before has emitted its last block), block i STEP edges after the first, and output
    # (i, n) completes n + 2 edges after its block's hand-over; the input buffer is free
    # `release` edges after the start
    s = CirculantSchedule(n_in, n_out, layer.block, params.get("BF", 1), params.get("SM", 1))
    first_hand, step = s.forward + s.per_out + 1, s.block_step
    last_count = n_out - (s.p - 1) * s.block
    edges = [edge for edge, _ in beats]
    starts: list[int] = []
    last_hand = None
    for v in range(len(accepted) // n_in):
        first, last = accepted[v * n_in], accepted[(v + 1) * n_in - 1]
        assert last - first == n_in - 1, f"vector {v}: inputs not accepted back to back"
        if v:
            assert first == starts[-1] + s.release + 1, f"vector {v}: first input at {first}"
        start = last if last_hand is None else max(last, last_hand)
        hand = start + first_hand if last_hand is None else max(start + first_hand, last_hand + last_count)
        starts.append(start)
        got = edges[v * n_out : (v + 1) * n_out]
        want = [hand + (o // s.block) * step + o % s.block + 2 for o in range(n_out)]
        assert got == want, f"vector {v}: output edges {got}, expected {want}"
        last_hand = hand + (s.p - 1) * step
    assert edges[n_out - 1] - accepted[0] == s.latency == s.output_edge(n_out - 1)
    assert [e - accepted[0] for e in edges[:n_out]] == [s.output_edge(o) for o in range(n_out)]
    intervals = set(np.diff(starts[1:]).tolist())  # steady state: the first start follows an idle engine
    assert intervals <= {s.interval}, f"intervals between compute starts {intervals}, expected {s.interval}"


async def _trace_handshakes(dut, rows: list) -> None:
    """Every cycle from now on: [edge, in_valid, in_ready, out_valid, out_ready] as the next
    rising edge sees them (the pytest side replays compiler/hw's timing model against them)."""
    while True:
        await ReadOnly()
        rows.append(
            [handshake_edge()] + [int(s.value) for s in (dut.in_valid, dut.in_ready, dut.out_valid, dut.out_ready)]
        )
        await FallingEdge(dut.clk)


@cocotb.test()
async def random_handshakes_match_kernel(dut):
    """Random gaps on in_valid and random out_ready back-pressure: values; with cfg["trace"], the
    handshake signals of every cycle are written there (JSON) for an edge-by-edge replay."""
    cfg, params, _, x_q, expected = _load()
    await start_clock_and_reset(dut)
    apply_rom_flips(dut, cfg)
    rng = random.Random(11)
    rows: list = []
    tracer = cocotb.start_soon(_trace_handshakes(dut, rows)) if cfg.get("trace") else None
    driver = cocotb.start_soon(drive_stream(dut, x_q.ravel(), params["IN_BITS"], gap_prob=0.3, rng=rng))
    beats = await collect_stream(dut, expected.size, read_signed_out, ready_prob=0.4, rng=rng)
    await driver
    if tracer is not None:
        tracer.cancel()
        with open(cfg["trace"], "w") as f:
            json.dump(rows, f)
    if not expects_fault(cfg):
        check_values(beats, expected)
    check_fault(dut, cfg)
