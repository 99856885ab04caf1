"""cocotb bench for rtl/rom_check.v against kernels.rom_protect.decode.

Environment: MPC_TB_CONFIG = JSON {"parameters": {"DATA_BITS", "PROTECT", optionally "LANES"
(default 1)}, "samples": random codewords per kind, "seed"}. Codewords: every one when the
codeword has at most 13 bits; else `samples` each of valid codewords with 0, 1 and 2 flipped bits
(at random positions, data or check) and of random bit patterns (any syndrome, 3+ flips); with
LANES > 1 also `samples` each of valid codewords with one flip in each of several lanes (every
lane corrected) and with two flips in one lane plus one flip in others. Each input is compared
with the kernel's decode(code, DATA_BITS, protection, LANES): data, corrected == (status 1),
detected == (status 2).
"""

import json
import os
import random

import cocotb
from cocotb.triggers import Timer

from kernels.rom_protect import CORRECTED, DETECTED, PROTECTIONS, check_bits, codeword_bits, decode, encode

EXHAUSTIVE_BITS = 13


def lane_bits(data_bits: int, protection: str, lanes: int, lane: int) -> list[int]:
    """The codeword bits of one lane: its data bits, then its check bits (kernels/rom_protect.py)."""
    size = data_bits // lanes
    check = check_bits(size, protection)
    return [lane * size + b for b in range(size)] + [data_bits + lane * check + b for b in range(check)]


def codewords(data_bits: int, protection: str, samples: int, rng: random.Random, lanes: int = 1) -> list[int]:
    width = codeword_bits(data_bits, protection, lanes)
    if width <= EXHAUSTIVE_BITS:
        return list(range(1 << width))
    words = []
    for flips in (0, 1, 2):
        for _ in range(samples):
            code = encode(rng.getrandbits(data_bits), data_bits, protection, lanes)
            for bit in rng.sample(range(width), flips):
                code ^= 1 << bit
            words.append(code)
    if lanes > 1:  # flips in several lanes at once: one in each, or two in the first of them
        for double in (False, True):
            for _ in range(samples):
                code = encode(rng.getrandbits(data_bits), data_bits, protection, lanes)
                hit = rng.sample(range(lanes), rng.randint(2, lanes))
                for k, lane in enumerate(hit):
                    for bit in rng.sample(lane_bits(data_bits, protection, lanes, lane), 2 if double and k == 0 else 1):
                        code ^= 1 << bit
                words.append(code)
    words += [rng.getrandbits(width) for _ in range(samples)]
    # the extremes: all zeros, all ones, one bit set at every position
    words += [0, (1 << width) - 1] + [1 << b for b in range(width)]
    return words


@cocotb.test()
async def decode_matches_kernel(dut):
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    data_bits, protect = int(cfg["parameters"]["DATA_BITS"]), int(cfg["parameters"]["PROTECT"])
    lanes = int(cfg["parameters"].get("LANES", 1))
    protection = PROTECTIONS[protect]
    width = codeword_bits(data_bits, protection, lanes)
    assert len(dut.code) == width, f"code is {len(dut.code)} bits, expected {width}"
    assert len(dut.data) == data_bits, f"data is {len(dut.data)} bits, expected {data_bits}"
    rng = random.Random(int(cfg.get("seed", 0)))
    bad = []
    words = codewords(data_bits, protection, int(cfg.get("samples", 200)), rng, lanes)
    for code in words:
        dut.code.value = code
        await Timer(1, unit="ns")
        want_data, status = decode(code, data_bits, protection, lanes)
        got = (int(dut.data.value), int(dut.corrected.value), int(dut.detected.value))
        want = (want_data, int(status == CORRECTED), int(status == DETECTED))
        if got != want:
            bad.append((hex(code), want, got))
    assert not bad, f"{len(bad)}/{len(words)} codewords differ ((code, expected, got)), first: {bad[:5]}"
