"""cocotb bench for rtl/argmax.v against kernels.argmax.

Environment: MPC_TB_CONFIG = JSON {"N", "W", "IDX_BITS", "seed"?}, the DUT's parameters.
Stimulus: ties (all equal, repeated maxima), extreme values, and random vectors.
"""

import json
import os
import random

import cocotb
import numpy as np
from streams import collect_stream, drive_stream, expect_no_output, start_clock_and_reset, to_signed

from kernels import argmax

RANDOM_VECTORS = 40


def _vectors(n: int, w: int, rng: random.Random) -> np.ndarray:
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    vectors = [
        [lo] * n,
        [hi] * n,
        [0] * n,
        [hi if k in (0, n - 1) else lo for k in range(n)],
        [hi if k in (n // 2, n - 1) else k % 3 - 1 for k in range(n)],
        list(range(n))[::-1],
    ]
    for _ in range(RANDOM_VECTORS):
        vectors.append([rng.randint(lo, hi) for _ in range(n)])
        # Few distinct values, so ties for the maximum are common.
        vectors.append([rng.choice((lo, -1, 0, hi)) for _ in range(n)])
    return np.array(vectors, dtype=np.int64)


def _read_beat_for(n: int, w: int):
    def read(dut):
        packed = int(dut.out_logits.value)
        return [to_signed(packed >> (k * w), w) for k in range(n)], int(dut.out_argmax.value)

    return read


def _config():
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    n, w = int(cfg["N"]), int(cfg["W"])
    return n, w, _vectors(n, w, random.Random(cfg.get("seed", 0)))


def _check(beats, vectors):
    expected_index = argmax(vectors)
    bad = [
        (v, vectors[v].tolist(), int(expected_index[v]), got)
        for v, (_, got) in enumerate(beats)
        if got != (vectors[v].tolist(), int(expected_index[v]))
    ]
    assert not bad, f"{len(bad)} vectors differ (vector, logits, expected index, got): {bad[:3]}"


@cocotb.test()
async def full_rate_matches_kernel(dut):
    """Back to back with out_ready high: values, and N + 1 cycles per vector."""
    n, w, vectors = _config()
    await start_clock_and_reset(dut)
    accepted = []
    driver = cocotb.start_soon(drive_stream(dut, vectors.ravel(), w, accepted))
    beats = await collect_stream(dut, len(vectors), _read_beat_for(n, w))
    await driver
    _check(beats, vectors)
    latencies = {edge - start for (edge, _), start in zip(beats, accepted[::n])}
    assert latencies == {n}, f"first logit -> output beat took {latencies} cycles, expected {n}"
    assert set(np.diff(accepted[::n]).tolist()) <= {n + 1}
    await expect_no_output(dut, n + 5)


@cocotb.test()
async def random_handshakes_match_kernel(dut):
    n, w, vectors = _config()
    await start_clock_and_reset(dut)
    rng = random.Random(11)
    driver = cocotb.start_soon(drive_stream(dut, vectors.ravel(), w, gap_prob=0.3, rng=rng))
    beats = await collect_stream(dut, len(vectors), _read_beat_for(n, w), ready_prob=0.4, rng=rng)
    await driver
    _check(beats, vectors)
