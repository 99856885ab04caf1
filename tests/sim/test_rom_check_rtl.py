"""rtl/rom_check.v against kernels.rom_protect.decode (cocotb, Icarus), Verilator lint and
yosys at several data widths and every PROTECT; and a ROM fault seen on the board top's
`error` pin (rtl/serial_top.v around tests/sim/mpc_top.v, sim/test_serial_fault.py).

Run from the repository root: python -m pytest tests/sim/test_rom_check_rtl.py -q
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import rtl
from compiler.backends import serial
from kernels.rom import write_mem
from kernels.rom_protect import PROTECTIONS, check_bits
from sim.runner import lint_verilator, run_cocotb
from tests.sim.test_rtl_modules import (
    STALL_ENV,
    TOP_FIXTURE,
    _assert_passed,
    flip_mem_bits,
    latch_report,
    synthesize,
    two_layer_design,
)

SOURCES = rtl.paths("rom_check.v")
TOP = "rom_check"
WIDTHS = (1, 8, 13, 64, 130)


def decoder_parameters(data_bits: int, protect: int, lanes: int) -> dict:
    """rom_check's parameters: its lanes' check bits come from its instantiator (rtl/rom_port.v
    computes them; here the kernel does)."""
    check = check_bits(data_bits // lanes, PROTECTIONS[protect])
    return {"DATA_BITS": data_bits, "PROTECT": protect, "CHECK_BITS": check} | ({"LANES": lanes} if lanes > 1 else {})


# (DATA_BITS, LANES): one code per word at several widths; LANES > 1, one code per lane.
SPLITS = tuple((d, 1) for d in WIDTHS) + ((16, 2), (32, 4), (72, 9), (24, 2))


@pytest.mark.parametrize("protect", [0, 1, 2], ids=["none", "parity", "secded"])
@pytest.mark.parametrize(("data_bits", "lanes"), SPLITS, ids=[f"{d}x{n}" for d, n in SPLITS])
def test_rom_check_matches_kernel(data_bits, lanes, protect, tmp_path):
    params = decoder_parameters(data_bits, protect, lanes)
    lint_verilator(SOURCES, TOP, params)
    config = {"parameters": params, "samples": 150, "seed": data_bits * 7 + lanes * 3 + protect}
    result = run_cocotb(
        SOURCES,
        TOP,
        "test_rom_check",
        tmp_path / "build",
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config)},
    )
    _assert_passed(result)


def test_rom_check_is_in_the_engines_sources():
    """rtl.sources() finds the decoder through the engines' instances (no include files)."""
    for engine in ("dense_mac.v", "sparse_mac.v", "circulant_mac.v", "conv2d.v"):
        assert "rom_check.v" in rtl.DEPENDENCIES[engine], engine
    assert "rom_check.v" not in rtl.DEPENDENCIES["activation.v"]


@pytest.mark.parametrize("lanes", [1, 8])
@pytest.mark.parametrize("protect", [1, 2], ids=["parity", "secded"])
def test_rom_check_synthesizes_without_latches(protect, lanes, tmp_path: Path):
    log = synthesize(tmp_path, SOURCES, TOP, decoder_parameters(64, protect, lanes) | {"LANES": lanes})
    assert "Printing statistics" in log and latch_report(log) == []


# ------------------------------------------------------------------------ the board top
def _fixture_top(path: Path, params: dict) -> Path:
    """tests/sim/mpc_top.v with `params` as its defaults: mpc_serial_top instantiates mpc_top
    without parameters, as it does a generated one."""
    text = TOP_FIXTURE.read_text()
    for key, value in params.items():
        literal = f'"{value}"' if isinstance(value, str) else str(value)
        text, count = re.subn(rf"(parameter\s+{key}\s*=\s*)[^,\n]+", lambda m, lit=literal: m.group(1) + lit, text)
        assert count == 1, key
    path.write_text(text)
    return path


@pytest.mark.parametrize("flips", [[], [17], [3, 30]], ids=["clean", "one_flip_corrected", "two_flips_detected"])
def test_serial_top_error_pin_shows_a_rom_fault(flips, tmp_path):
    """The whole chain: a SECDED weight ROM word with two flipped bits -> dense_mac's fault ->
    mpc_top's fault -> mpc_serial_top's error pin; one flip is corrected and lights nothing."""
    params, stimulus = two_layer_design(tmp_path, n_samples=1, protect=2)
    if flips:
        flip_mem_bits(tmp_path / "l1_w.mem", 0, flips)
    top = _fixture_top(tmp_path / "mpc_top.v", params)
    serial_params = dict(N_IN=6, IN_BITS=8, N_CLASSES=3, LOGIT_BITS=params["LOGIT_BITS"], CLASS_BITS=2, CLKS_PER_BIT=8)
    sources = [*rtl.paths("dense_mac.v", "argmax.v"), top, *rtl.paths("serial_top.v")]
    lint_verilator(sources, serial.MODULE, serial_params)
    env = {
        "MPC_STIMULUS": str(stimulus),
        "MPC_SERIAL_PARAMETERS": json.dumps(serial_params),
        "MPC_EXPECT_FAULT": "1" if len(flips) == 2 else "0",
        **STALL_ENV,
    }
    result = run_cocotb(
        sources,
        serial.MODULE,
        "test_serial_fault",
        tmp_path / "build",
        parameters=serial_params,
        work_dir=tmp_path,
        extra_env=env,
    )
    _assert_passed(result)


# ------------------------------------------------------------------------ rtl/rom_port.v
# (DEPTH, DATA_BITS, PROTECT, LANES, PORTS, REGISTERED)
PORT_CASES = {
    "plain_registered": (5, 12, 0, 1, 1, 1),
    "parity_two_ports": (7, 16, 1, 1, 2, 0),
    "secded_registered": (9, 24, 2, 1, 1, 1),
    "secded_lanes_three_ports": (6, 32, 2, 4, 3, 0),
    "parity_lanes_registered": (4, 18, 1, 2, 1, 1),
}


@pytest.mark.parametrize("case", PORT_CASES, ids=list(PORT_CASES))
def test_rom_port_stores_the_kernels_codewords(case, tmp_path):
    """rtl/rom_port.v, the one definition of the stored width: its array is as wide as
    kernels.rom_protect's codewords, and every port reads back the image written by
    kernels.rom.write_mem (a flipped bit corrected by SECDED, detected by parity)."""
    depth, data_bits, protect, lanes, ports, registered = PORT_CASES[case]
    rng = np.random.default_rng(depth * 31 + data_bits)
    words = [int(w) for w in rng.integers(0, 1 << data_bits, size=depth, dtype=np.uint64)]
    rom_file = tmp_path / "rom.mem"
    write_mem(rom_file, words, data_bits, PROTECTIONS[protect], lanes)
    flipped = {}
    if protect:
        flip_mem_bits(rom_file, 1, [3])
        flipped = {1: 3}
    params = {
        "DEPTH": depth,
        "DATA_BITS": data_bits,
        "PROTECT": protect,
        "LANES": lanes,
        "PORTS": ports,
        "REGISTERED": registered,
        "FILE": str(rom_file),
    }
    lint_verilator(rtl.paths("rom_port.v"), "rom_port", params)
    config = {"parameters": params, "words": words, "flipped": flipped}
    result = run_cocotb(
        rtl.paths("rom_port.v"),
        "rom_port",
        "test_rom_port",
        tmp_path / "build",
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config)},
    )
    _assert_passed(result)
