"""cocotb bench for rtl/fifo.v against its timing contract (kernels.activation.TableFifo's with
DEPTH entries): elements leave in order and unchanged, one edge after they enter at the
earliest, at most DEPTH held, full rate with out_ready high (DEPTH >= 2; every other edge with
DEPTH 1); random input gaps and back-pressure.

Environment: MPC_TB_CONFIG = JSON {"parameters": {"WIDTH", "DEPTH"}}.
"""

import json
import os
import random

import cocotb
from cocotb.triggers import FallingEdge
from streams import collect_stream, drive_stream, expect_no_output, start_clock_and_reset, to_signed


def _params() -> dict:
    return json.loads(os.environ["MPC_TB_CONFIG"])["parameters"]


def _values(p: dict, n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    lo, hi = -(1 << (p["WIDTH"] - 1)), (1 << (p["WIDTH"] - 1)) - 1
    return [rng.randint(lo, hi) for _ in range(n)]


def _read(p: dict):
    return lambda dut: to_signed(int(dut.out_data.value), p["WIDTH"])


def check_edges(depth: int, accepted: list[int], outputs: list[int]) -> None:
    assert len(accepted) == len(outputs)
    for k, (a, o) in enumerate(zip(accepted, outputs)):
        assert o >= a + 1, f"element {k}: in at {a}, out at {o}"
        if k:
            assert o > outputs[k - 1] and a > accepted[k - 1]
        if k >= depth:
            assert a > outputs[k - depth], f"element {k} accepted while {depth} were held"


@cocotb.test()
async def full_rate_with_out_ready_high(dut):
    p = _params()
    values = _values(p, 3 * p["DEPTH"] + 5, 0)
    await start_clock_and_reset(dut)
    accepted: list[int] = []
    driver = cocotb.start_soon(drive_stream(dut, values, p["WIDTH"], accepted))
    beats = await collect_stream(dut, len(values), _read(p))
    await driver
    assert [v for _, v in beats] == values
    assert [e for e, _ in beats] == [a + 1 for a in accepted], "not one edge of latency"
    step = 1 if p["DEPTH"] >= 2 else 2  # one element: its register frees only the edge after it leaves
    assert accepted == list(range(accepted[0], accepted[0] + step * len(values), step)), "not full rate"
    await expect_no_output(dut, 5)


@cocotb.test()
async def random_gaps_and_back_pressure_keep_order_and_depth(dut):
    p = _params()
    for seed, gap, ready in ((1, 0.3, 0.5), (2, 0.0, 0.2), (3, 0.6, 0.9)):
        values = _values(p, 4 * p["DEPTH"] + 20, seed)
        if seed == 1:
            await start_clock_and_reset(dut)
        rng = random.Random(seed)
        accepted: list[int] = []
        driver = cocotb.start_soon(drive_stream(dut, values, p["WIDTH"], accepted, gap_prob=gap, rng=rng))
        beats = await collect_stream(dut, len(values), _read(p), ready_prob=ready, rng=random.Random(seed + 100))
        await driver
        assert [v for _, v in beats] == values
        check_edges(p["DEPTH"], accepted, [e for e, _ in beats])


@cocotb.test()
async def a_stalled_output_fills_exactly_depth(dut):
    p = _params()
    values = _values(p, p["DEPTH"] + 3, 4)
    await start_clock_and_reset(dut)
    accepted: list[int] = []
    driver = cocotb.start_soon(drive_stream(dut, values, p["WIDTH"], accepted))
    for _ in range(p["DEPTH"] + 6):
        await FallingEdge(dut.clk)
    assert len(accepted) == p["DEPTH"], f"{len(accepted)} accepted with the output stalled, depth {p['DEPTH']}"
    beats = await collect_stream(dut, len(values), _read(p))
    await driver
    assert [v for _, v in beats] == values
