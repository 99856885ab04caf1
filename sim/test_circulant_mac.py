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
from engine_checks import apply_rom_flips, check_fault, check_values, expects_fault, read_signed_out
from streams import collect_stream, drive_stream, start_clock_and_reset

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
    schedule = CirculantSchedule(n_in, n_out, layer.block)  # the header's cycle formula
    first_in = accepted[::n_in]
    for v, start in enumerate(first_in):
        got = [edge - start for edge, _ in beats[v * n_out : (v + 1) * n_out]]
        want = [schedule.output_edge(o) for o in range(n_out)]
        assert got == want, f"vector {v}: output edges after first input {got}, expected {want}"
    intervals = set(np.diff(first_in).tolist())
    assert intervals <= {schedule.interval}, f"initiation intervals {intervals}"


@cocotb.test()
async def random_handshakes_match_kernel(dut):
    """Random gaps on in_valid and random out_ready back-pressure: values only."""
    cfg, params, _, x_q, expected = _load()
    await start_clock_and_reset(dut)
    apply_rom_flips(dut, cfg)
    rng = random.Random(11)
    driver = cocotb.start_soon(drive_stream(dut, x_q.ravel(), params["IN_BITS"], gap_prob=0.3, rng=rng))
    beats = await collect_stream(dut, expected.size, read_signed_out, ready_prob=0.4, rng=rng)
    await driver
    if not expects_fault(cfg):
        check_values(beats, expected)
    check_fault(dut, cfg)
