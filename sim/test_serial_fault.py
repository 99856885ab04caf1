"""The board top's `error` pin and a design's ROM fault: rtl/serial_top.v (mpc_serial_top) around
an mpc_top with protected ROMs, one vector sent through rx and its reply read from tx, then the
pin checked (rtl/serial_top.v's header: `error` also shows mpc_top's sticky `fault`).

Environment:
  MPC_STIMULUS    the .npz of sim/test_design.py (x_q, in_bits, logit_bits, n_classes; vector 0
                  is sent, the reply's values are not checked here).
  MPC_SERIAL_PARAMETERS  JSON: the wrapper's Verilog parameters as built (CLKS_PER_BIT,
                  CLASS_BITS).
  MPC_EXPECT_FAULT  "1": the design's ROM images hold an uncorrectable error, so `error` must be
                  high after the reply (and low before the vector); otherwise low throughout.
  MPC_SIM_STALL_CYCLES  optional: cycles without a reply byte before the design counts as hung.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import Timer
from streams import CLOCK_NS, UartMonitor, stall_cycles, uart_send


@cocotb.test()
async def error_pin_shows_the_design_fault(dut):
    stim = np.load(os.environ["MPC_STIMULUS"])
    params = json.loads(os.environ["MPC_SERIAL_PARAMETERS"])
    expect = int(os.environ.get("MPC_EXPECT_FAULT", "") == "1")
    in_bytes = (int(stim["in_bits"]) + 7) // 8
    bytes_out = (int(params["CLASS_BITS"]) + 7) // 8 + int(stim["n_classes"]) * ((int(stim["logit_bits"]) + 7) // 8)
    bit_ns = int(params["CLKS_PER_BIT"]) * CLOCK_NS

    dut.rx.value = 1
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    monitor = UartMonitor(dut.tx, bit_ns)
    monitor.start()
    await Timer(4 * bit_ns, "ns")  # the power-on reset is 15 cycles
    assert dut.error.value == 0, "the error pin is lit before any vector"

    mask = (1 << (8 * in_bytes)) - 1
    vector = np.asarray(stim["x_q"], dtype=np.int64)[0]
    await uart_send(dut.rx, b"".join((int(v) & mask).to_bytes(in_bytes, "little") for v in vector), bit_ns)
    await monitor.wait_for(bytes_out, stall_cycles() * CLOCK_NS)
    await Timer(12 * bit_ns, "ns")
    assert len(monitor.frames) == bytes_out, f"{len(monitor.frames)} bytes for one reply of {bytes_out}"
    assert int(dut.error.value) == expect, f"error pin {dut.error.value}, expected {expect} (a ROM fault)"
