"""The board-ready top level written beside every design: rtl/serial_top.v (`mpc_serial_top`)
instantiates the generated `mpc_top` behind a UART, so a board needs the pins clk, rx, tx and
two status LEDs instead of one per bit of the stream ports.

The protocol is the Verilog file's header: the host sends the n_in features of one vector in
the design's stream order, each ceil(in_bits / 8) bytes little-endian two's complement; the
wrapper answers with the class (ceil(idx_bits / 8) bytes: one up to 256 classes) and the
n_classes logits, each ceil(logit_bits / 8) bytes little-endian, sign-extended. 8N1 at
CLKS_PER_BIT clock cycles per bit: the default 104 is 115200 baud at a 12 MHz board clock
(iCE40 boards such as the iCEBreaker and the UPduino). The host may have FIFO_VECTORS (2)
vectors without a complete reply; a pause of IDLE_BITS bit times inside a vector discards it.

design.json "serial_top" describes it (docs/report.md); `mpc simulate OUT --serial` runs it
through its pins (sim/test_serial_top.py). files.f and the mpc_top ports are unchanged.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from compiler.hw.base import VerilogBackendError
from rtl import RTL_DIR, sources

MODULE = "mpc_serial_top"
FILE = "serial_top.v"
PINS = ["clk", "rx", "tx", "busy", "error"]
BOARD_CLOCK_HZ = 12_000_000
CLKS_PER_BIT = 104  # 12 MHz / 104 = 115385 baud: 115200 within 0.2%
FIFO_VECTORS = 2  # vectors the host may send before the first reply is in
IDLE_BITS = 2048  # 18 ms at 115200 baud
MIN_CLKS_PER_BIT = 4  # rtl/uart_rx.v samples mid-bit with (CLKS_PER_BIT - 1) / 2 - 1 >= 0


def _bytes(bits: int) -> int:
    return math.ceil(bits / 8)


def serial_top(design: dict, clks_per_bit: int = CLKS_PER_BIT) -> dict:
    """design.json's "serial_top" entry for a design description (write_verilog's)."""
    if clks_per_bit < MIN_CLKS_PER_BIT:
        raise VerilogBackendError(f"the UART needs at least {MIN_CLKS_PER_BIT} clock cycles per bit")
    parameters = {
        "N_IN": design["n_in"],
        "IN_BITS": design["in_bits"],
        "N_CLASSES": design["n_classes"],
        "LOGIT_BITS": design["logit_bits"],
        "CLASS_BITS": design["idx_bits"],
        "CLKS_PER_BIT": clks_per_bit,
        "FIFO_VECTORS": FIFO_VECTORS,
        "IDLE_BITS": IDLE_BITS,
    }
    return {
        "module": MODULE,
        "sources": [s for s in design["sources"] if s not in sources(FILE)] + sources(FILE),
        "parameters": parameters,
        "pins": PINS,
        "bytes_in": design["n_in"] * _bytes(design["in_bits"]),
        "bytes_out": _bytes(design["idx_bits"]) + design["n_classes"] * _bytes(design["logit_bits"]),
        "clks_per_bit": clks_per_bit,
        "baud_at_12mhz": round(BOARD_CLOCK_HZ / clks_per_bit),
    }


def write_serial_top(folder: Path, design: dict) -> dict:
    """Copy the wrapper's library files into `folder` (beside the design); return its entry."""
    for name in sources(FILE):
        shutil.copy(RTL_DIR / name, folder / name)
    return serial_top(design)
