"""cocotb bench for rtl/uart_tx.v and rtl/uart_rx.v (through the fixture tests/sim/uart_pair.v).

Environment: MPC_TB_CONFIG = JSON {"CLKS_PER_BIT", "seed"?}.

The transmitter's line is compared with the exact 8N1 waveform cycle by cycle (bytes back to
back and after gaps); the receiver decodes frames sent at random phases against the clock, with
random gaps, at the nominal baud rate (where its out_valid cycle is checked exactly) and 2% too
fast and too slow; glitches, low stop bits and a break are rejected; and tx looped back into rx
carries every byte value at the full line rate.
"""

import json
import math
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time
from streams import CLOCK_NS, drive_stream, uart_bits, uart_send


def _config():
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    return int(cfg["CLKS_PER_BIT"]), random.Random(cfg.get("seed", 0))


async def _reset(dut) -> None:
    """Clock, both lines idle, rst for 3 edges; returns after a falling edge."""
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.in_data.value = 0
    dut.rx.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


class Watch:
    """Samples the pair in every cycle, counting cycles from when it is made, just after a
    falling edge (each test starts a new clock, at any phase): cycle n follows rising edge n;
    a handshake or an out_valid seen in cycle n completes at edge n + 1."""

    def __init__(self, dut):
        self.dut = dut
        self.tx: list[int] = []
        self.active: list[int] = []
        self.accepted: list[int] = []  # edges at which uart_tx took a byte
        self.received: list = []  # (edge taken, byte), or (edge, None) for a frame_error
        self.origin = 0.0  # time of rising edge 0 (ns)
        cocotb.start_soon(self._run())

    def edge_after(self, t_ns: float) -> int:
        """Index of the first rising edge after time t_ns."""
        return math.floor((t_ns - self.origin) / CLOCK_NS) + 1

    async def _run(self) -> None:
        dut = self.dut  # started just after a falling edge: the current cycle is cycle 0
        self.origin = get_sim_time("ns") - CLOCK_NS / 2
        while True:
            await ReadOnly()
            n = len(self.tx)
            self.tx.append(int(dut.tx.value))
            self.active.append(int(dut.tx_active.value))
            if dut.in_valid.value == 1 and dut.in_ready.value == 1:
                self.accepted.append(n + 1)
            assert not (dut.out_valid.value == 1 and dut.frame_error.value == 1)
            if dut.out_valid.value == 1:
                self.received.append((n + 1, int(dut.out_data.value)))
            if dut.frame_error.value == 1:
                self.received.append((n + 1, None))
            await FallingEdge(dut.clk)

    @property
    def bytes(self) -> list:
        return [b for _, b in self.received]


@cocotb.test()
async def transmitter_frames_are_exact(dut):
    clks, rng = _config()
    await _reset(dut)
    watch = Watch(dut)
    data = [0x00, 0xFF, 0x55, 0xAA, 0x01, 0x80] + [rng.randrange(256) for _ in range(10)]
    await drive_stream(dut, data[:8], 8)  # back to back
    for _ in range(3 * clks):
        await FallingEdge(dut.clk)
    await drive_stream(dut, data[8:], 8, gap_prob=0.02, rng=rng)
    for _ in range(11 * clks):
        await FallingEdge(dut.clk)
    accepted = watch.accepted
    assert len(accepted) == len(data)
    assert all(b - a == 10 * clks for a, b in zip(accepted[:7], accepted[1:8])), accepted
    expected, busy = [1] * len(watch.tx), [0] * len(watch.tx)  # idle high
    for edge, byte in zip(accepted, data):
        for i, level in enumerate(uart_bits(byte)):
            for c in range(clks):
                expected[edge + i * clks + c] = level
                busy[edge + i * clks + c] = 1
    wrong = [n for n, level in enumerate(watch.tx) if level != expected[n]]
    assert not wrong, f"tx differs from the 8N1 waveform from cycle {wrong[0]} (bytes taken at {accepted})"
    assert watch.active == busy, "tx_active is not high exactly while a frame is on the line"


@cocotb.test()
async def receiver_decodes_frames_at_any_phase(dut):
    clks, rng = _config()
    await _reset(dut)
    watch = Watch(dut)
    bit_ns = clks * CLOCK_NS
    for error in (0.0, 0.02, -0.02):
        data = [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(28)]
        watch.received.clear()

        def gap():  # back to back or up to 3 bit times, at any phase against the clock
            return 0.0 if rng.random() < 0.3 else rng.uniform(0.1, 3 * bit_ns)

        starts = await uart_send(dut.rx, data, bit_ns * (1 + error), gap)
        await Timer(2 * bit_ns, "ns")
        assert watch.bytes == data, f"baud error {error:+.0%}: sent {data}, received {watch.received}"
        if error == 0.0:
            # rx_sync is low 2 edges after the first edge e1 past the start bit's falling edge;
            # then (C-1)/2 edges to the middle of the start bit, 9 bits to the stop bit's
            # middle, and out_valid is taken at the edge after that.
            want = [watch.edge_after(t) + 3 + (clks - 1) // 2 + 9 * clks for t in starts]
            got = [e for e, _ in watch.received]
            assert got == want, f"out_valid taken at edges {got}, expected {want}"


@cocotb.test()
async def receiver_rejects_glitches_and_bad_stop_bits(dut):
    clks, rng = _config()
    await _reset(dut)
    watch = Watch(dut)
    bit_ns = clks * CLOCK_NS
    # A low glitch shorter than half a bit (less the synchronizer's uncertainty) is no start bit.
    dut.rx.value = 0
    await Timer(max(1, (clks - 1) // 2 - 1) * CLOCK_NS - 3, "ns")
    dut.rx.value = 1
    await Timer(12 * bit_ns, "ns")
    assert watch.received == [], f"a glitch was taken for a frame: {watch.received}"
    # A frame with a low stop bit: frame_error, no byte; the next frame is received.
    for level in uart_bits(0x5A)[:-1] + [0]:
        dut.rx.value = level
        await Timer(bit_ns, "ns")
    dut.rx.value = 1
    await Timer(2 * bit_ns, "ns")
    await uart_send(dut.rx, [0x3C], bit_ns)
    await Timer(2 * bit_ns, "ns")
    assert watch.bytes == [None, 0x3C], watch.received
    # A break (the line low for 30 bit times): one frame_error, then frames are received again.
    watch.received.clear()
    dut.rx.value = 0
    await Timer(30 * bit_ns + 3, "ns")
    dut.rx.value = 1
    await Timer(bit_ns, "ns")
    await uart_send(dut.rx, [0xC3, 0x00], bit_ns)
    await Timer(2 * bit_ns, "ns")
    assert watch.bytes == [None, 0xC3, 0x00], watch.received


@cocotb.test()
async def loopback_carries_every_byte_at_line_rate(dut):
    clks, _ = _config()
    await _reset(dut)
    watch = Watch(dut)

    async def wire():  # the cable: rx follows tx half a cycle later
        while True:
            await FallingEdge(dut.clk)
            dut.rx.value = dut.tx.value

    cocotb.start_soon(wire())
    await drive_stream(dut, range(256), 8)
    await Timer(12 * clks * CLOCK_NS, "ns")
    assert watch.bytes == list(range(256))
    edges = [e for e, _ in watch.received]
    assert all(b - a == 10 * clks for a, b in zip(edges, edges[1:])), "bytes do not arrive at the line rate"
