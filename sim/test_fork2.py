"""cocotb bench for rtl/fork2.v: one stream broadcast to two branches, each beat to each branch
exactly once, in order, whatever the branches' readies; the producer advances only once both
have taken its beat.

The module carries handshakes only (the top shares the data wire), so the bench drives beats by
number: every cycle it records the producer's handshake and each branch's, and checks that
branch handshake j falls in producer beat j (after beat j - 1 completed, at or before beat j
completes). Environment: MPC_TB_CONFIG = JSON {"parameters": {}} (fork2 has none).
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from streams import CLOCK_NS

BRANCHES = ("a", "b")


async def _start(dut, clock: bool = True) -> None:
    """The clock (once per test), then reset for 3 edges with every input low; returns after a
    falling edge."""
    if clock:
        Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    for signal in (dut.in_valid, dut.a_ready, dut.b_ready):
        signal.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def run_fork(dut, beats: int, gap_prob: float, ready_probs, rng, max_cycles: int = 20000):
    """Offer `beats` beats (in_valid held until taken, random idle cycles between), branch readies
    random per cycle. Returns (producer handshake cycles, {branch: its handshake cycles})."""
    produced: list[int] = []
    taken: dict[str, list[int]] = {x: [] for x in BRANCHES}
    offering = False
    for cycle in range(max_cycles):
        if len(produced) == beats:
            break
        if not offering:
            offering = not (gap_prob and rng.random() < gap_prob)
        dut.in_valid.value = int(offering)
        for x, p in zip(BRANCHES, ready_probs):
            getattr(dut, f"{x}_ready").value = int(rng.random() < p)
        await ReadOnly()
        for x in BRANCHES:
            valid, ready = getattr(dut, f"{x}_valid").value, getattr(dut, f"{x}_ready").value
            assert not (valid == 1 and not offering), f"{x}_valid without in_valid"
            if valid == 1 and ready == 1:
                taken[x].append(cycle)
        if offering and dut.in_ready.value == 1:
            produced.append(cycle)
            offering = False
        await FallingEdge(dut.clk)
    dut.in_valid.value = 0
    assert len(produced) == beats, f"{len(produced)} of {beats} beats after {max_cycles} cycles (hung)"
    return produced, taken


def check_each_beat_once(produced, taken) -> None:
    for x, edges in taken.items():
        assert len(edges) == len(produced), f"branch {x}: {len(edges)} handshakes for {len(produced)} beats"
        for j, (t, p) in enumerate(zip(edges, produced)):
            assert t <= p and (j == 0 or t > produced[j - 1]), (
                f"branch {x}: beat {j} taken at cycle {t}, but the producer's beat {j} completed at {p}"
                + (f" (beat {j - 1} at {produced[j - 1]})" if j else "")
            )


@cocotb.test()
async def full_rate_when_both_branches_are_ready(dut):
    await _start(dut)
    produced, taken = await run_fork(dut, 50, 0.0, (1.0, 1.0), random.Random(0))
    check_each_beat_once(produced, taken)
    assert produced == list(range(produced[0], produced[0] + 50)), "not one beat per cycle"
    assert taken["a"] == taken["b"] == produced


@cocotb.test()
async def random_gaps_and_readies_deliver_every_beat_once(dut):
    for seed, probs in ((1, (0.5, 0.5)), (2, (0.9, 0.1)), (3, (0.1, 0.7))):
        await _start(dut, clock=seed == 1)
        rng = random.Random(seed)
        produced, taken = await run_fork(dut, 200, 0.3, probs, rng)
        check_each_beat_once(produced, taken)


@cocotb.test()
async def a_stalled_branch_holds_the_producer_and_the_other_takes_the_beat_once(dut):
    await _start(dut)
    dut.in_valid.value = 1
    dut.a_ready.value = 1
    dut.b_ready.value = 0
    a_taken = 0
    for _ in range(8):
        await ReadOnly()
        assert dut.in_ready.value == 0, "the producer advanced while branch b had not taken the beat"
        a_taken += int(dut.a_valid.value == 1)
        assert dut.b_valid.value == 1
        await FallingEdge(dut.clk)
    assert a_taken == 1, f"branch a saw the beat offered {a_taken} times"
    dut.b_ready.value = 1
    await ReadOnly()
    assert dut.in_ready.value == 1 and dut.a_valid.value == 0, "b's handshake should complete the beat alone"
    await FallingEdge(dut.clk)
    await ReadOnly()
    assert dut.a_valid.value == 1 and dut.b_valid.value == 1, "the next beat is offered to both"
    await FallingEdge(dut.clk)
    dut.in_valid.value = 0
