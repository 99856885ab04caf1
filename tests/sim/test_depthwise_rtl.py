"""rtl/conv2d.v in depthwise mode (DEPTHWISE = 1, group == C) against kernels.conv2d run channel by
channel: the cocotb bench sim/test_conv2d.py (values and every handshake edge against
kernels.conv2d.LineGeometry with G = NKS), Verilator lint, yosys (P_CO*P_K multipliers), the
depthwise ROM layout against the dense one, and a planted bug the bench must catch.

Run from the repository root: python -m pytest tests/sim/test_depthwise_rtl.py -q
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kernels.conv2d import conv_accumulator_bits, conv_geometry
from kernels.conv_rom import (
    conv_bias_rom_words,
    conv_weight_rom_words,
    depthwise_conv_rom_words,
    expand_depthwise_word,
    write_mem,
)
from kernels.fixed import bits_for_signed
from kernels.rom_protect import PROTECTIONS
from sim.runner import lint_verilator, run_cocotb
from tests.sim.test_conv_rtl import CONV_SOURCES, edge_frames, random_conv_layer, run_conv
from tests.sim.test_rtl_modules import STALL_ENV, _assert_passed, latch_report

# C channels (C_IN = C_OUT = C, P_CI = P_CO); G = NKS = ceil(KH*KW / P_K) reads per group.
DEPTHWISE_CASES = {
    # 3x3 "same", two groups of 4 channels, one position a read: G = 9 >= P_CO
    "dw_same_s1_pco4": dict(
        C=8, H=6, W=6, KH=3, KW=3, STRIDE=1, PAD_T=1, PAD_L=1, PAD_B=1, PAD_R=1, P_CO=4, P_K=1, RELU=1, REQUANT=1,
        frames=3,
    ),
    # TensorFlow's stride-2 padding [0, 0, 1, 1], one channel a group, 3 positions a read (G = 3)
    "dw_tf_s2_pk3": dict(
        C=5, H=6, W=6, KH=3, KW=3, STRIDE=2, PAD_T=0, PAD_L=0, PAD_B=1, PAD_R=1, P_CO=1, P_K=3, RELU=0, REQUANT=1,
        frames=3,
    ),
    # 6 = 4 + 2 channels (a partial group), 9 = 4*2 + 1 positions (a partial step): G = 5 >= P_CO
    "dw_tf_s2_pco4_pk2_raw": dict(
        C=6, H=6, W=5, KH=3, KW=3, STRIDE=2, PAD_T=0, PAD_L=0, PAD_B=1, PAD_R=1, P_CO=4, P_K=2, RELU=0, REQUANT=0,
        frames=3,
    ),
    # G = 3 < P_CO = 4: the output shift register paces the groups (values only), SECDED per weight
    "dw_pco4_pk3_paced_secded_lanes": dict(
        C=8, H=6, W=6, KH=3, KW=3, STRIDE=1, PAD_T=1, PAD_L=1, PAD_B=1, PAD_R=1, P_CO=4, P_K=3, RELU=1, REQUANT=1,
        PROTECT=2, PROTECT_LANES=1, frames=2,
    ),
}  # fmt: skip


def dut_parameters(spec: dict) -> dict:
    """conv2d's parameters for a depthwise case (without ROM files and widths)."""
    p = {k: v for k, v in spec.items() if k not in ("C", "frames")}
    p.update(C_IN=spec["C"], C_OUT=spec["C"], P_CI=spec["P_CO"], DEPTHWISE=1)
    for key, default in (("IN_BITS", 8), ("W_BITS", 8), ("OUT_BITS", 8), ("P_K", 1)):
        p.setdefault(key, default)
    return p


def depthwise_case(spec: dict, directory: Path, seed: int = 0):
    """DUT parameters (ROM files written to `directory`) and stimulus .npz: w_q [C, 1, KH, KW]."""
    p = dut_parameters(spec)
    rng = np.random.default_rng(seed)
    w_q, b_q = random_conv_layer(rng, spec["C"], 1, p["KH"], p["KW"], p["W_BITS"], p["IN_BITS"])
    b_bits = bits_for_signed(int(np.abs(b_q).max()))
    acc_bits = conv_accumulator_bits(w_q, b_q, p["IN_BITS"])  # per channel: KH*KW weights
    p.setdefault("SHIFT", max(0, acc_bits - p["OUT_BITS"] - 2))
    x_q = edge_frames(rng, (spec["C"], p["H"], p["W"]), p["IN_BITS"], max(1, spec["frames"] - 3))
    x_q = np.concatenate([x_q[3:], x_q[:3]])[: spec["frames"]]  # random frames first
    p_co, p_k, protection = p["P_CO"], p["P_K"], PROTECTIONS[p.get("PROTECT", 0)]
    per_lane = bool(p.get("PROTECT_LANES", 0))
    w_file, b_file = directory / "conv_w.mem", directory / "conv_b.mem"
    stored = p_co * p_k  # weights per ROM word
    words = depthwise_conv_rom_words(w_q, p_co, p["W_BITS"], p_k)
    write_mem(w_file, words, stored * p["W_BITS"], protection, stored if per_lane else 1)
    write_mem(b_file, conv_bias_rom_words(b_q, p_co, b_bits), p_co * b_bits, protection, p_co if per_lane else 1)
    p.update(B_BITS=b_bits, ACC_BITS=acc_bits, W_FILE=str(w_file), B_FILE=str(b_file))
    stimulus = directory / "stimulus.npz"
    np.savez(stimulus, w_q=w_q, b_q=b_q, x_q=x_q)
    return p, stimulus


def synthesize_flat(tmp_path: Path, params: dict) -> str:
    """conv2d through `synth_xilinx -flatten` (compiler/fpga/synth.py's xc7 flow); the log."""
    if shutil.which("yosys") is None:
        pytest.skip("yosys not found: install it (apt-get install yosys) to check synthesis")
    chparams = " ".join(f"-set {k} {json.dumps(v) if isinstance(v, str) else v}" for k, v in params.items())
    sources = " ".join(str(s) for s in CONV_SOURCES)
    script = f"read_verilog -defer {sources}; chparam {chparams} conv2d; synth_xilinx -top conv2d -flatten; stat"
    log = tmp_path / "yosys.log"
    proc = subprocess.run(["yosys", "-q", "-l", str(log), "-p", script], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, f"yosys failed: {proc.stderr.strip()}"
    return log.read_text()


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=list(DEPTHWISE_CASES))
def test_depthwise_conv2d_matches_kernel(case, tmp_path):
    params, stimulus = depthwise_case(DEPTHWISE_CASES[case], tmp_path)
    lint_verilator(CONV_SOURCES, "conv2d", params)
    _assert_passed(run_conv(params, stimulus, tmp_path / "build"))


def test_bench_catches_a_wrong_depthwise_weight(tmp_path):
    """The bench must fail when one weight of the second channel group (word 9: group 1,
    position 0, channel 4) has its sign bit flipped: both of its tests see wrong values."""
    params, stimulus = depthwise_case(dict(DEPTHWISE_CASES["dw_same_s1_pco4"], frames=1), tmp_path)
    rom = Path(params["W_FILE"])
    words = rom.read_text().split()
    width = len(words[0])
    words[9] = f"{int(words[9], 16) ^ (1 << (params['W_BITS'] - 1)):0{width}x}"
    rom.write_text("\n".join(words) + "\n")
    config = {"parameters": params, "stimulus": str(stimulus)}
    result = run_cocotb(
        CONV_SOURCES,
        "conv2d",
        "test_conv2d",
        tmp_path / "build",
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config), **STALL_ENV},
    )
    assert result["failed"] == 2


@pytest.mark.parametrize("p_co, p_k", [(1, 1), (4, 1), (3, 3), (2, 4)])
def test_depthwise_word_expands_to_the_block_diagonal_dense_word(p_co, p_k):
    """expand_depthwise_word (rtl/depthwise_word_expand.v's wiring) of word g*NKS + ks is the
    dense word (g*NKS + ks)*NCW + g of the same layer as a groups = 1 conv with block-diagonal
    weights, P_CI = P_CO: group g's own channel word; every other channel word is all zero."""
    rng = np.random.default_rng(p_co * 10 + p_k)
    c, kh, kw = 7, 3, 3
    w_dw = rng.integers(-128, 128, size=(c, 1, kh, kw))
    w_full = np.zeros((c, c, kh, kw), dtype=np.int64)
    w_full[np.arange(c), np.arange(c)] = w_dw[:, 0]
    dense = conv_weight_rom_words(w_full, p_co, p_co, 8, p_k)
    words = depthwise_conv_rom_words(w_dw, p_co, 8, p_k)
    ncg, nks = -(-c // p_co), -(-(kh * kw) // p_k)
    assert len(words) == ncg * nks and len(dense) == ncg * nks * ncg
    for g in range(ncg):
        for ks in range(nks):
            row = dense[(g * nks + ks) * ncg : (g * nks + ks + 1) * ncg]
            assert expand_depthwise_word(words[g * nks + ks], p_co, p_k, 8) == row[g]
            assert all(w == 0 for cw, w in enumerate(row) if cw != g)


def test_depthwise_geometry_reads_each_group_once_per_step():
    """G = NKS: the 64-channel 3x3 layer on 25x5 reads 9 words per group, not 9*NCW."""
    dw = conv_geometry((64, 25, 5), 64, (3, 3), 1, 1, p_co=8, p_ci=8, depthwise=True)
    full = conv_geometry((64, 25, 5), 64, (3, 3), 1, 1, p_co=8, p_ci=8)
    assert dw.group == 9 and full.group == 9 * 8
    assert dw.compute_cycles == 25 * 5 * 8 * 9 and full.compute_cycles == 8 * dw.compute_cycles
    assert dw.multipliers == 8 * 1 and full.multipliers == 64
    with pytest.raises(ValueError, match="p_ci = p_co"):
        conv_geometry((64, 25, 5), 64, (3, 3), 1, 1, p_co=8, p_ci=4, depthwise=True)


def test_depthwise_conv2d_synthesizes_to_p_co_times_p_k_multipliers(tmp_path):
    """8 channels, P_CO = P_K = 3: the expanded word has 27 lanes, 18 constant zero; flattened
    synthesis (as compiler/fpga/synth.py runs it: the zeros cross into mac_lanes) keeps one DSP
    block per diagonal multiplier (9), no latches."""
    spec = dict(DEPTHWISE_CASES["dw_same_s1_pco4"], P_CO=3, P_K=3, frames=1)
    params, _ = depthwise_case(spec, tmp_path)
    log = synthesize_flat(tmp_path, params)
    assert latch_report(log) == []
    stats = log[log.rfind("Printing statistics") :]
    assert re.search(r"DSP48E1\s+9\n", stats), "expected one DSP block per diagonal multiplier"
