"""RTL engines against the numpy kernels: cocotb benches (Icarus), Verilator lint, yosys.

Run from the repository root: python -m pytest tests/sim -q   (-m "not slow" skips the
Verilator simulation, whose C++ build takes ~20 s).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import rtl
from kernels import argmax, dense_accumulator_bits, dense_mac, requantize
from kernels.fixed import bits_for_signed, int_range
from kernels.rom import dense_rom_words, vector_rom_words, write_mem
from kernels.rom_protect import PROTECTIONS, check_bits, codeword_bits
from sim.runner import SimulationError, lint_verilator, run_cocotb

REPO = Path(__file__).resolve().parents[2]
RTL = REPO / "rtl"
REQUANTIZE_V = RTL / "requantize.v"
DENSE_SOURCES = rtl.paths("dense_mac.v")
ARGMAX_SOURCES = rtl.paths("argmax.v")
TOP_FIXTURE = Path(__file__).resolve().parent / "mpc_top.v"
DESIGN_SOURCES = DENSE_SOURCES + ARGMAX_SOURCES + [TOP_FIXTURE]


# A broken handshake should fail in seconds, not after the benches' default 1M idle cycles.
STALL_ENV = {"MPC_SIM_STALL_CYCLES": "5000"}


def _assert_passed(result: dict) -> None:
    if result["failed"] or not result["passed"]:
        log = Path(result["log"]).read_text(errors="replace")
        pytest.fail(f"cocotb: {result}\n... {log[-4000:]}")


# ------------------------------------------------------------------------ stimulus
def random_layer(rng, n_in: int, n_out: int, w_bits: int, in_bits: int):
    """Weights with both extreme values present, a bias, and the widths the contract implies."""
    lo, hi = int_range(w_bits)
    w_q = rng.integers(lo, hi + 1, size=(n_out, n_in))
    w_q[0, 0], w_q[-1, -1] = lo, hi
    bias_bound = 1 << (w_bits + in_bits - 2)
    b_q = rng.integers(-bias_bound, bias_bound, size=n_out)
    b_q[0] = -bias_bound  # a negative bias always (sign extension), the last one positive
    if n_out > 1:
        b_q[-1] = bias_bound - 1
    b_bits = bits_for_signed(int(np.abs(b_q).max()))
    acc_bits = dense_accumulator_bits(w_q, b_q, in_bits)
    return w_q, b_q, b_bits, acc_bits


def edge_inputs(rng, w_q: np.ndarray, in_bits: int, n_random: int) -> np.ndarray:
    """Extreme vectors (all min/max, the worst case of rows 0 and -1) plus random ones."""
    lo, hi = int_range(in_bits)
    n_in = w_q.shape[1]
    rows = [np.full(n_in, lo), np.full(n_in, hi), np.zeros(n_in, dtype=np.int64)]
    for o in (0, -1):  # |acc| = M * sum|W[o]| (+ bias): the accumulator's worst case
        rows.append(np.where(w_q[o] >= 0, lo, hi))
        rows.append(np.where(w_q[o] >= 0, hi, lo))
    rows += list(rng.integers(lo, hi + 1, size=(n_random, n_in)))
    return np.array(rows, dtype=np.int64)


def write_layer_roms(
    directory: Path, prefix: str, w_q, b_q, parallel, w_bits, b_bits, protect: int = 0, protect_lanes: int = 0
):
    """The two ROM files of a dense layer, stored as PROTECT's codewords (kernels/rom_protect.py);
    PROTECT_LANES 1: one code per weight (P lanes) in the weight ROM, as rtl/dense_mac.v says."""
    w_file, b_file = directory / f"{prefix}_w.mem", directory / f"{prefix}_b.mem"
    protection = PROTECTIONS[protect]
    lanes = parallel if protect_lanes else 1
    write_mem(w_file, dense_rom_words(w_q, parallel, w_bits), parallel * w_bits, protection, lanes)
    write_mem(b_file, vector_rom_words(b_q, b_bits), b_bits, protection=protection)
    return w_file, b_file


def flip_mem_bits(path: Path, word: int, bits) -> None:
    """Flip `bits` of line `word` of a $readmemh file (a ROM upset in the stored image)."""
    lines = path.read_text().split()
    digits = len(lines[word])
    value = int(lines[word], 16)
    for bit in bits:
        value ^= 1 << bit
    lines[word] = f"{value:0{digits}x}"
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------ requantize
REQUANTIZE_CASES = {
    "relu_exhaustive": dict(ACC_BITS=12, OUT_BITS=8, SHIFT=4, RELU=1),
    "shift0_exhaustive": dict(ACC_BITS=10, OUT_BITS=6, SHIFT=0, RELU=0),
    "wide_acc_random": dict(ACC_BITS=24, OUT_BITS=8, SHIFT=9, RELU=0),
    "shift_beyond_acc": dict(ACC_BITS=6, OUT_BITS=4, SHIFT=8, RELU=0),
    "out_wider_than_acc": dict(ACC_BITS=5, OUT_BITS=8, SHIFT=1, RELU=1),
}


@pytest.mark.parametrize("case", REQUANTIZE_CASES, ids=list(REQUANTIZE_CASES))
def test_requantize_matches_kernel(case, tmp_path):
    params = REQUANTIZE_CASES[case]
    lint_verilator([REQUANTIZE_V], "requantize", params)
    result = run_cocotb(
        [REQUANTIZE_V],
        "requantize",
        "test_requantize",
        tmp_path,
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(params)},
    )
    _assert_passed(result)


# ------------------------------------------------------------------------ dense_mac
DENSE_CASES = {
    "p1_relu": dict(N_IN=5, N_OUT=3, P=1, IN_BITS=8, W_BITS=8, OUT_BITS=8, RELU=1, REQUANT=1),
    "p3_of_7_norelu": dict(N_IN=7, N_OUT=4, P=3, IN_BITS=8, W_BITS=6, OUT_BITS=8, RELU=0, REQUANT=1),
    "p_eq_nin_raw": dict(N_IN=6, N_OUT=3, P=6, IN_BITS=8, W_BITS=8, OUT_BITS=8, RELU=0, REQUANT=0),
    "p_above_nin_shift0": dict(N_IN=3, N_OUT=2, P=4, IN_BITS=3, W_BITS=3, OUT_BITS=5, RELU=1, REQUANT=1, SHIFT=0),
    "single_in_out_raw": dict(N_IN=1, N_OUT=1, P=1, IN_BITS=8, W_BITS=8, OUT_BITS=8, RELU=0, REQUANT=0),
    # protected ROMs (PROTECT 1 parity, 2 SECDED): same values, same timing
    "p3_of_7_parity": dict(N_IN=7, N_OUT=4, P=3, IN_BITS=8, W_BITS=6, OUT_BITS=8, RELU=0, REQUANT=1, PROTECT=1),
    "p_eq_nin_raw_secded": dict(N_IN=6, N_OUT=3, P=6, IN_BITS=8, W_BITS=8, OUT_BITS=8, RELU=0, REQUANT=0, PROTECT=2),
    "single_in_out_secded": dict(N_IN=1, N_OUT=1, P=1, IN_BITS=8, W_BITS=8, OUT_BITS=8, RELU=1, REQUANT=1, PROTECT=2),
    # one code per weight (PROTECT_LANES 1: P lanes per weight word)
    "p3_of_7_secded_lanes": dict(
        N_IN=7, N_OUT=4, P=3, IN_BITS=8, W_BITS=6, OUT_BITS=8, RELU=0, REQUANT=1, PROTECT=2, PROTECT_LANES=1
    ),
    "p_eq_nin_raw_parity_lanes": dict(
        N_IN=6, N_OUT=3, P=6, IN_BITS=8, W_BITS=8, OUT_BITS=8, RELU=0, REQUANT=0, PROTECT=1, PROTECT_LANES=1
    ),
}


def dense_case(case: str | dict, directory: Path, seed: int = 0):
    """Parameters (ROM files written to `directory`) and stimulus path for a DENSE_CASES entry
    (or such a dict); its PROTECT and PROTECT_LANES (default 0) set the ROM codewords."""
    spec = dict(DENSE_CASES[case] if isinstance(case, str) else case)
    rng = np.random.default_rng(seed)
    w_q, b_q, b_bits, acc_bits = random_layer(rng, spec["N_IN"], spec["N_OUT"], spec["W_BITS"], spec["IN_BITS"])
    # Default shift: bring typical accumulators into the output range, saturating sometimes.
    spec.setdefault("SHIFT", max(0, acc_bits - spec["OUT_BITS"] - 2))
    x_q = edge_inputs(rng, w_q, spec["IN_BITS"], n_random=6)
    w_file, b_file = write_layer_roms(
        directory,
        "layer",
        w_q,
        b_q,
        spec["P"],
        spec["W_BITS"],
        b_bits,
        spec.get("PROTECT", 0),
        spec.get("PROTECT_LANES", 0),
    )
    params = dict(spec, B_BITS=b_bits, ACC_BITS=acc_bits, W_FILE=str(w_file), B_FILE=str(b_file))
    stimulus = directory / "stimulus.npz"
    np.savez(stimulus, w_q=w_q, b_q=b_q, x_q=x_q)
    return params, stimulus


def run_dense(params: dict, config: dict, directory: Path):
    return run_cocotb(
        DENSE_SOURCES,
        "dense_mac",
        "test_dense_mac",
        directory / "build",
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config), **STALL_ENV},
    )


@pytest.mark.parametrize("case", DENSE_CASES, ids=list(DENSE_CASES))
def test_dense_mac_matches_kernel(case, tmp_path):
    params, stimulus = dense_case(case, tmp_path)
    lint_verilator(DENSE_SOURCES, "dense_mac", params)
    config = {"parameters": params, "stimulus": str(stimulus)}
    _assert_passed(run_dense(params, config, tmp_path))


# ROM upsets applied by the bench (sim/engine_checks.py apply_rom_flips) before the first input:
# name -> (PROTECT, flips, expect_fault). Word 4 of p3_of_7 (NCH = 3) is row 1's second word;
# bias word 0 is read at output 0's first word. "check" bits are codeword bits >= the data width.
DATA, CHECK = "data", "check"
ROM_FLIP_CASES = {
    "secded_one_data_flip_corrected": (2, [("w_rom", 4, [(DATA, 5)])], False),
    "secded_one_check_flip_corrected": (2, [("w_rom", 4, [(CHECK, 1)])], False),
    "secded_one_bias_flip_corrected": (2, [("b_rom", 0, [(DATA, 0)])], False),
    "secded_two_flips_detected": (2, [("w_rom", 4, [(DATA, 2), (DATA, 11)])], True),
    "secded_data_and_check_flips_detected": (2, [("b_rom", 0, [(DATA, 3), (CHECK, 0)])], True),
    "parity_one_flip_detected": (1, [("w_rom", 4, [(DATA, 7)])], True),
    "parity_one_check_flip_detected": (1, [("b_rom", 3, [(CHECK, 0)])], True),
}


def rom_flips(
    flips, widths: dict[str, int], protection: str = "none", lanes: dict[str, int] | None = None
) -> list[dict]:
    """Bench flips from (rom, word, [(DATA | CHECK, bit)]): CHECK bits count from the data width
    (widths: each ROM's data bits); the bench checks that every bit lies in the codeword.
    A bit may name a lane, (DATA | CHECK, bit, lane), in a ROM stored with one code per lane
    (lanes[rom] lanes of L = width / lanes bits, kernels/rom_protect.py): DATA bit of lane i at
    i*L + bit, CHECK bit at width + i*C + bit, C = the check bits of one L-bit lane."""

    def position(rom: str, kind: str, bit: int, lane: int | None = None) -> int:
        width = widths[rom]
        if lane is None:
            assert kind == CHECK or bit < width, f"{rom} has {width} data bits"
            return bit + (width if kind == CHECK else 0)
        n = (lanes or {}).get(rom, 1)
        size, check = width // n, check_bits(width // n, protection)
        assert 0 <= lane < n and bit < (size if kind == DATA else check), f"{rom}: lane {lane} bit {bit}"
        return lane * size + bit if kind == DATA else width + lane * check + bit

    return [{"rom": rom, "word": word, "bits": [position(rom, *b) for b in bits]} for rom, word, bits in flips]


@pytest.mark.parametrize("case", ROM_FLIP_CASES, ids=list(ROM_FLIP_CASES))
def test_dense_mac_rom_flips(case, tmp_path):
    """(a) SECDED corrects one flip (exact outputs, fault low); (b) two flips in a word the run
    reads raise fault; (c) parity detects one flip."""
    protect, flips, expect_fault = ROM_FLIP_CASES[case]
    spec = dict(DENSE_CASES["p3_of_7_norelu"], PROTECT=protect)
    params, stimulus = dense_case(spec, tmp_path)
    widths = {"w_rom": spec["P"] * spec["W_BITS"], "b_rom": params["B_BITS"]}
    flips = rom_flips(flips, widths)
    protection = PROTECTIONS[protect]
    for flip in flips:  # the flipped bits lie inside the stored codeword
        assert max(flip["bits"]) < codeword_bits(widths[flip["rom"]], protection)
    config = {"parameters": params, "stimulus": str(stimulus), "flips": flips, "expect_fault": expect_fault}
    _assert_passed(run_dense(params, config, tmp_path))


# One code per weight (PROTECT_LANES 1, SECDED): p3_of_7 has P = 3 lanes of 6-bit weights. The
# bit-flip attack's pattern, one flip in each of three weights of a word (sign bits, and a check
# bit), is corrected lane by lane; two flips in one weight are detected.
LANE_FLIP_CASES = {
    "three_lanes_one_flip_each_corrected": ([("w_rom", 4, [(DATA, 5, 0), (DATA, 5, 1), (CHECK, 2, 2)])], False),
    "three_lanes_sign_flips_corrected": ([("w_rom", 0, [(DATA, 5, 0), (DATA, 5, 1), (DATA, 5, 2)])], False),
    "two_flips_in_one_lane_detected": ([("w_rom", 4, [(DATA, 1, 1), (DATA, 4, 1)])], True),
}


@pytest.mark.parametrize("case", LANE_FLIP_CASES, ids=list(LANE_FLIP_CASES))
def test_dense_mac_lane_rom_flips(case, tmp_path):
    flips, expect_fault = LANE_FLIP_CASES[case]
    spec = DENSE_CASES["p3_of_7_secded_lanes"]
    params, stimulus = dense_case(spec, tmp_path)
    widths = {"w_rom": spec["P"] * spec["W_BITS"], "b_rom": params["B_BITS"]}
    flips = rom_flips(flips, widths, "secded", {"w_rom": spec["P"]})
    for flip in flips:  # the flipped bits lie inside the stored codeword
        assert max(flip["bits"]) < codeword_bits(widths[flip["rom"]], "secded", spec["P"])
    config = {"parameters": params, "stimulus": str(stimulus), "flips": flips, "expect_fault": expect_fault}
    _assert_passed(run_dense(params, config, tmp_path))


@pytest.mark.slow
def test_dense_mac_rom_flips_in_verilator(tmp_path):
    """The bench's ROM flips (VPI writes into the ROM array) reach Verilator's model too."""
    protect, flips, expect_fault = ROM_FLIP_CASES["secded_two_flips_detected"]
    spec = dict(DENSE_CASES["p3_of_7_norelu"], PROTECT=protect)
    params, stimulus = dense_case(spec, tmp_path)
    flips = rom_flips(flips, {"w_rom": spec["P"] * spec["W_BITS"]})
    config = {"parameters": params, "stimulus": str(stimulus), "flips": flips, "expect_fault": expect_fault}
    result = run_cocotb(
        DENSE_SOURCES,
        "dense_mac",
        "test_dense_mac",
        tmp_path / "build_verilator",
        simulator="verilator",
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config), **STALL_ENV},
    )
    _assert_passed(result)


def test_dense_bench_catches_a_wrong_fault_expectation(tmp_path):
    """The bench must fail when fault differs from the expectation, both ways."""
    params, stimulus = dense_case("p3_of_7_parity", tmp_path)
    flips = [{"rom": "w_rom", "word": 1, "bits": [0]}]
    config = {"parameters": params, "stimulus": str(stimulus), "flips": flips, "expect_fault": False}
    result = run_dense(params, config, tmp_path / "a")
    assert result["failed"] == 2, result  # a detected flip while no fault was expected
    config = {"parameters": params, "stimulus": str(stimulus), "expect_fault": True}
    result = run_dense(params, config, tmp_path / "b")
    assert result["failed"] == 2, result  # a clean ROM while a fault was expected


# ------------------------------------------------------------------------ argmax
ARGMAX_CASES = {
    "ten_classes": dict(N=10, W=16, IDX_BITS=4),
    "three_narrow": dict(N=3, W=4, IDX_BITS=2),
    "single": dict(N=1, W=8, IDX_BITS=1),
}


@pytest.mark.parametrize("case", ARGMAX_CASES, ids=list(ARGMAX_CASES))
def test_argmax_matches_kernel(case, tmp_path):
    params = ARGMAX_CASES[case]
    lint_verilator(ARGMAX_SOURCES, "argmax", params)
    result = run_cocotb(
        ARGMAX_SOURCES,
        "argmax",
        "test_argmax",
        tmp_path,
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(params), **STALL_ENV},
    )
    _assert_passed(result)


# ------------------------------------------------------------------------ whole design
def two_layer_design(directory: Path, seed: int = 0, n_samples: int = 12, protect: int = 0):
    """Parameters for tests/sim/mpc_top.v and its stimulus .npz for sim/test_design.py; both
    layers' ROMs stored as PROTECT's codewords."""
    rng = np.random.default_rng(seed)
    n_in, n_hidden, n_classes, in_bits, w_bits, hid_bits = 6, 5, 3, 8, 8, 8
    p1, p2 = 4, 2  # 4 does not divide 6
    w1, b1, b1_bits, acc1_bits = random_layer(rng, n_in, n_hidden, w_bits, in_bits)
    w2, b2, _, _ = random_layer(rng, n_hidden, n_classes, w_bits, hid_bits)
    # Classes 0 and 2 always tie: whenever they are the largest, index 0 must win.
    w2[2], b2[2] = w2[0], b2[0]
    b2_bits = bits_for_signed(int(np.abs(b2).max()))
    logit_bits = dense_accumulator_bits(w2, b2, hid_bits)
    shift1 = acc1_bits - hid_bits - 2
    x_q = edge_inputs(rng, w1, in_bits, n_random=n_samples)[:n_samples]

    hidden = requantize(dense_mac(x_q, w1, b1), shift1, hid_bits, relu=True)
    logits = dense_mac(hidden, w2, b2)
    stimulus = directory / "stimulus.npz"
    np.savez(
        stimulus,
        x_q=x_q,
        expected_logits=logits,
        expected_argmax=argmax(logits),
        in_bits=in_bits,
        logit_bits=logit_bits,
        n_classes=n_classes,
    )

    l1 = write_layer_roms(directory, "l1", w1, b1, p1, w_bits, b1_bits, protect)
    l2 = write_layer_roms(directory, "l2", w2, b2, p2, w_bits, b2_bits, protect)
    params = dict(
        N_IN=n_in,
        N_HIDDEN=n_hidden,
        N_CLASSES=n_classes,
        IN_BITS=in_bits,
        W_BITS=w_bits,
        HID_BITS=hid_bits,
        P1=p1,
        B1_BITS=b1_bits,
        ACC1_BITS=acc1_bits,
        SHIFT1=shift1,
        P2=p2,
        B2_BITS=b2_bits,
        LOGIT_BITS=logit_bits,
        IDX_BITS=2,
        PROTECT=protect,
        # Relative, as in generated designs: they resolve in the simulator's work_dir.
        L1_W_FILE=l1[0].name,
        L1_B_FILE=l1[1].name,
        L2_W_FILE=l2[0].name,
        L2_B_FILE=l2[1].name,
    )
    return params, stimulus


def run_design(directory: Path, params: dict, stimulus: Path, simulator: str = "icarus", env: dict | None = None):
    result_json = directory / "sim_result.json"
    result = run_cocotb(
        DESIGN_SOURCES,
        "mpc_top",
        "test_design",
        directory / f"build_{simulator}",
        simulator=simulator,
        parameters=params,
        work_dir=directory,
        extra_env={"MPC_STIMULUS": str(stimulus), "MPC_SIM_RESULT": str(result_json), **STALL_ENV, **(env or {})},
    )
    return result, json.loads(result_json.read_text())


def test_design_bench_on_two_layer_top(tmp_path):
    params, stimulus = two_layer_design(tmp_path)
    lint_verilator(DESIGN_SOURCES, "mpc_top", params)
    result, summary = run_design(tmp_path, params, stimulus)
    _assert_passed(result)
    assert summary["samples"] == 12 and summary["mismatches"] == 0, summary
    assert summary["first_mismatches"] == [] and summary["fault"] == 0
    # Steady state is set by the slowest engine, max(N_IN, N_OUT * NCH) each: layer 1
    # max(6, 5 * 2) = 10, layer 2 max(5, 3 * 3) = 9, argmax N + 1 = 4.
    assert summary["initiation_interval"] == pytest.approx(10.0), summary
    # Idle pipeline: layer 1's outputs complete at 6 + 2(o+1) + 3 = 11..19 edges after the
    # first feature; layer 2 starts at 20, its outputs complete at 20 + 3(o+1) + 3 = 26..32;
    # argmax presents the beat one edge after its last logit.
    assert summary["latency_first_sample"] == 33, summary
    assert summary["cycles_per_inference"] >= 33, summary


def test_design_bench_reports_a_wrong_expectation(tmp_path):
    """The bench must fail, and say where, when one expected logit is off by one."""
    params, stimulus = two_layer_design(tmp_path, n_samples=4)
    data = dict(np.load(stimulus))
    data["expected_logits"][2, 1] += 1
    np.savez(stimulus, **data)
    result, summary = run_design(tmp_path, params, stimulus)
    assert result["failed"] == 1
    assert summary["mismatches"] == 2  # sample 2 in the streamed and the replayed phase
    first = summary["first_mismatches"][0]
    assert first["sample"] == 2
    assert first["expected"]["logits"][1] == first["got"]["logits"][1] + 1


def test_design_bench_with_protected_roms(tmp_path):
    """SECDED ROMs in both layers: a single flip in a stored image is corrected (exact, fault
    low); a double flip raises fault, an error unless MPC_EXPECT_FAULT=1 says it is expected."""
    params, stimulus = two_layer_design(tmp_path, n_samples=6, protect=2)
    lint_verilator(DESIGN_SOURCES, "mpc_top", params)
    flip_mem_bits(tmp_path / "l1_w.mem", 3, [17])  # layer 1: 4 weights of 8 bits + 7 check bits
    result, summary = run_design(tmp_path, params, stimulus)
    _assert_passed(result)
    assert summary["mismatches"] == 0 and summary["fault"] == 0, summary

    flip_mem_bits(tmp_path / "l2_b.mem", 1, [0, 4])  # layer 2's bias of output 1: two flips
    result, summary = run_design(tmp_path, params, stimulus, env={"MPC_EXPECT_FAULT": "1"})
    _assert_passed(result)
    assert summary["fault"] == 1 and summary["mismatches"] == 0 and "error" not in summary, summary

    result, summary = run_design(tmp_path, params, stimulus)
    assert result["failed"] == 1
    assert summary["fault"] == 1 and summary["mismatches"] >= 1 and "fault is 1" in summary["error"], summary


def test_design_bench_expecting_a_fault_fails_on_a_clean_design(tmp_path):
    params, stimulus = two_layer_design(tmp_path, n_samples=2, protect=1)
    result, summary = run_design(tmp_path, params, stimulus, env={"MPC_EXPECT_FAULT": "1"})
    assert result["failed"] == 1
    assert summary["fault"] == 0 and "fault is 0" in summary["error"], summary


@pytest.mark.slow
def test_design_bench_in_verilator(tmp_path):
    params, stimulus = two_layer_design(tmp_path)
    result, summary = run_design(tmp_path, params, stimulus, simulator="verilator")
    _assert_passed(result)
    assert summary["mismatches"] == 0, summary


@pytest.mark.slow
def test_verilator_builds_a_design_split_into_many_cpp_files(tmp_path):
    """Large designs make Verilator split its C++ and use a precompiled header, which the PyPI
    wheel's makefile cannot compile unaided (sim/runner.py VERILATOR_MAKE_OVERRIDES);
    --output-split forces that build on a small module."""
    params, stimulus = dense_case(next(iter(DENSE_CASES)), tmp_path)
    config = {"parameters": params, "stimulus": str(stimulus)}
    result = run_cocotb(
        DENSE_SOURCES,
        "dense_mac",
        "test_dense_mac",
        tmp_path / "build",
        simulator="verilator",
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config), **STALL_ENV},
        extra_build_args=["--output-split", "400", "--output-split-cfuncs", "400"],
    )
    _assert_passed(result)
    assert len(list((tmp_path / "build").glob("Vtop*.cpp"))) > 3


# ------------------------------------------------------------------------ runner errors
def test_runner_reports_a_failed_build(tmp_path):
    broken = tmp_path / "broken.v"
    broken.write_text("module broken(input wire a);\n  assign b = ;\nendmodule\n")
    with pytest.raises(SimulationError, match=r"^icarus build of broken failed .*broken\.v"):
        run_cocotb([broken], "broken", "test_requantize", tmp_path / "build")


def test_runner_reports_a_missing_simulator(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SimulationError, match="iverilog not found: install Icarus Verilog"):
        run_cocotb([REQUANTIZE_V], "requantize", "test_requantize", tmp_path / "build")


def test_lint_reports_warnings(tmp_path):
    sloppy = tmp_path / "sloppy.v"
    sloppy.write_text("module sloppy(input wire [3:0] a, output wire [7:0] y);\n  assign y = a;\nendmodule\n")
    with pytest.raises(SimulationError, match="WIDTHEXPAND"):
        lint_verilator([sloppy], "sloppy")


# ------------------------------------------------------------------------ yosys
def synthesize(tmp_path: Path, sources, top: str, params: dict) -> str:
    """synth_xilinx with parameters set by chparam, run in tmp_path; returns the log."""
    if shutil.which("yosys") is None:
        pytest.skip("yosys not found: install it (apt-get install yosys) to check synthesis")
    chparams = " ".join(f"-set {k} {json.dumps(v) if isinstance(v, str) else v}" for k, v in params.items())
    script = (
        f"read_verilog -defer {' '.join(str(s) for s in sources)}; "
        f"chparam {chparams} {top}; synth_xilinx -top {top}; stat"
    )
    log = tmp_path / "yosys.log"
    proc = subprocess.run(
        ["yosys", "-q", "-l", str(log), "-p", script], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    text = log.read_text() if log.exists() else ""
    assert proc.returncode == 0, f"yosys failed: {proc.stderr.strip() or text[-2000:]}"
    return text


def latch_report(log: str) -> list[str]:
    """Latches yosys inferred or left in the netlist (generic or Xilinx LD* cells)."""
    inferred = re.findall(r"^.*\bLatch inferred.*$", log, flags=re.MULTILINE)
    stats = log[log.rfind("Printing statistics") :]
    cells = re.findall(r"^\s+(\$_?DLATCH\w*|\$dlatch\w*|LD[CP]E?)\s+\d+", stats, flags=re.MULTILINE | re.IGNORECASE)
    return inferred + cells


@pytest.mark.parametrize("protect", [0, 2], ids=["plain", "secded"])
def test_dense_mac_synthesizes_to_block_ram_and_dsp(protect, tmp_path):
    """A mid-size layer: weight ROM in block RAM (codewords too: the decoder follows the
    registered read), one DSP per multiplier, no latches."""
    rng = np.random.default_rng(3)
    w_q, b_q, b_bits, acc_bits = random_layer(rng, 64, 128, 8, 8)
    w_file, b_file = write_layer_roms(tmp_path, "layer", w_q, b_q, 4, 8, b_bits, protect)
    params = dict(
        N_IN=64,
        N_OUT=128,
        P=4,
        IN_BITS=8,
        W_BITS=8,
        B_BITS=b_bits,
        ACC_BITS=acc_bits,
        OUT_BITS=8,
        SHIFT=acc_bits - 10,
        RELU=1,
        REQUANT=1,
        PROTECT=protect,
        W_FILE=str(w_file),
        B_FILE=str(b_file),
    )
    log = synthesize(tmp_path, DENSE_SOURCES, "dense_mac", params)
    assert latch_report(log) == []
    stats = log[log.rfind("Printing statistics") :]
    assert re.search(r"RAMB(18|36)E1\s+\d+", stats), "weight ROM not in block RAM"
    assert re.search(r"DSP48E1\s+4\b", stats), "expected one DSP48E1 per multiplier"


@pytest.mark.parametrize("protect", [0, 1], ids=["plain", "parity"])
def test_two_layer_top_synthesizes_without_latches(protect, tmp_path):
    """One synthesis covers all three engines (dense with and without requantize, argmax)."""
    params, _ = two_layer_design(tmp_path, protect=protect)
    log = synthesize(tmp_path, DESIGN_SOURCES, "mpc_top", params)
    assert "Printing statistics" in log
    assert latch_report(log) == []
    assert re.search(r"DSP48E1\s+\d+", log), "expected the multipliers on DSP blocks"


def test_latch_report_detects_a_latch(tmp_path):
    """Guard for the check above: an incomplete combinational assignment is reported."""
    source = tmp_path / "latchy.v"
    source.write_text(
        "module latchy(input wire en, input wire d, output reg q);\n  always @* if (en) q = d;\nendmodule\n"
    )
    log = synthesize(tmp_path, [source], "latchy", {})
    assert latch_report(log)
