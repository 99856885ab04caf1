"""rtl/conv2d.v and rtl/pool2d.v against the numpy kernels: cocotb benches (Icarus),
Verilator lint, yosys, and one Verilator simulation (slow).

Run from the repository root: python -m pytest tests/sim/test_conv_rtl.py -q
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import rtl
from kernels.circulant_conv import conv_circulant_expand
from kernels.conv2d import conv_accumulator_bits
from kernels.conv_rom import circulant_conv_rom_words, conv_bias_rom_words, conv_weight_rom_words, write_mem
from kernels.fixed import bits_for_signed, int_range
from kernels.rom_protect import PROTECTIONS
from sim.runner import lint_verilator, run_cocotb
from tests.sim.test_rtl_modules import CHECK, DATA, STALL_ENV, _assert_passed, latch_report, rom_flips, synthesize

REPO = Path(__file__).resolve().parents[2]
RTL = REPO / "rtl"
CONV_SOURCES = rtl.paths("conv2d.v")
POOL_SOURCES = rtl.paths("pool2d.v")

NO_PAD = dict(PAD_T=0, PAD_L=0, PAD_B=0, PAD_R=0)


# ------------------------------------------------------------------------ stimulus
def edge_frames(rng, shape, in_bits: int, n_random: int) -> np.ndarray:
    """All-min, all-max, a +-extreme checkerboard and random frames [n, C, H, W]."""
    lo, hi = int_range(in_bits)
    c, h, w = shape
    checker = np.where((np.add.outer(np.arange(h), np.arange(w)) % 2) == 0, lo, hi)
    frames = [np.full(shape, lo), np.full(shape, hi), np.broadcast_to(checker, shape)]
    frames += list(rng.integers(lo, hi + 1, size=(n_random, c, h, w)))
    return np.array(frames, dtype=np.int64)


def random_conv_layer(rng, c_out, c_in, kh, kw, w_bits, in_bits):
    lo, hi = int_range(w_bits)
    w_q = rng.integers(lo, hi + 1, size=(c_out, c_in, kh, kw))
    w_q[0, 0, 0, 0], w_q[-1, -1, -1, -1] = lo, hi
    # channel 0 all-min weights: the all-min frame hits its worst-case accumulator
    w_q[0] = lo
    bias_bound = 1 << (w_bits + in_bits - 2)
    b_q = rng.integers(-bias_bound, bias_bound, size=c_out)
    b_q[0] = -bias_bound
    if c_out > 1:
        b_q[-1] = bias_bound - 1
    return w_q, b_q


CONV_CASES = {
    # LeNet-5's first layer: 1x28x28 -> 6 channels 5x5, all six channels in parallel
    "lenet_c1": dict(
        C_IN=1, H=28, W=28, C_OUT=6, KH=5, KW=5, STRIDE=1, **NO_PAD, P_CO=6, P_CI=1, RELU=1, REQUANT=1, frames=2
    ),
    # LeNet-5's second layer: 6x12x12 -> 16 channels 5x5, 8 x 3 multipliers
    "lenet_c2": dict(
        C_IN=6, H=12, W=12, C_OUT=16, KH=5, KW=5, STRIDE=1, **NO_PAD, P_CO=8, P_CI=3, RELU=1, REQUANT=1, frames=2
    ),
    # 3x3 stride 2, asymmetric padding, odd sizes, partial channel groups and words
    "pad_3x3_s2": dict(
        C_IN=3,
        H=9,
        W=8,
        C_OUT=5,
        KH=3,
        KW=3,
        STRIDE=2,
        PAD_T=1,
        PAD_L=0,
        PAD_B=2,
        PAD_R=1,
        P_CO=2,
        P_CI=2,
        RELU=0,
        REQUANT=1,
        frames=4,
    ),
    # 5x5 "same" padding, one multiplier
    "pad_5x5_same": dict(
        C_IN=2,
        H=7,
        W=6,
        C_OUT=3,
        KH=5,
        KW=5,
        STRIDE=1,
        PAD_T=2,
        PAD_L=2,
        PAD_B=2,
        PAD_R=2,
        P_CO=1,
        P_CI=1,
        RELU=1,
        REQUANT=1,
        frames=3,
    ),
    # 1x1 stride 2 raw accumulators: groups shorter than P_CO (output-paced), rows skipped
    "k1_s2_raw": dict(
        C_IN=2, H=5, W=6, C_OUT=4, KH=1, KW=1, STRIDE=2, **NO_PAD, P_CO=3, P_CI=1, RELU=0, REQUANT=0, frames=4
    ),
    # 3x3 stride 3 (stride = kernel), narrow weights and activations, shift 0
    "k3_s3_narrow": dict(
        C_IN=2,
        H=6,
        W=9,
        C_OUT=2,
        KH=3,
        KW=3,
        STRIDE=3,
        **NO_PAD,
        P_CO=2,
        P_CI=2,
        RELU=1,
        REQUANT=1,
        frames=4,
        IN_BITS=4,
        W_BITS=3,
        OUT_BITS=5,
        SHIFT=0,
    ),
    # P_K kernel positions per cycle. LeNet's first layer, 25 = 6*4 + 1: a partial last step
    "lenet_c1_pk4": dict(
        C_IN=1, H=28, W=28, C_OUT=6, KH=5, KW=5, STRIDE=1, **NO_PAD, P_CO=3, P_CI=1, P_K=4, RELU=1, REQUANT=1, frames=2
    ),
    # all 9 positions in one read, stride 2, asymmetric padding, partial words (G = P_CO = 2)
    "pk9_pad_3x3_s2": dict(
        C_IN=3,
        H=9,
        W=8,
        C_OUT=5,
        KH=3,
        KW=3,
        STRIDE=2,
        PAD_T=1,
        PAD_L=0,
        PAD_B=2,
        PAD_R=1,
        P_CO=2,
        P_CI=2,
        P_K=9,
        RELU=0,
        REQUANT=1,
        frames=4,
    ),
    # 5x5 "same" padding, steps of 7 > KW positions (25 = 3*7 + 4), 2 of 3 channels a word
    "pk7_5x5_same": dict(
        C_IN=3,
        H=7,
        W=6,
        C_OUT=3,
        KH=5,
        KW=5,
        STRIDE=1,
        PAD_T=2,
        PAD_L=2,
        PAD_B=2,
        PAD_R=2,
        P_CO=2,
        P_CI=2,
        P_K=7,
        RELU=1,
        REQUANT=1,
        frames=3,
    ),
    # 2x3 kernel in steps of 4 (6 = 4 + 2), G = 2 < P_CO = 3 (output-paced), raw accumulators
    "pk4_2x3_narrow_groups": dict(
        C_IN=2,
        H=6,
        W=5,
        C_OUT=5,
        KH=2,
        KW=3,
        STRIDE=1,
        PAD_T=1,
        PAD_L=1,
        PAD_B=0,
        PAD_R=1,
        P_CO=3,
        P_CI=2,
        P_K=4,
        RELU=0,
        REQUANT=0,
        frames=4,
    ),
    # 3x1 kernel (KW = 1: a step moves down rows only), stride 3, narrow widths
    "pk2_3x1_s3_narrow": dict(
        C_IN=2,
        H=7,
        W=5,
        C_OUT=2,
        KH=3,
        KW=1,
        STRIDE=3,
        **NO_PAD,
        P_CO=2,
        P_CI=1,
        P_K=2,
        RELU=1,
        REQUANT=1,
        frames=4,
        IN_BITS=4,
        W_BITS=3,
        OUT_BITS=5,
        SHIFT=0,
    ),
}
# protected ROMs (PROTECT 1 parity, 2 SECDED; weight and bias ROMs): same values, same timing
CONV_CASES["k3_s3_narrow_parity"] = CONV_CASES["k3_s3_narrow"] | dict(frames=2, PROTECT=1)
CONV_CASES["pk4_2x3_secded"] = CONV_CASES["pk4_2x3_narrow_groups"] | dict(frames=2, PROTECT=2)
# one code per weight and per bias (PROTECT_LANES 1: P_CO*P_K*P_CI weight lanes, P_CO bias lanes)
CONV_CASES["k3_s3_narrow_secded_lanes"] = CONV_CASES["k3_s3_narrow"] | dict(frames=2, PROTECT=2, PROTECT_LANES=1)
CONV_CASES["pk4_2x3_parity_lanes"] = CONV_CASES["pk4_2x3_narrow_groups"] | dict(frames=2, PROTECT=1, PROTECT_LANES=1)

# Block-circulant weights (CIRC_B = b): the ROM holds one vector per b x b block, expanded by
# wiring; same values and the same cycles as the dense engine (check_timing's formula).
CIRC_CASES = {
    # LeNet-5's second layer at b = 4: 6 input channels padded to 8, two channel words of 4
    "circ_lenet_c2_b4": dict(
        C_IN=6, H=12, W=12, C_OUT=16, KH=5, KW=5, STRIDE=1, **NO_PAD, P_CO=8, P_CI=4, CIRC_B=4, RELU=1, REQUANT=1,
        frames=2,
    ),
    # b = 8 covering padded outputs (5 -> 8) and inputs (6 -> 8), 3x3 "same", raw accumulators
    "circ_b8_padded_same": dict(
        C_IN=6, H=6, W=5, C_OUT=5, KH=3, KW=3, STRIDE=1, PAD_T=1, PAD_L=1, PAD_B=1, PAD_R=1, P_CO=8, P_CI=8,
        CIRC_B=8, RELU=0, REQUANT=0, frames=3,
    ),
    # b = 2, P_K = 3 kernel positions, stride 2 with asymmetric padding, two output groups
    "circ_b2_pk3_s2": dict(
        C_IN=3, H=7, W=8, C_OUT=5, KH=3, KW=3, STRIDE=2, PAD_T=1, PAD_L=0, PAD_B=2, PAD_R=1, P_CO=2, P_CI=4, P_K=3,
        CIRC_B=2, RELU=1, REQUANT=1, frames=3,
    ),
}  # fmt: skip
CIRC_CASES["circ_b2_pk3_s2_secded_lanes"] = CIRC_CASES["circ_b2_pk3_s2"] | dict(frames=2, PROTECT=2, PROTECT_LANES=1)
CIRC_CASES["circ_b8_padded_same_parity"] = CIRC_CASES["circ_b8_padded_same"] | dict(frames=2, PROTECT=1)
CONV_CASES.update(CIRC_CASES)


def random_circulant_conv_layer(rng, c_out, c_in, kh, kw, b, w_bits, in_bits):
    """Random defining vectors [p, q, b, kH, kW] (one all-min vector, the extremes present) and
    the expanded weights, a bias as random_conv_layer's."""
    lo, hi = int_range(w_bits)
    p, q = -(-c_out // b), -(-c_in // b)
    v = rng.integers(lo, hi + 1, size=(p, q, b, kh, kw))
    v[0, 0] = lo
    v[-1, -1, -1, -1, -1] = hi
    w_q = conv_circulant_expand(v, c_out, c_in)
    _, b_q = random_conv_layer(rng, c_out, c_in, kh, kw, w_bits, in_bits)
    return v, w_q, b_q


def conv_case(spec: dict, directory: Path, seed: int = 0):
    """DUT parameters (ROM files written to `directory`) and stimulus .npz for a conv case."""
    spec = dict(spec)
    frames = spec.pop("frames")
    spec.setdefault("IN_BITS", 8)
    spec.setdefault("W_BITS", 8)
    spec.setdefault("OUT_BITS", 8)
    spec.setdefault("P_K", 1)
    rng = np.random.default_rng(seed)
    circ = spec.get("CIRC_B", 0)
    shape = (spec["C_OUT"], spec["C_IN"], spec["KH"], spec["KW"])
    if circ:
        v, w_q, b_q = random_circulant_conv_layer(rng, *shape, circ, spec["W_BITS"], spec["IN_BITS"])
    else:
        w_q, b_q = random_conv_layer(rng, *shape, spec["W_BITS"], spec["IN_BITS"])
    b_bits = bits_for_signed(int(np.abs(b_q).max()))
    acc_bits = conv_accumulator_bits(w_q, b_q, spec["IN_BITS"])
    spec.setdefault("SHIFT", max(0, acc_bits - spec["OUT_BITS"] - 2))
    x_q = edge_frames(rng, (spec["C_IN"], spec["H"], spec["W"]), spec["IN_BITS"], max(1, frames - 3))
    x_q = np.concatenate([x_q[3:], x_q[:3]])[:frames]  # random frames first
    w_file, b_file = directory / "conv_w.mem", directory / "conv_b.mem"
    p_co, p_ci, p_k = spec["P_CO"], spec["P_CI"], spec["P_K"]
    protection = PROTECTIONS[spec.get("PROTECT", 0)]
    per_lane = bool(spec.get("PROTECT_LANES", 0))  # one code per weight / per bias
    stored = p_co * p_k * p_ci // (circ or 1)  # weights per ROM word (CIRC_B: vector elements)
    if circ:
        w_words = circulant_conv_rom_words(v, p_co, p_ci, spec["W_BITS"], p_k)
    else:
        w_words = conv_weight_rom_words(w_q, p_co, p_ci, spec["W_BITS"], p_k)
    write_mem(w_file, w_words, stored * spec["W_BITS"], protection, stored if per_lane else 1)
    write_mem(b_file, conv_bias_rom_words(b_q, p_co, b_bits), p_co * b_bits, protection, p_co if per_lane else 1)
    params = dict(spec, B_BITS=b_bits, ACC_BITS=acc_bits, W_FILE=str(w_file), B_FILE=str(b_file))
    stimulus = directory / "stimulus.npz"
    np.savez(stimulus, w_q=w_q, b_q=b_q, x_q=x_q)
    return params, stimulus


def run_conv(params, stimulus, build_dir, simulator="icarus"):
    config = {"parameters": params, "stimulus": str(stimulus)}
    return run_cocotb(
        CONV_SOURCES,
        "conv2d",
        "test_conv2d",
        build_dir,
        simulator=simulator,
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config), **STALL_ENV},
    )


@pytest.mark.parametrize("case", CONV_CASES, ids=list(CONV_CASES))
def test_conv2d_matches_kernel(case, tmp_path):
    params, stimulus = conv_case(CONV_CASES[case], tmp_path)
    lint_verilator(CONV_SOURCES, "conv2d", params)
    _assert_passed(run_conv(params, stimulus, tmp_path / "build"))


# ROM upsets applied by the bench before the first input: name -> (PROTECT, flips, expect_fault)
# on k3_s3_narrow (P_CO = P_CI = 2, W_BITS = 3: 12-bit weight words, NCG = 1, G = 9 words, all
# read for every output pixel; one bias word of 2*B_BITS bits).
CONV_FLIP_CASES = {
    "secded_one_weight_flip_corrected": (2, [("w_rom", 4, [(DATA, 7)])], False),
    "secded_one_bias_flip_corrected": (2, [("b_rom", 0, [(DATA, 2)])], False),
    "secded_one_check_flip_corrected": (2, [("w_rom", 8, [(CHECK, 5)])], False),
    "secded_two_weight_flips_detected": (2, [("w_rom", 0, [(DATA, 1), (DATA, 11)])], True),
    "parity_one_weight_flip_detected": (1, [("w_rom", 6, [(DATA, 0)])], True),
    "parity_one_bias_flip_detected": (1, [("b_rom", 0, [(CHECK, 0)])], True),
}


@pytest.mark.parametrize("case", CONV_FLIP_CASES, ids=list(CONV_FLIP_CASES))
def test_conv2d_rom_flips(case, tmp_path):
    """(a) SECDED corrects one flip (exact outputs, fault low); (b) two flips in a read weight
    word raise fault; (c) parity detects one flip."""
    protect, flips, expect_fault = CONV_FLIP_CASES[case]
    spec = dict(CONV_CASES["k3_s3_narrow"], PROTECT=protect, frames=2)
    params, stimulus = conv_case(spec, tmp_path)
    widths = {"w_rom": spec["P_CO"] * spec["P_CI"] * spec["W_BITS"], "b_rom": spec["P_CO"] * params["B_BITS"]}
    _run_with_flips(params, stimulus, rom_flips(flips, widths), expect_fault, tmp_path)


def _run_with_flips(params: dict, stimulus, flips: list, expect_fault: bool, tmp_path) -> None:
    """The conv bench with `flips` applied to its ROMs; fault must end as `expect_fault`."""
    config = {"parameters": params, "stimulus": str(stimulus), "flips": flips, "expect_fault": expect_fault}
    result = run_cocotb(
        CONV_SOURCES,
        "conv2d",
        "test_conv2d",
        tmp_path / "build",
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config), **STALL_ENV},
    )
    _assert_passed(result)


# One code per weight (PROTECT_LANES 1, SECDED) on k3_s3_narrow: a weight word is 4 lanes of 3
# bits, the bias word 2 lanes. The bit-flip attack's pattern, the sign bits of three weights of
# one word, is corrected lane by lane (and a flip in each bias lane); two flips in one weight are
# detected.
CONV_LANE_FLIP_CASES = {
    "three_sign_flips_corrected": ([("w_rom", 4, [(DATA, 2, 0), (DATA, 2, 1), (DATA, 2, 3)])], False),
    "three_lanes_and_both_bias_lanes_corrected": (
        [("w_rom", 0, [(DATA, 0, 1), (CHECK, 3, 2), (DATA, 1, 3)]), ("b_rom", 0, [(DATA, 0, 0), (DATA, 1, 1)])],
        False,
    ),
    "two_flips_in_one_lane_detected": ([("w_rom", 4, [(DATA, 0, 2), (DATA, 2, 2)])], True),
}


@pytest.mark.parametrize("case", CONV_LANE_FLIP_CASES, ids=list(CONV_LANE_FLIP_CASES))
def test_conv2d_lane_rom_flips(case, tmp_path):
    flips, expect_fault = CONV_LANE_FLIP_CASES[case]
    spec = CONV_CASES["k3_s3_narrow_secded_lanes"]
    params, stimulus = conv_case(spec, tmp_path)
    p_co, lanes = spec["P_CO"], spec["P_CO"] * spec["P_CI"]
    widths = {"w_rom": lanes * spec["W_BITS"], "b_rom": p_co * params["B_BITS"]}
    coded = rom_flips(flips, widths, "secded", {"w_rom": lanes, "b_rom": p_co})
    _run_with_flips(params, stimulus, coded, expect_fault, tmp_path)


def test_circulant_rom_is_b_times_narrower(tmp_path):
    """The same layer with a dense and with a vector ROM: as many words, b times fewer bits each."""
    spec = CIRC_CASES["circ_lenet_c2_b4"]
    words = {}
    for circ in (0, 4):
        (tmp_path / str(circ)).mkdir()
        conv_case(dict(spec, CIRC_B=circ), tmp_path / str(circ))
        words[circ] = (tmp_path / str(circ) / "conv_w.mem").read_text().split()
    assert len(words[0]) == len(words[4]) == 2 * 25 * 2  # NCG*NKS*NCW
    assert {len(w) for w in words[0]} == {8 * 4 * 8 // 4} and {len(w) for w in words[4]} == {8 * 4 * 8 // 4 // 4}


# A flip in one stored vector element reaches every lane wired to it: with SECDED per word it is
# corrected (exact outputs), two flips are detected.
CIRC_FLIP_CASES = {
    "secded_one_vector_flip_corrected": (2, [("w_rom", 3, [(DATA, 5)])], False),
    "secded_two_vector_flips_detected": (2, [("w_rom", 1, [(DATA, 0), (DATA, 9)])], True),
}


@pytest.mark.parametrize("case", CIRC_FLIP_CASES, ids=list(CIRC_FLIP_CASES))
def test_circulant_conv2d_rom_flips(case, tmp_path):
    protect, flips, expect_fault = CIRC_FLIP_CASES[case]
    spec = dict(CIRC_CASES["circ_b2_pk3_s2"], PROTECT=protect, frames=2)
    params, stimulus = conv_case(spec, tmp_path)
    stored = spec["P_CO"] * spec["P_CI"] * spec["P_K"] // spec["CIRC_B"]
    widths = {"w_rom": stored * params["W_BITS"], "b_rom": spec["P_CO"] * params["B_BITS"]}
    _run_with_flips(params, stimulus, rom_flips(flips, widths), expect_fault, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["pad_3x3_s2", "pk7_5x5_same"])
def test_conv2d_in_verilator(case, tmp_path):
    params, stimulus = conv_case(CONV_CASES[case], tmp_path)
    _assert_passed(run_conv(params, stimulus, tmp_path / "build_verilator", "verilator"))


@pytest.mark.parametrize("protect", [0, 2], ids=["plain", "secded"])
def test_conv2d_synthesizes_without_latches(protect, tmp_path):
    """LeNet's second layer: line buffer and weights in block RAM, multipliers on DSPs."""
    params, _ = conv_case(dict(CONV_CASES["lenet_c2"], P_CO=4, P_CI=2, PROTECT=protect), tmp_path)
    log = synthesize(tmp_path, CONV_SOURCES, "conv2d", params)
    assert latch_report(log) == []
    stats = log[log.rfind("Printing statistics") :]
    assert re.search(r"RAMB(18|36)E1\s+\d+", stats), "line buffer / ROM not in block RAM"
    assert re.search(r"DSP48E1\s+\d+", stats), "expected the multipliers on DSP blocks"


def test_circulant_conv2d_synthesizes_without_latches(tmp_path):
    """LeNet's second layer at b = 4, 4 x 4 multipliers on a vector ROM (4 of the 16 weights
    stored per word, expanded by wiring): one DSP block per multiplier, no latches."""
    params, _ = conv_case(dict(CIRC_CASES["circ_lenet_c2_b4"], P_CO=4, P_CI=4, PROTECT=2), tmp_path)
    log = synthesize(tmp_path, CONV_SOURCES, "conv2d", params)
    assert latch_report(log) == []
    stats = log[log.rfind("Printing statistics") :]
    assert re.search(r"DSP48E1\s+16\n", stats), "expected one DSP block per multiplier"


def test_conv2d_with_kernel_positions_synthesizes(tmp_path):
    """LeNet's first layer as lower plans it, 2 channels x 5 kernel positions: the five ring
    copies (one read port each) map to RAM, the 10 multipliers to DSP blocks, no latches."""
    params, _ = conv_case(dict(CONV_CASES["lenet_c1"], P_CO=2, P_K=5), tmp_path)
    log = synthesize(tmp_path, CONV_SOURCES, "conv2d", params)
    assert latch_report(log) == []
    stats = log[log.rfind("Printing statistics") :]
    assert re.search(r"DSP48E1\s+10\n", stats), "expected one DSP block per multiplier"
    rams = re.findall(r"^\s+(RAMB\w+|RAM\d+\w*)\s+(\d+)", stats, flags=re.MULTILINE)
    assert rams, "line-buffer copies / ROM not in block or LUT RAM"


# ------------------------------------------------------------------------ pool2d
POOL_CASES = {
    # LeNet's pools: 2x2 stride 2 over 6x24x24 (max) and 16x8x8 (average)
    "max_2x2_lenet": dict(C=6, H=24, W=24, KH=2, KW=2, STRIDE=2, **NO_PAD, MODE=0, frames=2),
    "avg_2x2": dict(C=4, H=8, W=8, KH=2, KW=2, STRIDE=2, **NO_PAD, MODE=1, frames=3),
    # odd size (last row/column dropped), 3x3 stride 2 with padding; average by reciprocal
    "max_3x3_s2_pad": dict(C=2, H=7, W=6, KH=3, KW=3, STRIDE=2, PAD_T=1, PAD_L=1, PAD_B=1, PAD_R=0, MODE=0, frames=4),
    "avg_3x3_s1_pad": dict(C=2, H=5, W=6, KH=3, KW=3, STRIDE=1, PAD_T=1, PAD_L=1, PAD_B=1, PAD_R=1, MODE=1, frames=4),
    # global average pool over a 5x5 plane (N = 25), narrow activations
    "global_avg_5x5": dict(C=3, H=5, W=5, KH=5, KW=5, STRIDE=1, **NO_PAD, MODE=1, frames=5, IN_BITS=4),
}


def pool_case(spec: dict, directory: Path, seed: int = 0):
    spec = dict(spec)
    frames = spec.pop("frames")
    spec.setdefault("IN_BITS", 8)
    rng = np.random.default_rng(seed)
    x_q = edge_frames(rng, (spec["C"], spec["H"], spec["W"]), spec["IN_BITS"], max(0, frames - 3))
    x_q = np.concatenate([x_q[3:], x_q[:3]])[:frames]  # random frames first
    stimulus = directory / "stimulus.npz"
    np.savez(stimulus, x_q=x_q)
    return spec, stimulus


def run_pool(params, stimulus, build_dir, simulator="icarus"):
    config = {"parameters": params, "stimulus": str(stimulus)}
    return run_cocotb(
        POOL_SOURCES,
        "pool2d",
        "test_pool2d",
        build_dir,
        simulator=simulator,
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config), **STALL_ENV},
    )


@pytest.mark.parametrize("case", POOL_CASES, ids=list(POOL_CASES))
def test_pool2d_matches_kernel(case, tmp_path):
    params, stimulus = pool_case(POOL_CASES[case], tmp_path)
    lint_verilator(POOL_SOURCES, "pool2d", params)
    _assert_passed(run_pool(params, stimulus, tmp_path / "build"))


@pytest.mark.slow
def test_pool2d_in_verilator(tmp_path):
    params, stimulus = pool_case(POOL_CASES["avg_3x3_s1_pad"], tmp_path)
    _assert_passed(run_pool(params, stimulus, tmp_path / "build_verilator", "verilator"))


@pytest.mark.parametrize("mode", [pytest.param(0, marks=pytest.mark.slow), 1], ids=["max", "avg_reciprocal"])
def test_pool2d_synthesizes_without_latches(mode, tmp_path):
    """No latches in either mode (the quick run synthesizes the larger, average datapath)."""
    kernel = 2 if mode == 0 else 3
    params = dict(C=2, H=6, W=6, KH=kernel, KW=kernel, STRIDE=kernel, **NO_PAD, MODE=mode, IN_BITS=8)
    log = synthesize(tmp_path, POOL_SOURCES, "pool2d", params)
    assert "Printing statistics" in log and latch_report(log) == []
