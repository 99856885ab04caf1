"""Whole-design testbench for a generated `mpc_top` (features in, logits + argmax out).

Environment:
  MPC_STIMULUS    .npz with x_q [N, n_in] in the design's stream order (an image channel-last:
                  compiler.api.stream_order), expected_logits [N, n_classes], expected_argmax [N]
                  (int64) and scalars in_bits, logit_bits, n_classes.
  MPC_SIM_RESULT  path of the JSON summary written here: samples, mismatches,
                  first_mismatches, cycles_per_inference (mean, first input accepted -> output
                  beat, streaming back to back), initiation_interval (mean cycles between
                  consecutive outputs; null for one sample), latency_first_sample (the same
                  latency through an idle pipeline) and, if the bench broke off, error.
  MPC_SIM_STALL_CYCLES  optional: cycles without progress before the design counts as hung.

All samples are streamed back to back with out_ready high (this phase gives the cycle
figures), then a few are replayed with random input gaps and random out_ready back-pressure.

The stream helpers below (clock/reset, drive_stream, collect_stream) are shared with the
per-module testbenches. Signals are written just after a falling clock edge and sampled in
the ReadOnly phase before the next rising edge, which is where the DUT samples them; this
works the same in Icarus and Verilator.
"""
from __future__ import annotations

import json
import math
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, with_timeout
from cocotb.utils import get_sim_time

CLOCK_NS = 10
DEFAULT_STALL_CYCLES = 1_000_000


# ------------------------------------------------------------------------ stream helpers
def stall_cycles() -> int:
    return int(os.environ.get("MPC_SIM_STALL_CYCLES", DEFAULT_STALL_CYCLES))


def handshake_edge() -> int:
    """Index of the next rising clock edge (where a handshake seen now completes)."""
    return math.ceil(get_sim_time("ns") / CLOCK_NS)


def to_signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


async def start_clock_and_reset(dut, cycles: int = 3) -> None:
    """Start the clock, hold rst for `cycles` edges; return just after a falling edge."""
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.in_data.value = 0
    dut.out_ready.value = 0
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _wait_for_high(dut, signal) -> None:
    """From ReadOnly: wait until `signal` is high, then re-enter ReadOnly after a falling edge."""
    while signal.value != 1:
        await with_timeout(RisingEdge(signal), stall_cycles() * CLOCK_NS, "ns")
        await FallingEdge(dut.clk)
        await ReadOnly()


async def drive_stream(dut, values, bits: int, accepted_at: list | None = None,
                       gap_prob: float = 0.0, rng: random.Random | None = None) -> None:
    """Send `values` one per in_valid/in_ready handshake; start and end after a falling edge.

    `accepted_at` receives the clock edge at which each value was accepted. With gap_prob > 0,
    random idle cycles (in_valid low, garbage on in_data) are inserted before beats.
    """
    mask = (1 << bits) - 1
    for value in values:
        while gap_prob and rng.random() < gap_prob:
            dut.in_valid.value = 0
            dut.in_data.value = rng.getrandbits(bits)
            await FallingEdge(dut.clk)
        dut.in_valid.value = 1
        dut.in_data.value = int(value) & mask
        await ReadOnly()
        await _wait_for_high(dut, dut.in_ready)
        if accepted_at is not None:
            accepted_at.append(handshake_edge())
        await FallingEdge(dut.clk)
    dut.in_valid.value = 0


async def collect_stream(dut, count: int, read_beat, ready_prob: float = 1.0,
                         rng: random.Random | None = None) -> list[tuple[int, object]]:
    """Collect `count` output beats as (clock edge, read_beat(dut)); start after a falling edge.

    out_ready is high with probability ready_prob each cycle. While out_valid is high and
    out_ready low, the beat must hold: out_valid stays high and the data does not change.
    """
    beats = []
    held = None  # beat refused last cycle, which must still be presented unchanged
    while len(beats) < count:
        ready = ready_prob >= 1.0 or rng.random() < ready_prob
        dut.out_ready.value = int(ready)
        await ReadOnly()
        if dut.out_valid.value != 1:
            assert held is None, "out_valid dropped while out_ready was low"
            await with_timeout(RisingEdge(dut.out_valid), stall_cycles() * CLOCK_NS, "ns")
        else:
            beat = read_beat(dut)
            assert held is None or beat == held, (
                f"output changed while stalled: {held} -> {beat}")
            if ready:
                beats.append((handshake_edge(), beat))
                held = None
            else:
                held = beat
        await FallingEdge(dut.clk)
    dut.out_ready.value = 0
    return beats


async def expect_no_output(dut, cycles: int) -> None:
    """With out_ready high for `cycles` cycles, no further beat may appear (after a falling edge)."""
    dut.out_ready.value = 1
    for _ in range(cycles):
        await ReadOnly()
        assert dut.out_valid.value != 1, "extra output beat after the expected ones"
        await FallingEdge(dut.clk)
    dut.out_ready.value = 0


# ------------------------------------------------------------------------ design bench
def _read_design_beat(n_classes: int, logit_bits: int):
    def read(dut):
        packed = int(dut.out_logits.value)
        logits = [to_signed(packed >> (k * logit_bits), logit_bits) for k in range(n_classes)]
        return tuple(logits), int(dut.out_argmax.value)
    return read


def _compare(beats, samples, expected_logits, expected_argmax, phase):
    mismatches = []
    for (_, (logits, index)), s in zip(beats, samples):
        want = ([int(v) for v in expected_logits[s]], int(expected_argmax[s]))
        if list(logits) != want[0] or index != want[1]:
            mismatches.append({
                "sample": int(s), "phase": phase,
                "expected": {"logits": want[0], "argmax": want[1]},
                "got": {"logits": list(logits), "argmax": index},
            })
    return mismatches


@cocotb.test()
async def design_matches_golden(dut):
    stim = np.load(os.environ["MPC_STIMULUS"])
    result_path = os.environ["MPC_SIM_RESULT"]
    x_q = np.asarray(stim["x_q"], dtype=np.int64)
    expected_logits = np.asarray(stim["expected_logits"], dtype=np.int64)
    expected_argmax = np.asarray(stim["expected_argmax"], dtype=np.int64)
    in_bits, logit_bits = int(stim["in_bits"]), int(stim["logit_bits"])
    n_classes = int(stim["n_classes"])
    n_samples = x_q.shape[0]
    read_beat = _read_design_beat(n_classes, logit_bits)
    summary = {"samples": n_samples, "mismatches": 0, "first_mismatches": [],
               "cycles_per_inference": None, "initiation_interval": None,
               "latency_first_sample": None}
    mismatches = []
    try:
        assert len(dut.out_logits) == n_classes * logit_bits, (
            f"out_logits is {len(dut.out_logits)} bits, expected {n_classes}*{logit_bits}")
        await start_clock_and_reset(dut)

        # Phase 1: back to back, out_ready high: correctness and cycle figures.
        accepted = []
        driver = cocotb.start_soon(drive_stream(dut, x_q.ravel(), in_bits, accepted))
        beats = await collect_stream(dut, n_samples, read_beat)
        await driver
        mismatches += _compare(beats, range(n_samples), expected_logits, expected_argmax,
                               "stream")
        first_in = accepted[:: x_q.shape[1]]
        out_edges = [edge for edge, _ in beats]
        latencies = np.subtract(out_edges, first_in)
        summary["cycles_per_inference"] = float(np.mean(latencies))
        summary["latency_first_sample"] = int(latencies[0])
        if n_samples > 1:
            summary["initiation_interval"] = float(np.mean(np.diff(out_edges)))

        # Phase 2: a few samples again with random input gaps and output back-pressure.
        rng = random.Random(1234)
        replay = list(range(min(n_samples, 8)))
        driver = cocotb.start_soon(
            drive_stream(dut, x_q[replay].ravel(), in_bits, gap_prob=0.3, rng=rng))
        beats = await collect_stream(dut, len(replay), read_beat, ready_prob=0.5, rng=rng)
        await driver
        mismatches += _compare(beats, replay, expected_logits, expected_argmax,
                               "backpressure")
        await expect_no_output(dut, summary["latency_first_sample"] + 10)
    except Exception as exc:  # e.g. a hung design: record it, count it as a mismatch
        summary["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        summary["mismatches"] = max(len(mismatches), int("error" in summary))
        summary["first_mismatches"] = mismatches[:5]
        with open(result_path, "w") as f:
            json.dump(summary, f, indent=2)
    assert not mismatches, f"{len(mismatches)} mismatching output beats, first: {mismatches[0]}"
