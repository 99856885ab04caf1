"""cocotb bench for rtl/add.v (the residual join) against kernels.add.

Environment: MPC_TB_CONFIG = JSON {"parameters": the DUT's parameters (A_BITS, B_BITS, SHIFT_A,
SHIFT_B, SHIFT, OUT_BITS, RELU), "stimulus": .npz with a_q [n] and b_q [n]}.
"""

import itertools
import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly
from engine_checks import check_values, read_signed_out
from streams import collect_stream, expect_no_output, handshake_edge, stall_cycles, start_clock_and_reset

from kernels.add import AddSchedule, add

INPUTS = ("in_a", "in_b")


def _load():
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    p, data = cfg["parameters"], np.load(cfg["stimulus"])
    a_q, b_q = np.asarray(data["a_q"], dtype=np.int64), np.asarray(data["b_q"], dtype=np.int64)
    return p, a_q, b_q, add(a_q, b_q, p["SHIFT_A"], p["SHIFT_B"], p["SHIFT"], p["OUT_BITS"], bool(p["RELU"]))


async def drive_side(dut, port: str, values, bits: int, accepted: list, gap_prob: float = 0.0, rng=None) -> None:
    """Send `values` on input `port` one per handshake, with random idle cycles before beats.

    Unlike streams.drive_stream (which waits for a registered ready's rising edge), ready is
    sampled every cycle in ReadOnly: the join's ready follows the other input's valid
    combinationally, so it may rise right after a falling edge, in time for the next rising one."""
    valid, ready, data = (getattr(dut, f"{port}_{s}") for s in ("valid", "ready", "data"))
    mask, rng = (1 << bits) - 1, rng or random.Random(0)
    for value in values:
        while gap_prob and rng.random() < gap_prob:
            valid.value, data.value = 0, rng.getrandbits(bits)
            await FallingEdge(dut.clk)
        valid.value, data.value = 1, int(value) & mask
        for waited in itertools.count():
            await ReadOnly()
            if ready.value == 1:
                break
            assert waited < stall_cycles(), f"{port}: a beat waited {waited} cycles"
            await FallingEdge(dut.clk)
        accepted.append(handshake_edge())
        await FallingEdge(dut.clk)
    valid.value = 0


def drive_both(dut, p, a_q, b_q, gaps=(0.0, 0.0), seeds=(1, 2)):
    """Both input drivers started; returns (tasks, accepted edges of a, of b)."""
    accepted: tuple[list, list] = ([], [])
    tasks = [
        cocotb.start_soon(drive_side(dut, port, values, p[bits], edges, gap, random.Random(seed)))
        for port, values, bits, edges, gap, seed in zip(INPUTS, (a_q, b_q), ("A_BITS", "B_BITS"), accepted, gaps, seeds)
    ]
    return tasks, accepted[0], accepted[1]


@cocotb.test()
async def full_rate_matches_kernel_and_timing(dut):
    """Both inputs back to back, out_ready high: exact values, one pair per edge, latency 1."""
    p, a_q, b_q, expected = _load()
    assert len(dut.out_data) == p["OUT_BITS"]
    await start_clock_and_reset(dut, inputs=INPUTS)
    tasks, at_a, at_b = drive_both(dut, p, a_q, b_q)
    beats = await collect_stream(dut, expected.size, read_signed_out)
    for task in tasks:
        await task
    check_values(beats, expected)
    outputs = [edge for edge, _ in beats]
    schedule = AddSchedule(len(a_q))
    assert at_a == at_b, "a and b accepted at different edges"
    assert at_a == list(range(at_a[0], at_a[0] + len(a_q))), "pairs not accepted back to back"
    assert outputs == schedule.output_edges(at_a), "output edges differ from the schedule"
    assert outputs[-1] - at_a[0] == schedule.latency
    await expect_no_output(dut, 10)


@cocotb.test()
async def random_gaps_on_both_inputs_and_back_pressure_match_kernel(dut):
    """Random idle cycles on each input (independently) and random out_ready: values exact, each
    pair taken at one edge, the FIFO's edges as the schedule allows."""
    p, a_q, b_q, expected = _load()
    await start_clock_and_reset(dut, inputs=INPUTS)
    tasks, at_a, at_b = drive_both(dut, p, a_q, b_q, gaps=(0.3, 0.5), seeds=(7, 8))
    beats = await collect_stream(dut, expected.size, read_signed_out, ready_prob=0.4, rng=random.Random(9))
    for task in tasks:
        await task
    check_values(beats, expected)
    assert at_a == at_b, "a and b accepted at different edges"
    AddSchedule(len(a_q)).check_edges(at_a, [edge for edge, _ in beats])
    await expect_no_output(dut, 10)


@cocotb.test()
async def one_input_alone_waits_and_a_stalled_output_holds_two(dut):
    """a valid without b: nothing is taken. Then with the output stalled exactly two pairs are taken."""
    p, a_q, b_q, expected = _load()
    await start_clock_and_reset(dut, inputs=INPUTS)
    at_a: list[int] = []
    task_a = cocotb.start_soon(drive_side(dut, "in_a", a_q[:3], p["A_BITS"], at_a))
    for _ in range(6):
        await ReadOnly()
        assert dut.in_a_ready.value == 0 and dut.out_valid.value == 0, "a taken without b"
        await FallingEdge(dut.clk)
    at_b: list[int] = []
    task_b = cocotb.start_soon(drive_side(dut, "in_b", b_q[:3], p["B_BITS"], at_b))
    for _ in range(8):  # out_ready stays low (start_clock_and_reset cleared it)
        await FallingEdge(dut.clk)
    assert len(at_a) == len(at_b) == 2, f"{len(at_a)}, {len(at_b)} elements taken with the output stalled"
    beats = await collect_stream(dut, 3, read_signed_out)
    await task_a
    await task_b
    check_values(beats, expected[:3])
    assert at_a == at_b
    AddSchedule(3).check_edges(at_a, [edge for edge, _ in beats])
