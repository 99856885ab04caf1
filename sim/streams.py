"""Stream drivers shared by every cocotb bench: clock and reset, driving an input stream,
collecting an output stream with optional back-pressure, and checking that nothing more comes.

Signals are written just after a falling clock edge and sampled in the ReadOnly phase before the
next rising edge, which is where the DUT samples them; this works the same in Icarus and
Verilator. Every engine has the same valid/ready interface: clk, rst, in_valid, in_ready,
in_data, out_valid, out_ready and its output data.

The UART helpers at the end (uart_send, UartMonitor) drive and decode 8N1 serial lines in
time, not in clock cycles, as a host on the other end of a cable does (rtl/uart_rx.v,
rtl/uart_tx.v, rtl/serial_top.v).
"""

from __future__ import annotations

import math
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer, with_timeout
from cocotb.utils import get_sim_time

CLOCK_NS = 10
DEFAULT_STALL_CYCLES = 1_000_000


def stall_cycles() -> int:
    return int(os.environ.get("MPC_SIM_STALL_CYCLES", DEFAULT_STALL_CYCLES))


def handshake_edge() -> int:
    """Index of the next rising clock edge (where a handshake seen now completes)."""
    return math.ceil(get_sim_time("ns") / CLOCK_NS)


def to_signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


async def start_clock_and_reset(dut, cycles: int = 3, inputs: tuple[str, ...] = ("in",)) -> None:
    """Start the clock, hold rst for `cycles` edges; return just after a falling edge. `inputs`:
    the input streams' port prefixes (a join has two: in_a, in_b), held idle."""
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    for port in inputs:
        getattr(dut, f"{port}_valid").value = 0
        getattr(dut, f"{port}_data").value = 0
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


async def drive_stream(
    dut, values, bits: int, accepted_at: list | None = None, gap_prob: float = 0.0, rng: random.Random | None = None
) -> None:
    """Send `values` one per in_valid/in_ready handshake; start and end after a falling edge.

    `accepted_at` receives the clock edge at which each value was accepted. With gap_prob > 0,
    random idle cycles (in_valid low, garbage on in_data) are inserted before beats.
    """
    mask = (1 << bits) - 1
    rng = rng or random.Random(0)
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


async def collect_stream(
    dut, count: int, read_beat, ready_prob: float = 1.0, rng: random.Random | None = None
) -> list[tuple[int, object]]:
    """Collect `count` output beats as (clock edge, read_beat(dut)); start after a falling edge.

    out_ready is high with probability ready_prob each cycle. While out_valid is high and
    out_ready low, the beat must hold: out_valid stays high and the data does not change.
    """
    rng = rng or random.Random(0)
    beats: list[tuple[int, object]] = []
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
            assert held is None or beat == held, f"output changed while stalled: {held} -> {beat}"
            if ready:
                beats.append((handshake_edge(), beat))
                held = None
            else:
                held = beat
        await FallingEdge(dut.clk)
    dut.out_ready.value = 0
    return beats


async def expect_no_output(dut, cycles: int) -> None:
    """With out_ready high for `cycles` cycles, no further beat may appear (after a falling edge).

    out_valid must be low in the ReadOnly phase after this falling edge and the next cycles - 1
    ones; it changes only at rising edges, so that is: it never rises (and stays high to the
    ReadOnly phase) until a quarter period past the last of those falling edges. The bench waits
    on that edge instead of visiting every cycle (a whole design's latency is tens of thousands
    of cycles), and ends after the same falling edge as a cycle-by-cycle loop would."""
    dut.out_ready.value = 1
    if cycles > 0:
        end_ps = get_sim_time("ps") + (cycles - 1) * CLOCK_NS * 1000 + CLOCK_NS * 250
        await ReadOnly()
        while True:
            assert dut.out_valid.value != 1, "extra output beat after the expected ones"
            left = end_ps - get_sim_time("ps")
            if left <= 0:
                break
            timer = Timer(left, "ps")
            if await First(RisingEdge(dut.out_valid), timer) is timer:
                break
            await ReadOnly()  # a rise: check the settled value (a glitch that fell again passes)
        await FallingEdge(dut.clk)
    dut.out_ready.value = 0


# ------------------------------------------------------------------------ design bench


# ------------------------------------------------------------------------ UART line (8N1)
def uart_bits(byte: int) -> list[int]:
    """The line levels of one 8N1 frame: start bit (0), 8 data bits LSB first, stop bit (1)."""
    return [0] + [(byte >> i) & 1 for i in range(8)] + [1]


async def uart_send(line, data, bit_ns: float, gap_ns=None) -> list[float]:
    """Drive `line` (a DUT input, idling high) with one 8N1 frame per byte of `data`, each bit
    bit_ns long (any real number: the line is asynchronous to the clock). `gap_ns`, if given, is
    called before each frame and returns the idle time to insert (ns). Returns the time (ns) of
    each frame's start bit."""
    starts = []
    for byte in data:
        gap = gap_ns() if gap_ns is not None else 0.0
        if gap > 0:
            line.value = 1
            await Timer(round(gap * 1000), "ps")
        starts.append(get_sim_time("ns"))
        for level in uart_bits(int(byte)):
            line.value = level
            await Timer(round(bit_ns * 1000), "ps")
    line.value = 1
    return starts


class UartMonitor:
    """Decodes every 8N1 frame on `line` (a DUT output) from when it is started: each falling
    edge in idle starts a frame, every bit is sampled in its middle. `frames` holds (start time
    ns, byte); a start bit that does not hold or a low stop bit raises, failing the test."""

    def __init__(self, line, bit_ns: float):
        self.line, self.bit_ps = line, round(bit_ns * 1000)
        self.frames: list[tuple[float, int]] = []

    def start(self):
        return cocotb.start_soon(self._run())

    @property
    def data(self) -> list[int]:
        return [byte for _, byte in self.frames]

    async def _run(self) -> None:
        while True:
            if self.line.value != 1:
                await RisingEdge(self.line)
            await FallingEdge(self.line)
            start = get_sim_time("ns")
            await Timer(self.bit_ps // 2, "ps")
            assert self.line.value == 0, f"start bit at {start} ns did not hold for half a bit"
            byte = 0
            for i in range(8):
                await Timer(self.bit_ps, "ps")
                byte |= int(self.line.value) << i
            await Timer(self.bit_ps, "ps")
            assert self.line.value == 1, f"frame at {start} ns: stop bit low (byte {byte:#04x})"
            self.frames.append((start, byte))

    async def wait_for(self, count: int, timeout_ns: float) -> None:
        """Until `count` frames have been decoded; raises TimeoutError after timeout_ns without one."""
        waited, last = 0.0, len(self.frames)
        while len(self.frames) < count:
            await Timer(self.bit_ps * 10, "ps")
            if len(self.frames) != last:
                waited, last = 0.0, len(self.frames)
            waited += self.bit_ps * 10 / 1000
            if waited > timeout_ns:
                raise TimeoutError(f"{len(self.frames)} of {count} UART frames after {timeout_ns:.0f} ns of silence")
