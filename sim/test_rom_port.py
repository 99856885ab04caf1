"""cocotb bench for rtl/rom_port.v: its stored word width against kernels.rom_protect, and its
reads (registered with an enable, or combinational; several ports) against the image written
by kernels.rom.write_mem.

Environment: MPC_TB_CONFIG = JSON {"parameters": the DUT's (DEPTH, DATA_BITS, PROTECT, LANES,
PORTS, REGISTERED, FILE), "words": the data words written, "flipped": {address: data bit
flipped in the file} (SECDED corrects one, parity detects it)}.
"""

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from kernels.rom_protect import PROTECTIONS, codeword_bits


def _port(bus, port: int, bits: int) -> int:
    return (int(bus.value) >> (port * bits)) & ((1 << bits) - 1)


@cocotb.test()
async def reads_match_the_image(dut):
    cfg = json.loads(os.environ["MPC_TB_CONFIG"])
    p = cfg["parameters"]
    depth, d, protect, lanes = p["DEPTH"], p["DATA_BITS"], p["PROTECT"], p.get("LANES", 1)
    ports, registered = p.get("PORTS", 1), p.get("REGISTERED", 1)
    width = codeword_bits(d, PROTECTIONS[protect], lanes)
    assert len(dut.rom[0]) == width, f"stored words are {len(dut.rom[0])} bits, expected {width}"
    words, flipped = cfg["words"], {int(a) for a in cfg.get("flipped", {})}
    addr_bits = max(1, (depth - 1).bit_length())
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.en.value = 0
    for start in range(0, depth, ports):
        addrs = [(start + k) % depth for k in range(ports)]
        dut.addr.value = sum(a << (k * addr_bits) for k, a in enumerate(addrs))
        if registered:
            held = int(dut.data.value) if dut.data.value.is_resolvable else None
            await FallingEdge(dut.clk)
            dut.en.value = 0
            await RisingEdge(dut.clk)  # en low: the register holds
            await Timer(1, unit="ns")
            if held is not None:
                assert int(dut.data.value) == held, "the read changed with en low"
            dut.en.value = 1
            await RisingEdge(dut.clk)
            await Timer(1, unit="ns")
            dut.en.value = 0
        else:
            await Timer(1, unit="ns")
        for k, a in enumerate(addrs):
            data, corrected, detected = _port(dut.data, k, d), _port(dut.corrected, k, 1), _port(dut.detected, k, 1)
            if a in flipped and protect == 1:
                assert detected == 1, f"port {k} address {a}: the flip is not detected"
                continue
            assert data == words[a], f"port {k} address {a}: {data:#x}, expected {words[a]:#x}"
            assert corrected == int(a in flipped and protect == 2) and detected == 0, f"port {k} address {a}"
