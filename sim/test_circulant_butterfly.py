"""cocotb bench for rtl/circulant_butterfly.v against kernels.circulant_mac.fft_fixed.

Environment: MPC_TB_CONFIG = JSON {"parameters": the DUT's (B, BF, U, DATA_BITS, TW_FRAC,
SPEC_BITS, PROTECT, PROTECT_LANES, TW_FILE), "vectors": blocks per direction, "seed"}.

The bench is the engine's FFT buffer: it holds B complex values in bit-reversed input order,
and for every stage and cycle drives (stage, idx, inverse), reads the BF units' addresses,
presents the values there, and writes the units' results back, all units' reads before their
writes (one clock edge). After log2(B) stages the buffer must equal the kernel's fft_fixed of
the block (forward and inverse), bit for bit; no twiddle may decode as detected. Then the shared
multipliers: with mac_phase high, random spectral operands must come out as their exact complex
products, and with mac_phase low every multiplier past BF must give 0.
"""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import Timer

from kernels.circulant_mac import bit_reverse, fft_fixed


def _field(bus, lane: int, bits: int, signed: bool = True) -> int:
    v = (int(bus.value) >> (lane * bits)) & ((1 << bits) - 1)
    return v - (1 << bits) if signed and v >> (bits - 1) else v


def _pack(values, bits: int) -> int:
    return sum((int(v) & ((1 << bits) - 1)) << (i * bits) for i, v in enumerate(values))


async def _settle():
    await Timer(1, unit="ns")


async def run_fft(dut, p: dict, re: list[int], im: list[int], inverse: bool) -> tuple[list[int], list[int]]:
    """The engine's in-place FFT over the buffer (re, im: bit-reversed input order)."""
    b, bf, d = p["B"], p["BF"], p["DATA_BITS"]
    stages = b.bit_length() - 1
    dut.inverse.value = int(inverse)
    dut.mac_phase.value = 0
    for stage in range(stages):
        dut.stage.value = stage
        for idx in range(b // 2 // bf):
            dut.idx.value = idx
            await _settle()
            tops = [_field(dut.top_a, u, max(stages, 1), signed=False) for u in range(bf)]
            bots = [_field(dut.bot_a, u, max(stages, 1), signed=False) for u in range(bf)]
            dut.top_re.value = _pack([re[a] for a in tops], d)
            dut.top_im.value = _pack([im[a] for a in tops], d)
            dut.bot_re.value = _pack([re[a] for a in bots], d)
            dut.bot_im.value = _pack([im[a] for a in bots], d)
            await _settle()
            assert int(dut.tw_detected.value) == 0, f"stage {stage + 1} cycle {idx}: a twiddle decodes as detected"
            new = [
                [_field(getattr(dut, name), u, d) for u in range(bf)]
                for name in ("new_top_re", "new_top_im", "new_bot_re", "new_bot_im")
            ]
            for u in range(bf):
                re[tops[u]], im[tops[u]], re[bots[u]], im[bots[u]] = new[0][u], new[1][u], new[2][u], new[3][u]
    return re, im


@cocotb.test()
async def butterflies_match_kernel(dut):
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    p = cfg["parameters"]
    b, d, frac = p["B"], p["DATA_BITS"], p["TW_FRAC"]
    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    amplitude = 1 << (d - 3)  # leaves room for the stages' growth (the kernel's bound checks it)
    order = bit_reverse(b)
    for inverse in (False, True):
        blocks = [np.full((2, b), amplitude - 1), np.full((2, b), -amplitude)]
        blocks += [rng.integers(-amplitude, amplitude, size=(2, b)) for _ in range(int(cfg.get("vectors", 4)))]
        for n, (x_re, x_im) in enumerate(blocks):
            want_re, want_im = fft_fixed(x_re, x_im, frac, inverse, bound_bits=d)
            re, im = [0] * b, [0] * b
            for i in range(b):  # the fill: input n at bit-reversed address
                re[i], im[i] = int(x_re[order[i]]), int(x_im[order[i]])
            got_re, got_im = await run_fft(dut, p, re, im, inverse)
            assert got_re == [int(v) for v in want_re] and got_im == [int(v) for v in want_im], (
                f"{'inverse' if inverse else 'forward'} block {n}: got {got_re}, {got_im}; "
                f"expected {list(want_re)}, {list(want_im)}"
            )


@cocotb.test()
async def shared_multipliers_are_exact(dut):
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    p = cfg["parameters"]
    bf, u_n, d, spec = p["BF"], p["U"], p["DATA_BITS"], p["SPEC_BITS"]
    mb = max(p["TW_FRAC"] + 2, spec)
    cw = d + mb + 1
    rng = random.Random(int(cfg.get("seed", 0)))
    for _ in range(40):
        ops = [[rng.randrange(-(1 << (d - 1)), 1 << (d - 1)) for _ in range(u_n)] for _ in range(2)]
        ops += [[rng.randrange(-(1 << (spec - 1)), 1 << (spec - 1)) for _ in range(u_n)] for _ in range(2)]
        dut.sm_ar.value, dut.sm_ai.value = _pack(ops[0], d), _pack(ops[1], d)
        dut.sm_br.value, dut.sm_bi.value = _pack(ops[2], mb), _pack(ops[3], mb)
        dut.mac_phase.value = 1
        await _settle()
        for u in range(u_n):
            ar, ai, br, bi = (ops[k][u] for k in range(4))
            got = (_field(dut.prod_re, u, cw), _field(dut.prod_im, u, cw))
            assert got == (ar * br - ai * bi, ar * bi + ai * br), f"multiplier {u}: {got}"
        dut.mac_phase.value = 0
        await _settle()
        for u in range(bf, u_n):
            assert _field(dut.prod_re, u, cw) == 0 and _field(dut.prod_im, u, cw) == 0, f"idle multiplier {u}"
