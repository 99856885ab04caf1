"""Serial-wrapper bench: rtl/serial_top.v (mpc_serial_top) around a generated mpc_top, driven
through its UART pins only, as a host on the other end of a cable would, and every reply
compared with the golden executor's outputs.

Environment:
  MPC_STIMULUS    the .npz of sim/test_design.py: x_q [N, n_in] in the design's stream order,
                  expected_logits [N, n_classes], expected_argmax [N], in_bits, logit_bits,
                  n_classes.
  MPC_SIM_RESULT  path of the JSON summary written here: samples, mismatches, first_mismatches,
                  cycles_per_vector (mean cycles between the ends of consecutive replies with the
                  host keeping its window full; null for one sample), latency_first_vector (cycles
                  from vector 0's first start bit to the end of its reply's last stop bit),
                  bytes_in, bytes_out, clks_per_bit, window, and, if the bench broke off, error.
  MPC_SERIAL_PARAMETERS  JSON: the wrapper's Verilog parameters as built (CLKS_PER_BIT,
                  CLASS_BITS, FIFO_VECTORS, IDLE_BITS; others are ignored).
  MPC_SERIAL_FAULTS  "1": also check the faults (a framing error, a host ignoring the window).
  MPC_SIM_STALL_CYCLES  optional: cycles without a reply byte before the design counts as hung.

Phases: (1) every sample, the host sending vector k as soon as the reply to vector
k - FIFO_VECTORS is in (so vectors arrive while replies leave); (2) a few samples one at a time,
with random pauses between bytes at any phase against the clock and the host's baud rate 1.5%
off either way; (3) half a vector, a pause of IDLE_BITS bit times, then a whole one: only the
whole one is answered. The `error` pin must stay low, `busy` must be low at the end, and no byte
may follow the replies. The UART helpers are sim/streams.py's.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import Timer
from streams import CLOCK_NS, UartMonitor, stall_cycles, uart_bits, uart_send


class Host:
    """The protocol of rtl/serial_top.v from the host's side."""

    def __init__(self, dut, params: dict, in_bits: int, logit_bits: int, n_classes: int):
        self.dut = dut
        self.clks = int(params["CLKS_PER_BIT"])
        self.window = int(params.get("FIFO_VECTORS", 2))
        self.idle_bits = int(params.get("IDLE_BITS", 2048))
        self.in_bytes = (in_bits + 7) // 8
        self.class_bytes = (int(params["CLASS_BITS"]) + 7) // 8
        self.logit_bytes = (logit_bits + 7) // 8
        self.n_classes = n_classes
        self.bytes_out = self.class_bytes + n_classes * self.logit_bytes
        self.bit_ns = self.clks * CLOCK_NS
        self.monitor = UartMonitor(dut.tx, self.bit_ns)
        self.timeout_ns = stall_cycles() * CLOCK_NS

    def encode(self, vector) -> bytes:
        mask = (1 << (8 * self.in_bytes)) - 1
        return b"".join((int(v) & mask).to_bytes(self.in_bytes, "little") for v in vector)

    def decode(self, reply: list[int]) -> tuple[list[int], int]:
        """(logits, class) from one reply's bytes."""
        index = int.from_bytes(bytes(reply[: self.class_bytes]), "little")
        body = bytes(reply[self.class_bytes :])
        lb = self.logit_bytes
        logits = [int.from_bytes(body[k * lb : (k + 1) * lb], "little", signed=True) for k in range(self.n_classes)]
        return logits, index

    def replies(self, first_frame: int, count: int) -> list[tuple[list[int], int]]:
        data = self.monitor.data[first_frame : first_frame + count * self.bytes_out]
        return [self.decode(data[i * self.bytes_out : (i + 1) * self.bytes_out]) for i in range(count)]

    def reply_end_ns(self, frame: int) -> float:
        """When the stop bit of frame `frame` ends."""
        return self.monitor.frames[frame][0] + 10 * self.bit_ns

    async def wait_replies(self, count: int) -> None:
        """Until `count` whole replies have come since the monitor started."""
        await self.monitor.wait_for(count * self.bytes_out, self.timeout_ns)

    async def quiet(self, bits: float) -> None:
        await Timer(round(bits * self.bit_ns * 1000), "ps")


def _compare(got, samples, expected_logits, expected_argmax, phase):
    mismatches = []
    for (logits, index), s in zip(got, samples):
        want = ([int(v) for v in expected_logits[s]], int(expected_argmax[s]))
        if logits != want[0] or index != want[1]:
            mismatches.append(
                {
                    "sample": int(s),
                    "phase": phase,
                    "expected": {"logits": want[0], "argmax": want[1]},
                    "got": {"logits": logits, "argmax": index},
                }
            )
    return mismatches


@cocotb.test()
async def serial_top_matches_golden(dut):
    stim = np.load(os.environ["MPC_STIMULUS"])
    params = json.loads(os.environ["MPC_SERIAL_PARAMETERS"])
    x_q = np.asarray(stim["x_q"], dtype=np.int64)
    expected_logits = np.asarray(stim["expected_logits"], dtype=np.int64)
    expected_argmax = np.asarray(stim["expected_argmax"], dtype=np.int64)
    n_samples = x_q.shape[0]
    host = Host(dut, params, int(stim["in_bits"]), int(stim["logit_bits"]), int(stim["n_classes"]))
    summary = {
        "samples": n_samples,
        "mismatches": 0,
        "first_mismatches": [],
        "cycles_per_vector": None,
        "latency_first_vector": None,
        "bytes_in": host.in_bytes * x_q.shape[1],
        "bytes_out": host.bytes_out,
        "clks_per_bit": host.clks,
        "window": host.window,
    }
    mismatches: list[dict] = []
    try:
        dut.rx.value = 1
        Clock(dut.clk, CLOCK_NS, unit="ns").start()
        monitor = host.monitor
        monitor.start()
        await host.quiet(4)  # the power-on reset is 15 cycles

        # Phase 1: every sample, the window kept full.
        first_starts = []
        for i in range(n_samples):
            if i >= host.window:
                await host.wait_replies(i - host.window + 1)
            starts = await uart_send(dut.rx, host.encode(x_q[i]), host.bit_ns)
            first_starts.append(starts[0])
        await host.wait_replies(n_samples)
        mismatches += _compare(host.replies(0, n_samples), range(n_samples), expected_logits, expected_argmax, "stream")
        ends = [host.reply_end_ns((i + 1) * host.bytes_out - 1) for i in range(n_samples)]
        summary["latency_first_vector"] = round((ends[0] - first_starts[0]) / CLOCK_NS)
        if n_samples > 1:
            summary["cycles_per_vector"] = float(np.mean(np.diff(ends))) / CLOCK_NS

        # Phase 2: one at a time, random pauses at any phase, the host's clock 1.5% off.
        rng = random.Random(1234)
        replay = list(range(min(n_samples, 4)))
        for n, s in enumerate(replay):
            base = len(monitor.frames)
            error = 0.015 if n % 2 else -0.015
            await uart_send(
                dut.rx,
                host.encode(x_q[s]),
                host.bit_ns * (1 + error),
                lambda: 0.0 if rng.random() < 0.5 else rng.uniform(0.1, 2 * host.bit_ns),
            )
            await monitor.wait_for(base + host.bytes_out, host.timeout_ns)
            mismatches += _compare(host.replies(base, 1), [s], expected_logits, expected_argmax, "paced")

        # Phase 3: a partial vector is discarded after IDLE_BITS bit times of silence.
        base = len(monitor.frames)
        s = n_samples - 1
        partial = host.encode(x_q[0])
        await uart_send(dut.rx, partial[: max(1, len(partial) // 2)], host.bit_ns)
        await host.quiet(host.idle_bits + 20)
        assert len(monitor.frames) == base, "the wrapper answered a partial vector"
        await uart_send(dut.rx, host.encode(x_q[s]), host.bit_ns)
        await monitor.wait_for(base + host.bytes_out, host.timeout_ns)
        mismatches += _compare(host.replies(base, 1), [s], expected_logits, expected_argmax, "resync")

        # Nothing more, and the status pins.
        await host.quiet(10 * host.bytes_out + 20)
        extra = len(monitor.frames) - base - host.bytes_out
        assert extra == 0, f"{extra} bytes after the last reply"
        assert dut.error.value == 0, "the error pin is lit"
        assert dut.busy.value == 0, "the busy pin is still lit after the last reply"

        if os.environ.get("MPC_SERIAL_FAULTS") == "1":
            summary["faults"] = await _faults(dut, host, x_q, expected_logits, expected_argmax)
    except Exception as exc:  # e.g. a hung design: record it, count it as a mismatch
        summary["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        summary["mismatches"] = max(len(mismatches), int("error" in summary))
        summary["first_mismatches"] = mismatches[:5]
        with open(os.environ["MPC_SIM_RESULT"], "w") as f:
            json.dump(summary, f, indent=2)
    assert not mismatches, f"{len(mismatches)} mismatching replies, first: {mismatches[0]}"


async def _faults(dut, host: Host, x_q, expected_logits, expected_argmax) -> dict:
    """A host that sends vectors back to back, ignoring the window, loses whole vectors (where
    replies are longer than vectors), never the framing: the replies are an in-order subsequence
    of the vectors sent, each exact, and `error` is lit exactly when one was dropped. Then a byte
    with a low stop bit is dropped and lights `error`, and the next vector is answered."""
    monitor = host.monitor
    base = len(monitor.frames)
    sent = [i % len(x_q) for i in range(host.window + 6)]
    for s in sent:
        await uart_send(dut.rx, host.encode(x_q[s]), host.bit_ns)
    while True:  # until the replies stop
        count = len(monitor.frames)
        await host.quiet(10 * host.bytes_out + 50)
        if len(monitor.frames) == count:
            break
    received = len(monitor.frames) - base
    assert received % host.bytes_out == 0, f"{received} bytes: not whole replies"
    got = host.replies(base, received // host.bytes_out)
    k = 0
    for logits, index in got:  # each reply is the next vector that was kept
        while k < len(sent) and (logits, index) != (
            [int(v) for v in expected_logits[sent[k]]],
            int(expected_argmax[sent[k]]),
        ):
            k += 1
        assert k < len(sent), f"reply {logits, index} is no vector's, in order"
        k += 1
    dropped = len(sent) - len(got)
    assert dut.error.value == int(dropped > 0), f"{dropped} vectors dropped, error pin {dut.error.value}"
    assert dut.busy.value == 0

    base = len(monitor.frames)
    for level in uart_bits(0xA5)[:-1] + [0]:
        dut.rx.value = level
        await host.quiet(1)
    dut.rx.value = 1
    await host.quiet(2)
    assert dut.error.value == 1, "a framing error did not light the error pin"
    await uart_send(dut.rx, host.encode(x_q[0]), host.bit_ns)
    await monitor.wait_for(base + host.bytes_out, host.timeout_ns)
    assert _compare(host.replies(base, 1), [0], expected_logits, expected_argmax, "fault") == []
    return {"vectors_sent": len(sent), "replies": len(got), "dropped": dropped}
