"""rtl/sparse_mac.v against kernels.sparse_mac: cocotb benches (Icarus), Verilator lint, yosys.

Run from the repository root: python -m pytest tests/sim/test_sparse_rtl.py -q
(-m "not slow" skips the Verilator simulation).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import rtl
from kernels import dense_accumulator_bits
from kernels.fixed import bits_for_signed, int_range
from kernels.rom import row_count_words, sparse_rom_words, vector_rom_words, write_mem
from kernels.rom_protect import PROTECTIONS
from kernels.sparse_mac import encode_sparse, entry_columns
from sim.runner import lint_verilator, run_cocotb
from tests.sim.test_rtl_modules import CHECK, DATA, STALL_ENV, edge_inputs, latch_report, rom_flips, synthesize

REPO = Path(__file__).resolve().parents[2]
SOURCES = rtl.paths("sparse_mac.v")
TOP = "sparse_mac"

# name -> layer shape, engine and output mode. Every case with 2**D_BITS < N_IN holds a gap
# that needs padding entries; P = 3 divides none of the sizes; P = 4 > N_IN puts the padding
# of short rows on columns >= N_IN. B_BITS="ACC": the bias ROM as wide as the accumulator.
CASES = {
    "p1_d4_relu": dict(N_IN=20, N_OUT=6, P=1, D_BITS=4, IN_BITS=8, W_BITS=8, OUT_BITS=8, RELU=1, REQUANT=1),
    "p2_d2_raw_bias_at_acc": dict(
        N_IN=9, N_OUT=7, P=2, D_BITS=2, IN_BITS=8, W_BITS=6, OUT_BITS=8, RELU=0, REQUANT=0, B_BITS="ACC"
    ),
    "p4_d3_norelu": dict(N_IN=16, N_OUT=6, P=4, D_BITS=3, IN_BITS=6, W_BITS=4, OUT_BITS=8, RELU=0, REQUANT=1),
    "p3_d1_relu": dict(N_IN=10, N_OUT=5, P=3, D_BITS=1, IN_BITS=8, W_BITS=8, OUT_BITS=6, RELU=1, REQUANT=1),
    "p4_above_nin_raw": dict(N_IN=3, N_OUT=5, P=4, D_BITS=1, IN_BITS=3, W_BITS=3, OUT_BITS=4, RELU=0, REQUANT=0),
    "single_in_out_shift0": dict(
        N_IN=1, N_OUT=1, P=1, D_BITS=2, IN_BITS=8, W_BITS=8, OUT_BITS=5, RELU=1, REQUANT=1, SHIFT=0
    ),
    # protected ROMs (PROTECT 1 parity, 2 SECDED; entry, row-count and bias ROMs): same values, timing
    "p2_d2_raw_parity": dict(
        N_IN=9, N_OUT=7, P=2, D_BITS=2, IN_BITS=8, W_BITS=6, OUT_BITS=8, RELU=0, REQUANT=0, PROTECT=1
    ),
    "p3_d1_relu_secded": dict(
        N_IN=10, N_OUT=5, P=3, D_BITS=1, IN_BITS=8, W_BITS=8, OUT_BITS=6, RELU=1, REQUANT=1, PROTECT=2
    ),
    # one code per entry (PROTECT_LANES 1: P lanes of W_BITS + D_BITS in the entry ROM)
    "p3_d1_relu_secded_lanes": dict(
        N_IN=10, N_OUT=5, P=3, D_BITS=1, IN_BITS=8, W_BITS=8, OUT_BITS=6, RELU=1, REQUANT=1, PROTECT=2, PROTECT_LANES=1
    ),
    "p4_d3_norelu_parity_lanes": dict(
        N_IN=16, N_OUT=6, P=4, D_BITS=3, IN_BITS=6, W_BITS=4, OUT_BITS=8, RELU=0, REQUANT=1, PROTECT=1, PROTECT_LANES=1
    ),
}
VERILATOR_CASE = "p3_d1_relu"


def _assert_passed(result: dict) -> None:
    if result["failed"] or not result["passed"]:
        log = Path(result["log"]).read_text(errors="replace")
        pytest.fail(f"cocotb: {result}\n... {log[-4000:]}")


# ------------------------------------------------------------------------ stimulus
def sparse_matrix(rng, n_in: int, n_out: int, w_bits: int, delta_bits: int) -> np.ndarray:
    """Rows in this order (as many as fit): fully dense with both extreme weights, all zero,
    a leading and an inner gap longer than 2**delta_bits - 1, only the last column; then
    random rows at densities 0.1 .. 0.9 in turn."""
    lo, hi = int_range(w_bits)

    def nonzero(size):  # random nonzero weights
        values = rng.integers(lo, hi, size=size)
        return np.where(values >= 0, values + 1, values)

    rows = []
    dense = nonzero(n_in)
    dense[0] = lo
    dense[-1] = hi if n_in > 1 else lo
    rows.append(dense)
    rows.append(np.zeros(n_in, dtype=np.int64))
    gap = np.zeros(n_in, dtype=np.int64)
    first = min(n_in - 1, 1 << delta_bits)  # 2**D zeros before it: one padding entry
    gap[first], gap[-1] = hi, lo
    rows.append(gap)
    last_only = np.zeros(n_in, dtype=np.int64)
    last_only[-1] = hi
    rows.append(last_only)
    densities = (0.1, 0.3, 0.6, 0.9)
    while len(rows) < n_out:
        density = densities[(len(rows) - 4) % len(densities)]
        rows.append(np.where(rng.random(n_in) < density, nonzero(n_in), 0))
    return np.array(rows[:n_out], dtype=np.int64)


def gap_padding_entries(enc) -> int:
    """Padding entries that bridge a gap (weight 0, delta 2**D - 1, before a real entry)."""
    cols = entry_columns(enc)
    max_delta = (1 << enc.delta_bits) - 1
    count, word = 0, 0
    for words in enc.row_words:
        w = enc.weights[word : word + words].ravel()
        d = enc.deltas[word : word + words].ravel()
        c = cols[word : word + words].ravel()
        real = np.flatnonzero(w)
        if real.size:
            count += int(np.count_nonzero((w[: real[-1]] == 0) & (d[: real[-1]] == max_delta)))
        assert c[real].max(initial=0) < enc.n_in
        word += words
    return count


def write_sparse_roms(
    directory: Path, prefix: str, enc, b_q, w_bits: int, b_bits: int, protect: int = 0, protect_lanes: int = 0
):
    """ROM files (PROTECT's codewords; PROTECT_LANES 1: one code per entry, P lanes, in the entry
    ROM) and the matching CNT_BITS / N_WORDS for one encoded layer."""
    files = {k: directory / f"{prefix}_{k[0].lower()}.mem" for k in ("W_FILE", "C_FILE", "B_FILE")}
    cnt_bits = max(1, int(enc.row_words.max()).bit_length())
    protection = PROTECTIONS[protect]
    entry_bits = enc.parallel * (w_bits + enc.delta_bits)
    lanes = enc.parallel if protect_lanes else 1
    write_mem(files["W_FILE"], sparse_rom_words(enc, w_bits), entry_bits, protection, lanes)
    write_mem(files["C_FILE"], row_count_words(enc), cnt_bits, protection=protection)
    write_mem(files["B_FILE"], vector_rom_words(b_q, b_bits), b_bits, protection=protection)
    return dict(CNT_BITS=cnt_bits, N_WORDS=int(enc.row_words.sum()), **{k: str(v) for k, v in files.items()})


def sparse_case(spec: dict, directory: Path, seed: int = 0, n_random: int = 6):
    """DUT parameters (ROM files written to `directory`), the bench config and the encoding."""
    spec = dict(spec)
    rng = np.random.default_rng(seed)
    n_in, n_out, w_bits, in_bits = spec["N_IN"], spec["N_OUT"], spec["W_BITS"], spec["IN_BITS"]
    w_q = sparse_matrix(rng, n_in, n_out, w_bits, spec["D_BITS"])
    bias_bound = 1 << (w_bits + in_bits - 2)
    b_q = rng.integers(-bias_bound, bias_bound, size=n_out)
    b_q[0] = -bias_bound  # a negative bias always (sign extension), the last one positive
    if n_out > 1:
        b_q[-1] = bias_bound - 1
    b_bits = bits_for_signed(int(np.abs(b_q).max()))
    acc_bits = dense_accumulator_bits(w_q, b_q, in_bits)
    if spec.get("B_BITS") == "ACC":  # as compiler/backends/verilog.py instantiates it
        b_bits = acc_bits
    spec.setdefault("SHIFT", max(0, acc_bits - spec["OUT_BITS"] - 2))
    enc = encode_sparse(w_q, spec["P"], spec["D_BITS"])
    x_q = edge_inputs(rng, w_q, in_bits, n_random=n_random)
    roms = write_sparse_roms(
        directory, "layer", enc, b_q, w_bits, b_bits, spec.get("PROTECT", 0), spec.get("PROTECT_LANES", 0)
    )
    params = dict(spec, B_BITS=b_bits, ACC_BITS=acc_bits, **roms)
    stimulus = directory / "stimulus.npz"
    np.savez(stimulus, w_q=w_q, b_q=b_q, x_q=x_q)
    return params, {"parameters": params, "stimulus": str(stimulus)}, enc


def simulate(params: dict, config: dict, directory: Path, simulator: str = "icarus"):
    return run_cocotb(
        SOURCES,
        TOP,
        "test_sparse_mac",
        directory / f"build_{simulator}",
        simulator=simulator,
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config), **STALL_ENV},
    )


# ------------------------------------------------------------------------ tests
def test_rom_words_pack_entries_and_counts():
    """Entry p of a word at [p*(W+D) +: W+D]: weight (two's complement) low, delta above."""
    w_q = np.array([[0, 0, 0, 0, 0, -3, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0]])
    enc = encode_sparse(w_q, parallel=2, delta_bits=2)
    # Row 0: (0, 3) padding at column 3, (-3, 1) at 5, (1, 1) at 7, (0, 0) tail; row 1: (0, 0)x2.
    assert enc.weights.tolist() == [[0, -3], [1, 0], [0, 0]]
    assert enc.deltas.tolist() == [[3, 1], [1, 0], [0, 0]]
    w_bits, e = 4, 6
    assert sparse_rom_words(enc, w_bits) == [
        (0 | 3 << 4) | ((0b1101 | 1 << 4) << e),
        (1 | 1 << 4) | (0 << e),
        0,
    ]
    assert row_count_words(enc) == [2, 1]
    with pytest.raises(ValueError, match="does not fit"):
        sparse_rom_words(encode_sparse(np.array([[8, 0]]), 1, 1), 4)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_sparse_mac_matches_kernel(case, tmp_path):
    spec = CASES[case]
    params, config, enc = sparse_case(spec, tmp_path)
    if (1 << spec["D_BITS"]) < spec["N_IN"]:
        assert gap_padding_entries(enc) > 0, "the case must exercise gap padding"
    lint_verilator(SOURCES, TOP, params)
    _assert_passed(simulate(params, config, tmp_path))


# ROM upsets applied by the bench before the first input: name -> (PROTECT, flips, expect_fault)
# on p2_d2_raw_bias_at_acc (P = 2, W_BITS = 6, D_BITS = 2: 16-bit entry words; row 0, the dense
# row, holds words 0..4, its count is c_rom word 0).
SPARSE_FLIP_CASES = {
    "secded_one_entry_flip_corrected": (2, [("w_rom", 1, [(DATA, 9)])], False),
    "secded_one_count_flip_corrected": (2, [("c_rom", 0, [(DATA, 1)])], False),
    "secded_one_bias_check_flip_corrected": (2, [("b_rom", 2, [(CHECK, 2)])], False),
    "secded_two_entry_flips_detected": (2, [("w_rom", 3, [(DATA, 0), (DATA, 15)])], True),
    "parity_one_entry_flip_detected": (1, [("w_rom", 2, [(DATA, 4)])], True),
    "parity_one_count_flip_detected": (1, [("c_rom", 4, [(DATA, 0)])], True),
}


@pytest.mark.parametrize("case", SPARSE_FLIP_CASES, ids=list(SPARSE_FLIP_CASES))
def test_sparse_mac_rom_flips(case, tmp_path):
    """(a) SECDED corrects one flip in any of the three ROMs; (b) two flips in a read entry word
    raise fault; (c) parity detects one flip (a count's: outputs then undefined, fault high)."""
    protect, flips, expect_fault = SPARSE_FLIP_CASES[case]
    spec = dict(CASES["p2_d2_raw_bias_at_acc"], PROTECT=protect)
    params, config, enc = sparse_case(spec, tmp_path, n_random=3)
    entry_bits = spec["P"] * (spec["W_BITS"] + spec["D_BITS"])
    widths = {"w_rom": entry_bits, "c_rom": params["CNT_BITS"], "b_rom": params["B_BITS"]}
    config.update(flips=rom_flips(flips, widths), expect_fault=expect_fault)
    _assert_passed(simulate(params, config, tmp_path))


# One code per entry (PROTECT_LANES 1, SECDED) on p3_d1_relu (P = 3 lanes of 9-bit entries):
# one flip in each of the three entries of a word is corrected; two in one entry are detected.
SPARSE_LANE_FLIP_CASES = {
    "three_lanes_one_flip_each_corrected": ([("w_rom", 0, [(DATA, 7, 0), (DATA, 8, 1), (CHECK, 1, 2)])], False),
    "two_flips_in_one_lane_detected": ([("w_rom", 0, [(DATA, 0, 2), (DATA, 7, 2)])], True),
}


@pytest.mark.parametrize("case", SPARSE_LANE_FLIP_CASES, ids=list(SPARSE_LANE_FLIP_CASES))
def test_sparse_mac_lane_rom_flips(case, tmp_path):
    flips, expect_fault = SPARSE_LANE_FLIP_CASES[case]
    spec = CASES["p3_d1_relu_secded_lanes"]
    params, config, enc = sparse_case(spec, tmp_path, n_random=3)
    entry_bits = spec["W_BITS"] + spec["D_BITS"]
    widths = {"w_rom": spec["P"] * entry_bits, "c_rom": params["CNT_BITS"], "b_rom": params["B_BITS"]}
    config.update(flips=rom_flips(flips, widths, "secded", {"w_rom": spec["P"]}), expect_fault=expect_fault)
    _assert_passed(simulate(params, config, tmp_path))


def test_bench_catches_a_wrong_delta(tmp_path):
    """The bench must fail when one delta of the entry ROM is off by one."""
    params, config, enc = sparse_case(CASES["p2_d2_raw_bias_at_acc"], tmp_path, n_random=2)
    # The dense row 0's first entry: delta 0 -> 1 shifts every column of that row.
    rom = Path(params["W_FILE"])
    words = rom.read_text().split()
    width = len(words[0])
    words[0] = f"{int(words[0], 16) | (1 << params['W_BITS']):0{width}x}"
    rom.write_text("\n".join(words) + "\n")
    result = simulate(params, config, tmp_path)
    assert result["failed"] == 3, result


def test_bench_run_stops_on_inconsistent_row_counts(tmp_path):
    """rtl/sparse_mac.v's simulation-only check: counts that miss N_WORDS end the run."""
    params, config, _ = sparse_case(CASES["p2_d2_raw_bias_at_acc"], tmp_path, n_random=1)
    counts = Path(params["C_FILE"])
    words = counts.read_text().split()
    counts.write_text("\n".join(["1"] + words[1:]) + "\n")  # row 0 has 5 words, not 1
    result = simulate(params, config, tmp_path)
    assert result["passed"] == 0, result
    assert "the row counts add up to 13 words, N_WORDS is 17" in Path(result["log"]).read_text()


# Width corners of the generate branches, lint only: delta as wide as the column counter
# (and wider), accumulator narrower than a product, bias as wide as the accumulator, one
# output, one ROM word.
LINT_CORNERS = {
    "delta_eq_col": dict(N_IN=5, N_OUT=3, P=2, D_BITS=3, ACC_BITS=20, B_BITS=8),
    "delta_above_col": dict(N_IN=2, N_OUT=3, P=1, D_BITS=4, ACC_BITS=20, B_BITS=8),
    "acc_below_prod": dict(N_IN=4, N_OUT=2, P=3, D_BITS=2, ACC_BITS=12, B_BITS=12),
    "one_word": dict(N_IN=3, N_OUT=1, P=4, D_BITS=1, ACC_BITS=18, B_BITS=18, N_WORDS=1, CNT_BITS=1),
}


@pytest.mark.parametrize("case", LINT_CORNERS, ids=list(LINT_CORNERS))
def test_lint_width_corners(case):
    params = dict(IN_BITS=8, W_BITS=8, CNT_BITS=2, N_WORDS=6, OUT_BITS=8, SHIFT=4, RELU=0, REQUANT=1)
    params.update(LINT_CORNERS[case])
    lint_verilator(SOURCES, TOP, params)
    lint_verilator(SOURCES, TOP, dict(params, REQUANT=0))
    for protect in (1, 2):  # protected ROMs: 1-bit counts (one_word) and wide entry words, per word or entry
        for protect_lanes in (0, 1):
            lint_verilator(SOURCES, TOP, dict(params, PROTECT=protect, PROTECT_LANES=protect_lanes))


@pytest.mark.parametrize("protect", [0, 2], ids=["plain", "secded"])
def test_synthesizes_without_latches(protect, tmp_path):
    """A small layer at ~80% sparsity: no latches, one DSP per multiplier."""
    rng = np.random.default_rng(5)
    n_in, n_out, p, w_bits, in_bits, d_bits = 16, 12, 4, 8, 8, 2
    lo, hi = int_range(w_bits)
    w_q = np.where(rng.random((n_out, n_in)) < 0.2, rng.integers(lo, hi + 1, (n_out, n_in)), 0)
    b_q = rng.integers(-1000, 1000, size=n_out)
    b_bits = bits_for_signed(int(np.abs(b_q).max()))
    acc_bits = dense_accumulator_bits(w_q, b_q, in_bits)
    enc = encode_sparse(w_q, p, d_bits)
    params = dict(
        N_IN=n_in,
        N_OUT=n_out,
        P=p,
        IN_BITS=in_bits,
        W_BITS=w_bits,
        D_BITS=d_bits,
        B_BITS=b_bits,
        ACC_BITS=acc_bits,
        OUT_BITS=8,
        SHIFT=acc_bits - 10,
        RELU=1,
        REQUANT=1,
        PROTECT=protect,
        **write_sparse_roms(tmp_path, "layer", enc, b_q, w_bits, b_bits, protect),
    )
    log = synthesize(tmp_path, SOURCES, TOP, params)
    assert "Printing statistics" in log
    assert latch_report(log) == []
    stats = log[log.rfind("Printing statistics") :]
    dsps = re.search(r"DSP48E1\s+(\d+)", stats)
    assert dsps and int(dsps.group(1)) == p, "expected one DSP48E1 per multiplier"


@pytest.mark.slow
def test_sparse_mac_in_verilator(tmp_path):
    params, config, _ = sparse_case(CASES[VERILATOR_CASE], tmp_path)
    _assert_passed(simulate(params, config, tmp_path, simulator="verilator"))
