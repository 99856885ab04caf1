"""rtl/circulant_mac.v against kernels.circulant_mac: cocotb benches, Verilator lint, yosys.

Run from the repository root: python -m pytest tests/sim/test_circulant_rtl.py -q
(the Verilator simulation is marked slow).
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
from compiler.hw.circulant import CirculantModel
from kernels.circulant_mac import CirculantSchedule, circulant_expand, plan_circulant
from kernels.circulant_rom import circulant_rtl_parameters, write_circulant_roms
from kernels.fixed import int_range
from kernels.rom_protect import PROTECTIONS
from sim.runner import lint_verilator, run_cocotb
from tests.sim.test_rtl_modules import CHECK, DATA, rom_flips

REPO = Path(__file__).resolve().parents[2]
SOURCES = rtl.paths("circulant_mac.v")
TOP = "circulant_mac"

# name -> (layer shape and output mode, plan options)
CASES = {
    "b2_relu": (dict(N_IN=6, N_OUT=4, B=2, REQUANT=1, RELU=1), {}),
    "b4_padded_raw": (dict(N_IN=10, N_OUT=7, B=4, REQUANT=0, RELU=0), {}),
    "b8_requant": (dict(N_IN=16, N_OUT=16, B=8, REQUANT=1, RELU=0), {}),
    "b8_padded_left_shift": (
        dict(N_IN=20, N_OUT=13, B=8, REQUANT=0, RELU=0),
        dict(spectrum_bits=10, ifft_guard=6, fft_guard=3),
    ),
    "b16_relu": (dict(N_IN=32, N_OUT=32, B=16, REQUANT=1, RELU=1), {}),
    # protected ROMs (PROTECT 1 parity, 2 SECDED; spectra, twiddle and bias ROMs): same values, timing
    "b4_padded_raw_parity": (dict(N_IN=10, N_OUT=7, B=4, REQUANT=0, RELU=0, PROTECT=1), {}),
    "b8_requant_secded": (dict(N_IN=16, N_OUT=16, B=8, REQUANT=1, RELU=0, PROTECT=2), {}),
    # one code per lane (PROTECT_LANES 1: re / im of a spectra word, cos / sin of a twiddle)
    "b4_padded_raw_secded_lanes": (dict(N_IN=10, N_OUT=7, B=4, REQUANT=0, RELU=0, PROTECT=2, PROTECT_LANES=1), {}),
    "b2_relu_parity_lanes": (dict(N_IN=6, N_OUT=4, B=2, REQUANT=1, RELU=1, PROTECT=1, PROTECT_LANES=1), {}),
    # the parallel engine: BF butterfly units, SM spectral lanes (Q % SM != 0: zero lanes)
    "b8_bf2_sm3_padded": (dict(N_IN=20, N_OUT=13, B=8, BF=2, SM=3, REQUANT=0, RELU=0), {}),
    "b8_bf4_sm2_requant": (dict(N_IN=16, N_OUT=16, B=8, BF=4, SM=2, REQUANT=1, RELU=0), {}),
    "b16_bf8_sm2_relu": (dict(N_IN=48, N_OUT=32, B=16, BF=8, SM=2, REQUANT=1, RELU=1), {}),
    "b4_bf1_sm3_parity": (dict(N_IN=10, N_OUT=7, B=4, BF=1, SM=3, REQUANT=0, RELU=0, PROTECT=1), {}),
    "b4_bf2_sm2_secded_lanes": (
        dict(N_IN=10, N_OUT=7, B=4, BF=2, SM=2, REQUANT=0, RELU=0, PROTECT=2, PROTECT_LANES=1),
        {},
    ),
    "b2_bf1_sm3_secded": (dict(N_IN=6, N_OUT=4, B=2, BF=1, SM=3, REQUANT=1, RELU=1, PROTECT=2), {}),
}


def _assert_passed(result: dict) -> None:
    if result["failed"] or not result["passed"]:
        log = Path(result["log"]).read_text(errors="replace")
        pytest.fail(f"cocotb: {result}\n... {log[-4000:]}")


def circulant_case(spec: dict, plan_options: dict, directory: Path, seed: int = 0, in_bits: int = 8):
    """Random 8-bit vectors (extremes included), a bias, extreme + random inputs; ROMs written.
    Returns the DUT parameters, the bench config and the planned layer."""
    rng = np.random.default_rng(seed)
    b, n_in, n_out = spec["B"], spec["N_IN"], spec["N_OUT"]
    p, q = -(-n_out // b), -(-n_in // b)
    lo, hi = int_range(8)
    vectors = rng.integers(lo, hi + 1, size=(p, q, b))
    vectors[0, 0, 0], vectors[-1, -1, -1] = lo, hi
    bias = rng.integers(-(1 << 12), 1 << 12, size=n_out)
    plan = dict(in_bits=in_bits, **plan_options)
    layer = plan_circulant(vectors, bias, n_in, n_out, **plan)
    x_q = edge_inputs(rng, circulant_expand(vectors)[:n_out, :n_in], in_bits, n_random=5)
    protect, protect_lanes = spec.get("PROTECT", 0), spec.get("PROTECT_LANES", 0)
    bf, sm = spec.get("BF", 1), spec.get("SM", 1)
    files = write_circulant_roms(
        layer, directory, protection=PROTECTIONS[protect], per_lane=bool(protect_lanes), lanes=sm
    )
    shift = max(0, layer.acc_bits - 8 - 2)
    params = circulant_rtl_parameters(
        layer,
        out_bits=8,
        shift=shift,
        relu=bool(spec["RELU"]),
        requant=bool(spec["REQUANT"]),
        w_file=files["W_FILE"],
        tw_file=files["TW_FILE"],
        b_file=files["B_FILE"],
        butterflies=bf,
        lanes=sm,
    )
    params["PROTECT"] = protect
    if protect_lanes:
        params["PROTECT_LANES"] = protect_lanes
    stimulus = directory / "stimulus.npz"
    np.savez(stimulus, vectors_q=vectors, bias_q=bias, x_q=x_q)
    return params, {"parameters": params, "plan": plan, "stimulus": str(stimulus)}, layer


def edge_inputs(rng, w: np.ndarray, in_bits: int, n_random: int) -> np.ndarray:
    """All-min, all-max, zero, alternating, each output's worst case for rows 0 and -1, random."""
    lo, hi = int_range(in_bits)
    n_in = w.shape[1]
    rows = [
        np.full(n_in, lo),
        np.full(n_in, hi),
        np.zeros(n_in, dtype=np.int64),
        np.where(np.arange(n_in) % 2 == 0, lo, hi),
    ]
    for o in (0, -1):
        rows += [np.where(w[o] >= 0, lo, hi), np.where(w[o] >= 0, hi, lo)]
    rows += list(rng.integers(lo, hi + 1, size=(n_random, n_in)))
    return np.array(rows, dtype=np.int64)


def simulate(case, directory: Path, simulator: str = "icarus", flips=None, expect_fault: bool = False):
    """Run the bench on CASES[case] (or a (spec, plan options) pair); `flips` (rom_flips' format)
    are applied by the bench, which then expects `fault` as expect_fault says."""
    spec, plan_options = CASES[case] if isinstance(case, str) else case
    params, config, layer = circulant_case(spec, plan_options, directory)
    if flips is not None:
        widths = {"w_rom": 2 * layer.spectrum_bits, "tw_rom": 2 * (layer.twiddle_frac + 2), "b_rom": params["B_BITS"]}
        lanes = {"w_rom": 2, "tw_rom": 2} if spec.get("PROTECT_LANES", 0) else None
        protection = PROTECTIONS[spec.get("PROTECT", 0)]
        config.update(flips=rom_flips(flips, widths, protection, lanes), expect_fault=expect_fault)
    return run_cocotb(
        SOURCES,
        TOP,
        "test_circulant_mac",
        directory / f"build_{simulator}",
        simulator=simulator,
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config)},
    )


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_circulant_mac_matches_kernel(case, tmp_path):
    spec, plan_options = CASES[case]
    params, _, _ = circulant_case(spec, plan_options, tmp_path)
    lint_verilator(SOURCES, TOP, params)
    _assert_passed(simulate(case, tmp_path))


@pytest.mark.parametrize("case", ["b2_relu", "b8_bf2_sm3_padded", "b8_bf4_sm2_requant", "b4_bf2_sm2_secded_lanes"])
def test_back_pressure_edges_match_the_timing_model(case, tmp_path):
    """Random input gaps and out_ready back-pressure: compiler/hw's edge-by-edge model of the
    engine (CirculantModel, the plan's and the design's timing), replayed on the simulation's
    in_valid / out_ready, gives its in_ready and out_valid at every edge."""
    spec, plan_options = CASES[case]
    trace = tmp_path / "trace.json"
    params, config, layer = circulant_case(spec, plan_options, tmp_path)
    config["trace"] = str(trace)
    result = run_cocotb(
        SOURCES,
        TOP,
        "test_circulant_mac",
        tmp_path / "build",
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config)},
    )
    _assert_passed(result)
    rows = json.loads(trace.read_text())
    stage = CirculantSchedule(layer.n_in, layer.n_out, layer.block, spec.get("BF", 1), spec.get("SM", 1))
    model = CirculantModel(stage)
    stalls = 0
    for k, (edge, in_valid, in_ready, out_valid, out_ready) in enumerate(rows):
        assert edge == rows[0][0] + k, "the trace skipped a cycle"
        assert (model.in_ready(), model.out_valid()) == (bool(in_ready), bool(out_valid)), f"edge {edge}"
        stalls += out_valid and not out_ready
        model.step(bool(in_valid and in_ready), bool(out_ready))
    assert stalls > 10  # the back-pressure was real


def test_left_shift_case_really_shifts_left(tmp_path):
    """The case named so must exercise SPEC_SHIFT < 0 (the other branch of the rounding)."""
    spec, plan_options = CASES["b8_padded_left_shift"]
    _, _, layer = circulant_case(spec, plan_options, tmp_path)
    assert layer.spectral_shift < 0


def test_bench_catches_a_wrong_spectrum(tmp_path):
    """The bench must fail when one ROM word is off by one LSB."""
    spec, plan_options = CASES["b4_padded_raw"]
    params, config, _ = circulant_case(spec, plan_options, tmp_path)
    rom = Path(params["W_FILE"])
    words = rom.read_text().split()
    width = len(words[0])
    words[3] = f"{(int(words[3], 16) + 1) % (1 << (4 * width)):0{width}x}"
    rom.write_text("\n".join(words) + "\n")
    result = run_cocotb(
        SOURCES,
        TOP,
        "test_circulant_mac",
        tmp_path / "build",
        parameters=params,
        extra_env={"MPC_TB_CONFIG": json.dumps(config)},
    )
    assert result["failed"] == 2


# ROM upsets applied by the bench before the first input: name -> (case, flips, expect_fault).
# b4_padded_raw: P = 2, Q = 3, H = 3 (18 spectra words, all read per vector), 2 twiddles, 7 biases.
CIRCULANT_FLIP_CASES = {
    "secded_one_spectrum_flip_corrected": ("b4_padded_raw", 2, [("w_rom", 7, [(DATA, 3)])], False),
    "secded_one_twiddle_flip_corrected": ("b4_padded_raw", 2, [("tw_rom", 1, [(DATA, 20)])], False),
    "secded_one_bias_check_flip_corrected": ("b4_padded_raw", 2, [("b_rom", 6, [(CHECK, 0)])], False),
    "secded_two_spectrum_flips_detected": ("b4_padded_raw", 2, [("w_rom", 17, [(DATA, 0), (CHECK, 3)])], True),
    "secded_two_twiddle_flips_detected": ("b4_padded_raw", 2, [("tw_rom", 0, [(DATA, 1), (DATA, 2)])], True),
    "parity_one_spectrum_flip_detected": ("b4_padded_raw", 1, [("w_rom", 0, [(DATA, 9)])], True),
    "parity_one_bias_flip_detected": ("b4_padded_raw", 1, [("b_rom", 3, [(DATA, 1)])], True),
}


@pytest.mark.parametrize("case", CIRCULANT_FLIP_CASES, ids=list(CIRCULANT_FLIP_CASES))
def test_circulant_mac_rom_flips(case, tmp_path):
    """(a) SECDED corrects one flip in any of the three ROMs; (b) two flips in a read word raise
    fault; (c) parity detects one flip."""
    base, protect, flips, expect_fault = CIRCULANT_FLIP_CASES[case]
    spec, plan_options = CASES[base]
    protected = (dict(spec, PROTECT=protect), plan_options)
    _assert_passed(simulate(protected, tmp_path, flips=flips, expect_fault=expect_fault))


# One code per lane (PROTECT_LANES 1, SECDED) on b4_padded_raw: a spectra word is 2 lanes (re,
# im), a twiddle word 2 (cos, sin); one flip in each lane of a word (every lane the word has) is
# corrected, two in one lane are detected.
CIRCULANT_LANE_FLIP_CASES = {
    "both_lanes_one_flip_each_corrected": (
        [("w_rom", 7, [(DATA, 3, 0), (DATA, 2, 1)]), ("tw_rom", 1, [(DATA, 4, 0), (CHECK, 1, 1)])],
        False,
    ),
    "spectrum_sign_flips_in_both_lanes_corrected": ([("w_rom", 0, [(DATA, 15, 0), (DATA, 15, 1)])], False),
    "two_flips_in_one_lane_detected": ([("w_rom", 17, [(DATA, 0, 1), (CHECK, 3, 1)])], True),
}


@pytest.mark.parametrize("case", CIRCULANT_LANE_FLIP_CASES, ids=list(CIRCULANT_LANE_FLIP_CASES))
def test_circulant_mac_lane_rom_flips(case, tmp_path):
    flips, expect_fault = CIRCULANT_LANE_FLIP_CASES[case]
    _assert_passed(simulate("b4_padded_raw_secded_lanes", tmp_path, flips=flips, expect_fault=expect_fault))


@pytest.mark.slow
def test_circulant_mac_in_verilator(tmp_path):
    _assert_passed(simulate("b8_padded_left_shift", tmp_path, simulator="verilator"))


# ------------------------------------------------------------------------ yosys
def synthesize(directory: Path, params: dict) -> str:
    """synth_xilinx with parameters set by chparam; returns the log."""
    if shutil.which("yosys") is None:
        pytest.skip("yosys not found: install it (apt-get install yosys) to check synthesis")
    chparams = " ".join(f"-set {k} {json.dumps(v) if isinstance(v, str) else v}" for k, v in params.items())
    script = (
        f"read_verilog -defer {' '.join(str(s) for s in SOURCES)}; "
        f"chparam {chparams} {TOP}; synth_xilinx -top {TOP}; stat"
    )
    log = directory / "yosys.log"
    proc = subprocess.run(["yosys", "-q", "-l", str(log), "-p", script], capture_output=True, text=True, check=False)
    text = log.read_text() if log.exists() else ""
    assert proc.returncode == 0, f"yosys failed: {proc.stderr.strip() or text[-2000:]}"
    return text


@pytest.mark.parametrize("case", ["b8_requant", "b8_requant_secded"])
def test_synthesizes_without_latches(case, tmp_path):
    spec, plan_options = CASES[case]
    params, _, _ = circulant_case(spec, plan_options, tmp_path)
    log = synthesize(tmp_path, params)
    stats = log[log.rfind("Printing statistics") :]
    assert not re.search(r"Latch inferred", log)
    assert not re.search(r"^\s+(\$_?DLATCH\w*|\$dlatch\w*|LD[CP]E?)\s+\d+", stats, flags=re.MULTILINE | re.I)
    dsps = re.search(r"DSP48E1\s+(\d+)", stats)
    assert dsps and int(dsps.group(1)) == 3, "expected the one complex multiplier on 3 DSP blocks"
