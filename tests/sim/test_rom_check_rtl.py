"""rtl/rom_check.v against kernels.rom_protect.decode (cocotb, Icarus), Verilator lint and
yosys at several data widths and every PROTECT; and a ROM fault seen on the board top's
`error` pin (rtl/serial_top.v around tests/sim/mpc_top.v, sim/test_serial_fault.py).

Run from the repository root: python -m pytest tests/sim/test_rom_check_rtl.py -q
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import rtl
from compiler.backends import serial
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


# (DATA_BITS, LANES): one code per word at several widths; LANES > 1, one code per lane.
SPLITS = tuple((d, 1) for d in WIDTHS) + ((16, 2), (32, 4), (72, 9), (24, 2))


@pytest.mark.parametrize("protect", [0, 1, 2], ids=["none", "parity", "secded"])
@pytest.mark.parametrize(("data_bits", "lanes"), SPLITS, ids=[f"{d}x{n}" for d, n in SPLITS])
def test_rom_check_matches_kernel(data_bits, lanes, protect, tmp_path):
    params = {"DATA_BITS": data_bits, "PROTECT": protect} | ({"LANES": lanes} if lanes > 1 else {})
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
    log = synthesize(tmp_path, SOURCES, TOP, {"DATA_BITS": 64, "PROTECT": protect, "LANES": lanes})
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
