import numpy as np
import pytest

import kernels


def test_requantize_rounds_half_up_and_saturates():
    acc = np.array([-9, -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1000, -1000])
    y = kernels.requantize(acc, shift=2, bits=4, relu=False)
    # floor((acc + 2) / 4): ties (acc = 4k + 2) go toward +inf
    expected = np.clip(np.floor((acc + 2) / 4), -8, 7)
    assert np.array_equal(y, expected)
    assert kernels.requantize(np.array([-6]), 2, 8, False)[0] == -1  # -1.5 -> -1 (half up)
    assert kernels.requantize(np.array([6]), 2, 8, False)[0] == 2  # 1.5 -> 2


def test_requantize_relu_and_zero_shift():
    acc = np.array([-300, -1, 0, 5, 300])
    assert list(kernels.requantize(acc, 0, 8, relu=True)) == [0, 0, 0, 5, 127]
    assert list(kernels.requantize(acc, 0, 8, relu=False)) == [-128, -1, 0, 5, 127]
    with pytest.raises(ValueError):
        kernels.requantize(acc, -1, 8, False)


def test_bits_for_signed():
    assert kernels.bits_for_signed(0) == 1
    assert kernels.bits_for_signed(1) == 2
    assert kernels.bits_for_signed(127) == 8
    assert kernels.bits_for_signed(128) == 9  # +128 needs 9 bits, even though -128 fits in 8


def test_accumulator_width_holds_every_extreme_input():
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, size=(6, 40))
    b = rng.integers(-5000, 5000, size=6)
    bits = kernels.dense_accumulator_bits(w, b, input_bits=8)
    lo, hi = kernels.int_range(bits)
    # the worst inputs for each output push every product to the same sign
    for sign in (1, -1):
        x = np.where(w >= 0, 127 if sign > 0 else -128, -128 if sign > 0 else 127)
        for o in range(6):
            acc = kernels.dense_mac(x[o][None, :], w, b)[0, o]
            assert lo <= acc <= hi


def test_quantize_half_even_and_saturation():
    x = np.array([0.125, 0.375, -0.125, 100.0, -100.0], np.float32)
    assert list(kernels.quantize(x, frac=2, bits=8)) == [0, 2, 0, 127, -128]
    assert list(kernels.quantize(x, frac=2, bits=4)) == [0, 2, 0, 7, -8]


def test_argmax_ties_go_to_lowest_index():
    assert list(kernels.argmax(np.array([[3, 7, 7, 1], [-5, -5, -5, -5]]))) == [1, 0]
