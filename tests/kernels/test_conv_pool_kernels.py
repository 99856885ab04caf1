"""kernels/conv2d.py and kernels/pool2d.py against float references (torch, float64: every
value is an integer far below 2**53, so the references are exact)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kernels.conv2d import conv2d, conv_accumulator_bits, conv_output_size
from kernels.conv_rom import conv_bias_rom_words, conv_weight_rom_words
from kernels.fixed import int_range
from kernels.pool2d import (
    avg_divide_reciprocal,
    avg_pool2d,
    avg_reciprocal,
    global_avg_pool,
    max_pool2d,
    round_div_half_up,
)

CONV_CASES = [  # (C_in, H, W, C_out, k, stride, pads (t, l, b, r))
    (1, 28, 28, 6, 5, 1, (0, 0, 0, 0)),
    (6, 12, 12, 16, 5, 1, (0, 0, 0, 0)),
    (3, 9, 8, 5, 3, 2, (1, 0, 2, 1)),
    (2, 7, 6, 3, 5, 1, (2, 2, 2, 2)),
    (2, 5, 6, 4, 1, 2, (0, 0, 0, 0)),
    (4, 10, 11, 2, 3, 3, (1, 1, 1, 1)),
]


def _t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_torch_exactly(case):
    c_in, h, w, c_out, k, s, (t, l, b, r) = case
    rng = np.random.default_rng(sum(case[:6]))
    x = rng.integers(-128, 128, size=(3, c_in, h, w))
    wq = rng.integers(-128, 128, size=(c_out, c_in, k, k))
    bq = rng.integers(-(1 << 14), 1 << 14, size=c_out)
    got = conv2d(x, wq, bq, stride=s, pads=(t, l, b, r))
    ref = F.conv2d(F.pad(_t(x), (l, r, t, b)), _t(wq), _t(bq), stride=s)
    assert got.dtype == np.int64
    assert np.array_equal(got, ref.numpy().astype(np.int64))
    assert got.shape[2:] == (conv_output_size(h, k, s, t, b), conv_output_size(w, k, s, l, r))
    assert np.array_equal(conv2d(x, wq, None, s, (t, l, b, r)), got - bq.reshape(1, -1, 1, 1))


def test_conv_accumulator_bits_holds_the_worst_case():
    rng = np.random.default_rng(1)
    wq = rng.integers(-128, 128, size=(4, 3, 3, 3))
    bq = rng.integers(-3000, 3000, size=4)
    bits = conv_accumulator_bits(wq, bq, 8)
    lo, hi = int_range(bits)
    for co in range(4):
        for sign in (1, -1):  # the input pushing every product of channel co to one sign
            x = np.where(sign * wq[co] >= 0, 127, -128)[None]
            acc = conv2d(x, wq, bq)
            assert lo <= acc.min() and acc.max() <= hi
    # the bound is the dense rule over C_in*kH*kW weights: one bit less would not do
    worst = int((np.abs(wq).reshape(4, -1).sum(1) * 128 + np.abs(bq)).max())
    assert worst > (1 << (bits - 2)) - 1


POOL_CASES = [  # (k, stride, pads (t, l, b, r))
    (2, 2, (0, 0, 0, 0)),
    (3, 2, (1, 1, 1, 1)),
    (3, 1, (1, 0, 1, 1)),
    (2, 1, (0, 0, 0, 0)),
    (3, 3, (0, 0, 0, 0)),
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_matches_torch(case):
    k, s, (t, l, b, r) = case
    x = np.random.default_rng(k * 10 + s).integers(-128, 128, size=(2, 3, 9, 8))
    ref = F.max_pool2d(F.pad(_t(x), (l, r, t, b), value=-np.inf), k, s)
    assert np.array_equal(max_pool2d(x, k, s, (t, l, b, r)), ref.numpy().astype(np.int64))
    if t == l == b == r:  # torch's own symmetric padding
        assert np.array_equal(max_pool2d(x, k, s, t), F.max_pool2d(_t(x), k, s, t).numpy())


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("include_pad", [True, False])
def test_avg_pool_is_torch_average_rounded_half_up(case, include_pad):
    k, s, (t, l, b, r) = case
    x = np.random.default_rng(k * 10 + s).integers(-128, 128, size=(2, 3, 9, 8))
    x[0, 0] = -128  # ties and extremes
    x[0, 1] = 127
    got = avg_pool2d(x, k, s, (t, l, b, r), count_include_pad=include_pad)
    if t == l and b == r and t == b:
        mean = F.avg_pool2d(_t(x), k, s, t, count_include_pad=include_pad).numpy()
        # float64 mean is within 1e-9 of sum/n, which is >= 1/(2n) from any rounding boundary
        assert np.array_equal(got, np.floor(mean + 0.5).astype(np.int64))
    ones = np.ones_like(x)
    n = k * k if include_pad else F.avg_pool2d(F.pad(_t(ones), (l, r, t, b)), k, s, divisor_override=1).numpy()
    sums = F.avg_pool2d(F.pad(_t(x), (l, r, t, b)), k, s, divisor_override=1).numpy()
    want = np.floor(sums / n + 0.5).astype(np.int64)
    assert np.array_equal(got, want)
    assert got.min() >= -128 and got.max() <= 127


def test_global_avg_pool():
    x = np.random.default_rng(2).integers(-128, 128, size=(3, 4, 7, 7))
    want = np.floor(_t(x).mean(dim=(2, 3), keepdim=True).numpy() + 0.5).astype(np.int64)
    assert np.array_equal(global_avg_pool(x), want)
    assert np.array_equal(global_avg_pool(x), avg_pool2d(x, 7, 1))


def test_round_div_half_up_ties():
    assert list(round_div_half_up(np.array([-3, -2, -1, 1, 2, 3, 6, -6]), 4)) == [
        -1,
        0,
        0,
        0,
        1,
        1,
        2,
        -1,
    ]  # -0.75 -1, -0.5 -> 0, 0.5 -> 1, 1.5 -> 2, -1.5 -> -1


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 9, 12, 25, 49, 64, 100, 196])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_avg_reciprocal_is_exact_for_every_window_sum(n, bits):
    m = 1 << (bits - 1)
    s = np.arange(-n * m, n * (m - 1) + 1)
    assert np.array_equal(avg_divide_reciprocal(s, n, bits), round_div_half_up(s, n))
    r, f, _ = avg_reciprocal(n, bits)
    assert r * 2 * n >= 1 << f


def test_conv_rom_layout():
    w = np.arange(2 * 3 * 2 * 1).reshape(2, 3, 2, 1) - 6  # C_out 2, C_in 3, 2x1
    words = conv_weight_rom_words(w, p_co=2, p_ci=2, bits=8)
    assert len(words) == 1 * 2 * 1 * 2  # NCG * kH * kW * NCW
    lane = lambda word, i: ((word >> (8 * i)) & 0xFF) - (256 if (word >> (8 * i + 7)) & 1 else 0)
    # word ((g*kH + ky)*kW + kx)*NCW + cw, lane p*P_CI + l = W[p, cw*2 + l, ky, kx]
    for ky in range(2):
        for cw in range(2):
            word = words[ky * 2 + cw]
            for p in range(2):
                for li in range(2):
                    ci = cw * 2 + li
                    assert lane(word, p * 2 + li) == (w[p, ci, ky, 0] if ci < 3 else 0)
    assert conv_bias_rom_words(np.array([-1, 2, 3]), 2, 4) == [0x2F, 0x03]
