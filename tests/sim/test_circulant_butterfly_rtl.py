"""rtl/circulant_butterfly.v (circulant_mac's FFT butterflies, twiddle ROM and shared complex
multipliers) against kernels.circulant_mac.fft_fixed: cocotb bench, Verilator lint, yosys.

Run from the repository root: python -m pytest tests/sim/test_circulant_butterfly_rtl.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rtl
from kernels.circulant_rom import twiddle_rom_words
from kernels.rom import write_mem
from kernels.rom_protect import PROTECTIONS
from sim.runner import lint_verilator, run_cocotb
from tests.sim.test_rtl_modules import _assert_passed, latch_report, synthesize

SOURCES = rtl.paths("circulant_butterfly.v")
TOP = "circulant_butterfly"

# name -> the DUT's parameters (TW_FILE added): block sizes, butterfly units, multipliers past
# the units (U > BF: the spectral lanes'), protected twiddles.
CASES = {
    "b2": dict(B=2, BF=1, U=1, DATA_BITS=16, TW_FRAC=12, SPEC_BITS=12),
    "b4_u3": dict(B=4, BF=1, U=3, DATA_BITS=20, TW_FRAC=14, SPEC_BITS=18),
    "b8_bf2_secded": dict(B=8, BF=2, U=2, DATA_BITS=24, TW_FRAC=16, SPEC_BITS=16, PROTECT=2),
    "b16_bf4_parity_lanes": dict(B=16, BF=4, U=5, DATA_BITS=22, TW_FRAC=15, SPEC_BITS=14, PROTECT=1, PROTECT_LANES=1),
    "b32_bf16_secded_lanes": dict(
        B=32, BF=16, U=16, DATA_BITS=24, TW_FRAC=16, SPEC_BITS=16, PROTECT=2, PROTECT_LANES=1
    ),
}


def butterfly_case(name: str, directory: Path) -> dict:
    """The case's parameters, its twiddle ROM written (protected as the engine stores it)."""
    params = {"PROTECT": 0, "PROTECT_LANES": 0} | CASES[name]
    tw_file = directory / "twiddles.mem"
    lanes = 2 if params["PROTECT_LANES"] else 1
    words = twiddle_rom_words(params["B"], params["TW_FRAC"])
    write_mem(tw_file, words, 2 * (params["TW_FRAC"] + 2), PROTECTIONS[params["PROTECT"]], lanes)
    return params | {"TW_FILE": str(tw_file)}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_circulant_butterfly_matches_kernel(case, tmp_path):
    params = butterfly_case(case, tmp_path)
    lint_verilator(SOURCES, TOP, params)
    config = {"parameters": params, "vectors": 4, "seed": len(case)}
    result = run_cocotb(
        SOURCES,
        TOP,
        "test_circulant_butterfly",
        tmp_path / "build",
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config)},
    )
    _assert_passed(result)


def test_circulant_butterfly_is_in_the_engine_sources():
    """rtl.sources() finds the butterflies, their twiddle ROM and its decoder through circulant_mac."""
    for part in ("circulant_butterfly.v", "rom_port.v", "rom_check.v", "circulant_round.v"):
        assert part in rtl.DEPENDENCIES["circulant_mac.v"], part


@pytest.mark.parametrize("case", ["b8_bf2_secded"])
def test_circulant_butterfly_synthesizes_without_latches(case, tmp_path):
    params = butterfly_case(case, tmp_path)
    log = synthesize(tmp_path, SOURCES, TOP, params)
    assert latch_report(log) == []
