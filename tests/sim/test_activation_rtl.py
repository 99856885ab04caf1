"""rtl/activation.v against kernels.activation: cocotb benches (Icarus) on several tables and
widths, Verilator lint, yosys without latches, and one Verilator simulation (slow).

Run from the repository root: python -m pytest tests/sim/test_activation_rtl.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import rtl
from kernels.activation import activation_table, table_codes
from kernels.rom import write_mem
from sim.runner import lint_verilator, run_cocotb
from tests.sim.test_rtl_modules import STALL_ENV, _assert_passed, latch_report, synthesize

SOURCES = rtl.paths("activation.v")

CASES = {
    "sigmoid_8_8": dict(op="sigmoid", attrs={}, IN_BITS=8, IN_FRAC=4, OUT_BITS=8, OUT_FRAC=8),
    "tanh_4_6": dict(op="tanh", attrs={}, IN_BITS=4, IN_FRAC=2, OUT_BITS=6, OUT_FRAC=5),
    "leaky_8_5": dict(op="leaky_relu", attrs={"alpha": 0.1}, IN_BITS=8, IN_FRAC=5, OUT_BITS=5, OUT_FRAC=2),
    "clip_2_3": dict(op="clip", attrs={"min": 0.0, "max": 6.0}, IN_BITS=2, IN_FRAC=-1, OUT_BITS=3, OUT_FRAC=0),
    "hard_swish_6_8": dict(op="hard_swish", attrs={}, IN_BITS=6, IN_FRAC=3, OUT_BITS=8, OUT_FRAC=5),
}


def table_words(table: np.ndarray, out_bits: int) -> list[int]:
    """ROM words: each entry's two's-complement bits."""
    return [int(v) & ((1 << out_bits) - 1) for v in table]


def activation_case(spec: dict, directory: Path, seed: int = 0):
    """DUT parameters (the ROM written to `directory`) and stimulus: every code twice (ascending,
    then shuffled), then random codes."""
    in_bits, out_bits = spec["IN_BITS"], spec["OUT_BITS"]
    table = activation_table(spec["op"], spec["attrs"], in_bits, spec["IN_FRAC"], out_bits, spec["OUT_FRAC"])
    rng = np.random.default_rng(seed)
    codes = table_codes(in_bits)
    x_q = np.concatenate([codes, rng.permutation(codes), rng.choice(codes, 64)])
    rom = directory / "table.mem"
    write_mem(rom, table_words(table, out_bits), out_bits)
    stimulus = directory / "stimulus.npz"
    np.savez(stimulus, table=table, x_q=x_q)
    return {"IN_BITS": in_bits, "OUT_BITS": out_bits, "ROM_FILE": str(rom)}, stimulus


def run_activation(params, stimulus, build_dir, simulator="icarus"):
    config = {"parameters": params, "stimulus": str(stimulus)}
    return run_cocotb(
        SOURCES,
        "activation",
        "test_activation",
        build_dir,
        simulator=simulator,
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config), **STALL_ENV},
    )


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_activation_matches_kernel(case, tmp_path):
    params, stimulus = activation_case(CASES[case], tmp_path)
    lint_verilator(SOURCES, "activation", params)
    _assert_passed(run_activation(params, stimulus, tmp_path / "build"))


@pytest.mark.slow
def test_activation_in_verilator(tmp_path):
    params, stimulus = activation_case(CASES["sigmoid_8_8"], tmp_path)
    _assert_passed(run_activation(params, stimulus, tmp_path / "build_verilator", "verilator"))


def test_activation_synthesizes_without_latches(tmp_path):
    params, _ = activation_case(CASES["sigmoid_8_8"], tmp_path)
    log = synthesize(tmp_path, SOURCES, "activation", params)
    assert "Printing statistics" in log and latch_report(log) == []
