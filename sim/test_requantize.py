"""cocotb bench for rtl/requantize.v against kernels.requantize.

Environment: MPC_TB_CONFIG = JSON {"ACC_BITS", "OUT_BITS", "SHIFT", "RELU", "seed"?}, the
parameters the DUT was built with. Accumulators up to 2**14 values are tested exhaustively;
wider ones get every edge case plus random values.
"""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import Timer

from kernels import requantize

EXHAUSTIVE_LIMIT_BITS = 14
RANDOM_COUNT = 3000


def _accumulators(acc_bits: int, out_bits: int, shift: int, rng: random.Random) -> list[int]:
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    if acc_bits <= EXHAUSTIVE_LIMIT_BITS:
        return list(range(lo, hi + 1))
    values = {lo, lo + 1, -1, 0, 1, hi - 1, hi}
    # Around each rounding step boundary near zero and near the saturation points.
    step, out_max = 1 << shift, (1 << (out_bits - 1)) - 1
    for centre in (0, step // 2, -(step // 2), out_max * step, -(out_max + 1) * step):
        for delta in (-step - 1, -step, -1, 0, 1, step):
            values.add(centre + delta)
    values.update(rng.randint(lo, hi) for _ in range(RANDOM_COUNT))
    return sorted(v for v in values if lo <= v <= hi)


@cocotb.test()
async def requantize_matches_kernel(dut):
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    acc_bits, out_bits = int(cfg["ACC_BITS"]), int(cfg["OUT_BITS"])
    shift, relu = int(cfg["SHIFT"]), bool(cfg["RELU"])
    assert len(dut.acc) == acc_bits and len(dut.y) == out_bits, "DUT built with other widths"
    accs = _accumulators(acc_bits, out_bits, shift, random.Random(cfg.get("seed", 0)))

    got = []
    for acc in accs:
        dut.acc.value = acc & ((1 << acc_bits) - 1)
        await Timer(1, "ns")
        got.append(dut.y.value.to_signed())

    expected = requantize(np.array(accs, dtype=np.int64), shift, out_bits, relu)
    bad = [(a, int(e), g) for a, e, g in zip(accs, expected, got) if int(e) != g]
    assert not bad, f"{len(bad)}/{len(accs)} mismatches (acc, expected, got), first: {bad[:5]}"
    dut._log.info("requantize: %d accumulators match", len(accs))
