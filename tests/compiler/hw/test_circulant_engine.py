"""The parallel circulant engine's schedule, cost, ROM layout and the plan's choice of BF / SM
(kernels.circulant_mac.CirculantSchedule, compiler/hw/circulant.py); fast: no simulation (the
cocotb bench, tests/sim/test_circulant_rtl.py, checks the same schedule against the RTL)."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.hw import circulant as hw_circulant
from compiler.hw import dense as hw_dense
from compiler.hw import timing as hw_timing
from kernels.circulant_mac import CirculantSchedule, plan_circulant
from kernels.circulant_rom import spectra_rom_words, write_circulant_roms
from kernels.dense_mac import dense_schedule


@pytest.mark.parametrize("n_in, n_out, b", [(64, 32, 8), (10, 7, 4), (20, 13, 8), (6, 4, 2), (784, 300, 16)])
def test_one_butterfly_one_lane_is_the_original_engine(n_in, n_out, b):
    L, H = b.bit_length() - 1, b // 2 + 1
    p, q = -(-n_out // b), -(-n_in // b)
    s = CirculantSchedule(n_in, n_out, b, 1, 1)
    per_in, per_out = b + L * b // 2 + H, q * H + 1 + L * b // 2  # the one-multiplier engine's terms
    assert (s.per_input_block, s.per_out) == (per_in, per_out)
    # each output block is handed to the output buffer and emitted while the next one computes
    step, last = max(per_out + 1, b), n_out - (p - 1) * b
    assert s.latency == n_in + q * per_in + per_out + (p - 1) * step + last + 1
    # the input buffer frees at the last fill, so the next vector loads while this one computes
    assert s.release == (q - 1) * per_in + b
    assert s.interval == max(max(q * per_in + per_out + 1, last) + (p - 1) * step, s.release + n_in)
    assert s.multipliers == 3 and s == CirculantSchedule(n_in, n_out, b)


@pytest.mark.parametrize("n_in, n_out, b, bf, sm", [(64, 96, 8, 4, 4), (20, 13, 8, 2, 3), (48, 32, 16, 8, 2)])
def test_the_parallel_schedule_is_the_header_formula(n_in, n_out, b, bf, sm):
    L, H = b.bit_length() - 1, b // 2 + 1
    p, q = -(-n_out // b), -(-n_in // b)
    s = CirculantSchedule(n_in, n_out, b, bf, sm)
    per_in = b // bf + L * b // (2 * bf) + -(-H // bf)
    per_out = -(-q // sm) * H + 1 + L * b // (2 * bf)
    assert (s.per_input_block, s.per_out) == (per_in, per_out)
    step, last = max(per_out + 1, b), n_out - (p - 1) * b
    assert s.latency == n_in + q * per_in + per_out + (p - 1) * step + last + 1 == s.output_edge(n_out - 1)
    assert [s.output_edge(o) for o in (0, b)] == [
        n_in + q * per_in + per_out + 2,
        n_in + q * per_in + per_out + 2 + step,
    ]
    assert s.release == (q - 1) * per_in + b // bf
    assert s.restart == max(q * per_in + per_out + 1, last) + (p - 1) * step
    assert s.interval == max(s.restart, s.release + n_in)
    assert s.multipliers == 3 * max(bf, sm)
    c = hw_circulant.circulant_cost(n_in, n_out, b, 16, 16, 12, bf, sm)
    assert (c.interval, c.tail, c.output_span) == (s.interval, s.compute_cycles + 1, s.output_span)
    assert (c.input_release, c.restart) == (s.release, s.restart)
    # spectra ROM: P*H*ceil(Q/SM) words of SM lanes (padding lanes stored too)
    assert c.weight_rom_bits == p * H * -(-q // sm) * sm * 32 + (b // 2) * 36


@pytest.mark.parametrize("bf, sm", [(3, 1), (8, 1), (0, 1), (1, 0), (1, 4)])
def test_impossible_splits_are_refused(bf, sm):
    with pytest.raises(ValueError):
        CirculantSchedule(20, 13, 8, bf, sm)  # b/2 = 4, Q = 3


def test_split_takes_the_fewest_lanes_for_its_cycles():
    # Q = 8: 5 lanes take 2 MAC cycles per bin, as 4 do
    assert hw_circulant.circulant_split(64, 96, 8, 5) == (4, 4)
    assert hw_circulant.circulant_split(64, 96, 8, 2) == (2, 2)
    assert hw_circulant.circulant_split(96, 48, 8, 16) == (4, 12)
    assert hw_circulant.circulant_schedule(64, 96, 8, 1).multipliers == 3  # at least one complex multiplier


def test_the_plan_takes_the_fewest_multipliers_meeting_the_budget():
    """The 64-96-48-10 MLP's hidden layers at b = 8 against the dense engine's budgets."""
    for n_in, n_out in ((64, 96), (96, 48)):
        for budget in (384, 768, 1200):
            s, _ = hw_circulant.choose_schedule(n_in, n_out, 8, budget)
            assert s.interval <= budget
            fewer = hw_circulant.circulant_schedule(n_in, n_out, 8, s.multipliers - 3)
            assert s.multipliers == 3 or fewer.interval > budget
    # the dense engine's budget with 16 multipliers on the first layer: 384 cycles
    assert dense_schedule(64, 96, 16).words == 384
    first, _ = hw_circulant.choose_schedule(64, 96, 8, 384)
    second, _ = hw_circulant.choose_schedule(96, 48, 8, 384)
    assert (first.bf, first.sm, first.multipliers, first.interval) == (2, 3, 9, 380)
    assert (second.bf, second.sm, second.multipliers, second.interval) == (2, 2, 6, 384)
    # no split meets an impossible budget: the fastest
    fastest, why = hw_circulant.choose_schedule(64, 96, 8, 10)
    assert "fastest" in why and fastest.interval == min(
        hw_circulant.circulant_schedule(64, 96, 8, m).interval for m in range(3, 60)
    )


@pytest.mark.parametrize("multipliers", [3, 6, 9, 12, 18, 24])
def test_at_equal_multipliers_the_fft_layer_is_faster_than_dense(multipliers):
    for n_in, n_out in ((64, 96), (96, 48)):
        s = hw_circulant.circulant_schedule(n_in, n_out, 8, multipliers)
        assert s.multipliers <= multipliers
        assert s.interval < dense_schedule(n_in, n_out, multipliers).words


def _layer(q=3, p=2, b=8, seed=0):
    rng = np.random.default_rng(seed)
    vectors = rng.integers(-128, 128, size=(p, q, b))
    return plan_circulant(vectors, rng.integers(-50, 50, size=p * b - 3), q * b - 4, p * b - 3, in_bits=8)


@pytest.mark.parametrize("lanes", [1, 2, 3, 4])
def test_spectra_rom_lanes(lanes):
    layer = _layer()
    p, q, h = layer.spectra_re.shape
    words = spectra_rom_words(layer, lanes)
    groups = -(-q // lanes)
    assert len(words) == p * h * groups
    sb, mask = layer.spectrum_bits, (1 << layer.spectrum_bits) - 1
    for i in range(p):
        for k in range(h):
            for g in range(groups):
                word = words[(i * h + k) * groups + g]
                for u in range(lanes):
                    j = g * lanes + u
                    re, im = (word >> (2 * sb * u)) & mask, (word >> (2 * sb * u + sb)) & mask
                    want = (layer.spectra_re[i, j, k], layer.spectra_im[i, j, k]) if j < q else (0, 0)
                    assert (re, im) == (want[0] & mask, want[1] & mask)


def test_protected_spectra_words_are_one_code_per_word_or_per_part(tmp_path):
    from kernels.rom_protect import codeword_bits

    layer = _layer()
    for per_lane in (False, True):
        files = write_circulant_roms(layer, tmp_path / str(per_lane), protection="secded", per_lane=per_lane, lanes=2)
        digits = len(open(files["W_FILE"]).readline().strip())
        width = codeword_bits(64, "secded", 4 if per_lane else 1)
        assert digits == -(-width // 4)


def _stage(n_in, n_out, b, multipliers):
    s = hw_circulant.circulant_schedule(n_in, n_out, b, multipliers)
    return hw_circulant.circulant_cost(n_in, n_out, b, 16, 16, 12, s.bf, s.sm), s


def _dense(n_in, n_out, p):
    return hw_dense.dense_cost(n_in, n_out, p, 8, 12), dense_schedule(n_in, n_out, p)


@pytest.mark.parametrize(
    "chain, exact",
    [
        ([_stage(64, 96, 8, 6), _stage(96, 48, 8, 9), _dense(48, 10, 1)], True),
        ([_dense(64, 32, 7), _stage(32, 16, 8, 6), _dense(16, 10, 1)], True),
        ([_stage(64, 32, 16, 3), _stage(32, 12, 4, 3), _stage(12, 10, 4, 3)], True),
        # the second engine's loading is its slowest part, and while it is held the first one
        # computes a block ahead: the closed form is an upper bound, the design takes the model
        ([_stage(64, 96, 8, 12), _stage(96, 48, 8, 12), _dense(48, 10, 2)], False),
    ],
    ids=["mlp-mixed", "dense-first", "circulant-all", "mlp-12"],
)
def test_timing_model_and_the_closed_forms_for_parallel_engines(chain, exact):
    costs, stages = zip(*chain)
    run = hw_timing.run_stream(tuple(stages), 10, 8)
    assert run.latency == hw_timing.design_latency(stages[0].n_in, list(costs))
    (interval,) = set(np.diff(run.outputs[2:]))
    closed = hw_timing.design_interval(stages[0].n_in, list(costs), 10)
    assert interval == closed if exact else interval < closed
