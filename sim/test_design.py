"""Whole-design testbench for a generated `mpc_top` (features in, logits + argmax out).

Environment:
  MPC_STIMULUS    .npz with x_q [N, n_in] in the design's stream order (an image channel-last:
                  compiler.simulate.stream_order), expected_logits [N, n_classes], expected_argmax [N]
                  (int64) and scalars in_bits, logit_bits, n_classes.
  MPC_SIM_RESULT  path of the JSON summary written here: samples, mismatches,
                  first_mismatches, cycles_per_inference (mean, first input accepted -> output
                  beat, streaming back to back), initiation_interval (mean cycles between
                  consecutive outputs; null for one sample), latency_first_sample (the same
                  latency through an idle pipeline), fault (the design's sticky ROM fault
                  output at the end, docs/fixed-point.md "Protected ROMs"; null when mpc_top has
                  no fault port) and, if the bench broke off, error.
  MPC_SIM_STALL_CYCLES  optional: cycles without progress before the design counts as hung.
  MPC_SIM_BACKPRESSURE  optional: JSON {"samples", "gap_prob", "ready_prob", "seed"} for the second
                  phase (default: the first 8 samples, gaps 0.3, out_ready 0.5, seed 1234); the
                  summary's "backpressure" gives what it ran and its cycles (first input -> last beat).
  MPC_EXPECT_FAULT  optional: "1" for a design whose ROM images hold an uncorrectable error (a
                  fault-injection run): outputs are not compared, and the run must end with
                  fault high. Otherwise a fault that goes high is an error (recorded in error,
                  counted as a mismatch).

All samples are streamed back to back with out_ready high (this phase gives the cycle
figures), then some are replayed with random input gaps and random out_ready back-pressure
(a design that branches must neither lose a beat nor deadlock under it: its join FIFOs are
sized by the timing model; a hang is caught by MPC_SIM_STALL_CYCLES).

The stream drivers (clock/reset, drive_stream, collect_stream) are sim/streams.py's, shared
with the per-module testbenches.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.utils import get_sim_time
from streams import CLOCK_NS, collect_stream, drive_stream, expect_no_output, start_clock_and_reset, to_signed


def _read_design_beat(n_classes: int, logit_bits: int):
    def read(dut):
        logits_value, argmax_value = dut.out_logits.value, dut.out_argmax.value
        if not (logits_value.is_resolvable and argmax_value.is_resolvable):
            return (None,) * n_classes, None  # X/Z (a corrupt ROM word): a mismatch, not a crash
        packed = int(logits_value)
        logits = [to_signed(packed >> (k * logit_bits), logit_bits) for k in range(n_classes)]
        return tuple(logits), int(argmax_value)

    return read


def _read_fault(dut):
    """mpc_top's sticky ROM fault: 0 or 1, the value's text if it is X/Z, None without the port."""
    try:
        handle = dut.fault
    except AttributeError:
        return None
    value = handle.value
    return int(value) if value.is_resolvable else str(value)


def _compare(beats, samples, expected_logits, expected_argmax, phase):
    mismatches = []
    for (_, (logits, index)), s in zip(beats, samples):
        want = ([int(v) for v in expected_logits[s]], int(expected_argmax[s]))
        if list(logits) != want[0] or index != want[1]:
            mismatches.append(
                {
                    "sample": int(s),
                    "phase": phase,
                    "expected": {"logits": want[0], "argmax": want[1]},
                    "got": {"logits": list(logits), "argmax": index},
                }
            )
    return mismatches


def _backpressure(n_samples: int) -> dict:
    """The second phase's settings: MPC_SIM_BACKPRESSURE over the defaults."""
    given = json.loads(os.environ.get("MPC_SIM_BACKPRESSURE") or "{}")
    return {"samples": min(n_samples, 8), "gap_prob": 0.3, "ready_prob": 0.5, "seed": 1234} | given


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
    expect_fault = os.environ.get("MPC_EXPECT_FAULT", "") == "1"
    compare = (lambda *args: []) if expect_fault else _compare  # a detected fault: outputs undefined
    read_beat = _read_design_beat(n_classes, logit_bits)
    summary = {
        "samples": n_samples,
        "mismatches": 0,
        "first_mismatches": [],
        "cycles_per_inference": None,
        "initiation_interval": None,
        "latency_first_sample": None,
        "fault": None,
    }
    mismatches = []
    try:
        assert len(dut.out_logits) == n_classes * logit_bits, (
            f"out_logits is {len(dut.out_logits)} bits, expected {n_classes}*{logit_bits}"
        )
        await start_clock_and_reset(dut)

        # Phase 1: back to back, out_ready high: correctness and cycle figures.
        accepted = []
        driver = cocotb.start_soon(drive_stream(dut, x_q.ravel(), in_bits, accepted))
        beats = await collect_stream(dut, n_samples, read_beat)
        await driver
        mismatches += compare(beats, range(n_samples), expected_logits, expected_argmax, "stream")
        first_in = accepted[:: x_q.shape[1]]
        out_edges = [edge for edge, _ in beats]
        latencies = np.subtract(out_edges, first_in)
        summary["cycles_per_inference"] = float(np.mean(latencies))
        summary["latency_first_sample"] = int(latencies[0])
        if n_samples > 1:
            summary["initiation_interval"] = float(np.mean(np.diff(out_edges)))

        # Phase 2: samples again with random input gaps and output back-pressure.
        stress = _backpressure(n_samples)
        rng = random.Random(stress["seed"])
        replay = [k % n_samples for k in range(stress["samples"])]
        start = get_sim_time("ns")
        driver = cocotb.start_soon(
            drive_stream(dut, x_q[replay].ravel(), in_bits, gap_prob=stress["gap_prob"], rng=rng)
        )
        beats = await collect_stream(dut, len(replay), read_beat, ready_prob=stress["ready_prob"], rng=rng)
        await driver
        summary["backpressure"] = stress | {"cycles": round((get_sim_time("ns") - start) / CLOCK_NS)}
        mismatches += compare(beats, replay, expected_logits, expected_argmax, "backpressure")
        await expect_no_output(dut, summary["latency_first_sample"] + 10)
        summary["fault"] = _read_fault(dut)
        if expect_fault:
            assert summary["fault"] is not None, "MPC_EXPECT_FAULT=1 but mpc_top has no fault port"
            assert summary["fault"] == 1, f"MPC_EXPECT_FAULT=1 but fault is {summary['fault']} at the end"
        else:
            assert summary["fault"] in (None, 0), (
                f"fault is {summary['fault']}: a protected ROM word was read with an uncorrectable error"
            )
    except Exception as exc:  # e.g. a hung design: record it, count it as a mismatch
        summary["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if summary["fault"] is None:
            summary["fault"] = _read_fault(dut)
        summary["mismatches"] = max(len(mismatches), int("error" in summary))
        summary["first_mismatches"] = mismatches[:5]
        with open(result_path, "w") as f:
            json.dump(summary, f, indent=2)
    assert not mismatches, f"{len(mismatches)} mismatching output beats, first: {mismatches[0]}"
