"""cocotb bench for rtl/concat.v (the channel join) against kernels.concat.

Environment: MPC_TB_CONFIG = JSON {"parameters": the DUT's parameters (A_BITS, B_BITS, C_A, C_B,
SHIFT_A, SHIFT_B, OUT_BITS), "stimulus": .npz with a_q and b_q, each its input's stream
(channel-last: pixel by pixel, C_A resp. C_B elements a pixel; the same number of pixels)}.
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

from kernels.concat import ConcatSchedule, concat, concat_stream_order

INPUTS = ("in_a", "in_b")


def _load():
    """Parameters, both input streams, the expected output stream, the schedule."""
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    p, data = cfg["parameters"], np.load(cfg["stimulus"])
    a_q, b_q = np.asarray(data["a_q"], dtype=np.int64), np.asarray(data["b_q"], dtype=np.int64)
    pixels = a_q.size // p["C_A"]
    assert a_q.size == pixels * p["C_A"] and b_q.size == pixels * p["C_B"], "stimulus: unequal pixel counts"
    # the streams as [1, C, pixels] images for the kernel, its result back to the joined stream
    a, b = (x.reshape(pixels, c).T[None] for x, c in ((a_q, p["C_A"]), (b_q, p["C_B"])))
    y = concat([a, b], [p["SHIFT_A"], p["SHIFT_B"]], p["OUT_BITS"])
    expected = y[0].T.ravel()
    return p, a_q, b_q, expected, ConcatSchedule((p["C_A"], p["C_B"]), pixels)


async def drive_side(dut, port: str, values, bits: int, accepted: list, gap_prob: float = 0.0, rng=None) -> None:
    """Send `values` on input `port` one per handshake, with random idle cycles before beats;
    ready sampled every cycle in ReadOnly."""
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


async def never_both_ready(dut) -> None:
    """Runs for the whole test: only the due input may be ready, never both."""
    while True:
        await ReadOnly()
        assert not (dut.in_a_ready.value == 1 and dut.in_b_ready.value == 1), "both inputs ready at once"
        await FallingEdge(dut.clk)


def drive_both(dut, p, a_q, b_q, gaps=(0.0, 0.0), seeds=(1, 2)):
    """Both input drivers and the readiness monitor started; returns (tasks, edges of a, of b)."""
    accepted: tuple[list, list] = ([], [])
    cocotb.start_soon(never_both_ready(dut))
    tasks = [
        cocotb.start_soon(drive_side(dut, port, values, p[bits], edges, gap, random.Random(seed)))
        for port, values, bits, edges, gap, seed in zip(INPUTS, (a_q, b_q), ("A_BITS", "B_BITS"), accepted, gaps, seeds)
    ]
    return tasks, accepted[0], accepted[1]


def joined_edges(schedule: ConcatSchedule, at_a: list, at_b: list) -> list[int]:
    """The joined stream's input handshakes, checked to follow concat_stream_order: each edge
    takes one element of one input, in the order a pixel's a-elements, then its b-elements."""
    taken = sorted([(e, 0) for e in at_a] + [(e, 1) for e in at_b])
    edges = [e for e, _ in taken]
    assert len(set(edges)) == len(edges), "a and b taken at one edge"
    order = [i for i, _ in concat_stream_order(list(schedule.channels), schedule.pixels)]
    assert [i for _, i in taken] == order, "inputs not taken in the per-pixel a-then-b order"
    return edges


@cocotb.test()
async def full_rate_matches_kernel_and_timing(dut):
    """Both inputs always valid, out_ready high: exact values, one element per edge with no
    bubble at the a/b turns, latency one edge."""
    p, a_q, b_q, expected, schedule = _load()
    assert len(dut.out_data) == p["OUT_BITS"]
    await start_clock_and_reset(dut, inputs=INPUTS)
    tasks, at_a, at_b = drive_both(dut, p, a_q, b_q)
    beats = await collect_stream(dut, expected.size, read_signed_out)
    for task in tasks:
        await task
    check_values(beats, expected)
    accepted = joined_edges(schedule, at_a, at_b)
    assert accepted == list(range(accepted[0], accepted[0] + schedule.n_in)), "elements not taken back to back"
    outputs = [edge for edge, _ in beats]
    assert outputs == schedule.output_edges(accepted), "output edges differ from the schedule"
    assert outputs[-1] - accepted[0] == schedule.latency
    await expect_no_output(dut, 10)


@cocotb.test()
async def random_gaps_on_both_inputs_and_back_pressure_match_kernel(dut):
    """Random idle cycles on each input (independently) and random out_ready: values exact, the
    per-pixel order kept, the FIFO's edges as the schedule allows."""
    p, a_q, b_q, expected, schedule = _load()
    await start_clock_and_reset(dut, inputs=INPUTS)
    tasks, at_a, at_b = drive_both(dut, p, a_q, b_q, gaps=(0.3, 0.5), seeds=(7, 8))
    beats = await collect_stream(dut, expected.size, read_signed_out, ready_prob=0.4, rng=random.Random(9))
    for task in tasks:
        await task
    check_values(beats, expected)
    schedule.check_edges(joined_edges(schedule, at_a, at_b), [edge for edge, _ in beats])
    await expect_no_output(dut, 10)


@cocotb.test()
async def b_waits_for_a_and_a_stalled_output_holds_two(dut):
    """b valid alone: nothing is taken (a's elements are due first). Then a valid too, with the
    output stalled: exactly two elements are taken; released, the first pixel comes out in order."""
    p, a_q, b_q, expected, schedule = _load()
    c_a, c_b = p["C_A"], p["C_B"]
    await start_clock_and_reset(dut, inputs=INPUTS)
    at_b: list[int] = []
    task_b = cocotb.start_soon(drive_side(dut, "in_b", b_q[:c_b], p["B_BITS"], at_b))
    for _ in range(6):
        await ReadOnly()
        assert dut.in_b_ready.value == 0 and dut.out_valid.value == 0, "b taken before a's elements"
        await FallingEdge(dut.clk)
    at_a: list[int] = []
    task_a = cocotb.start_soon(drive_side(dut, "in_a", a_q[:c_a], p["A_BITS"], at_a))
    for _ in range(8):  # out_ready stays low (start_clock_and_reset cleared it)
        await FallingEdge(dut.clk)
    assert len(at_a) + len(at_b) == 2, f"{len(at_a)} + {len(at_b)} elements taken with the output stalled"
    beats = await collect_stream(dut, c_a + c_b, read_signed_out)
    await task_a
    await task_b
    check_values(beats, expected[: c_a + c_b])
    first = ConcatSchedule((c_a, c_b), 1)
    first.check_edges(joined_edges(first, at_a, at_b), [edge for edge, _ in beats])
