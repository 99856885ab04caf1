"""kernels.add: the residual join of docs/fixed-point.md "add (residual join)", on hand-computed cases."""

import numpy as np
import pytest

import kernels
from kernels.add import MAX_ALIGN_SHIFT, add_sum_bits
from kernels.fixed import int_range


def test_same_format_sums_exactly_and_saturates():
    a, b = np.array([1, -3, 100, -100, 0]), np.array([2, 5, 100, -100, 0])
    assert list(kernels.add(a, b, 0, 0, 0, 8, relu=False)) == [3, 2, 127, -128, 0]


def test_rounding_ties_go_half_up():
    # sums 1, -1, 3, -3, 2 at shift 1: 0.5 -> 1, -0.5 -> 0, 1.5 -> 2, -1.5 -> -1, 1 -> 1
    a = np.array([1, -1, 3, -3, 2])
    assert list(kernels.add(a, np.zeros(5, np.int64), 0, 0, 1, 8, relu=False)) == [1, 0, 2, -1, 1]
    # and ties made of both inputs: 3 + (-6) = -3 -> -1.5 -> -1; 5 + 6 = 11 -> 5.5 -> 6
    assert list(kernels.add(np.array([3, 5]), np.array([-6, 6]), 0, 0, 1, 8, relu=False)) == [-1, 6]


def test_different_fracs_align_to_the_finer_one():
    # a in Q(8, 4), b in Q(8, 2): b shifts left by 2; output Q(8, 3): shift 1
    # 5/16 + 3/4 = 17/16 -> 8.5 eighths -> 9;  -7/16 - 1/4 = -11/16 -> -5.5 eighths -> -5
    assert list(kernels.add(np.array([5, -7]), np.array([3, -1]), 0, 2, 1, 8, relu=False)) == [9, -5]
    # a in Q(8, 1), b in Q(8, 3): a shifts left by 2; output Q(8, 3): 3/2 - 5/8 = 7/8 -> 7
    assert list(kernels.add(np.array([3]), np.array([-5]), 2, 0, 0, 8, relu=False)) == [7]
    # a wide alignment: -128 + 127 * 2**-10 = -127.876 -> Q(8, 0): -128
    assert list(kernels.add(np.array([-128]), np.array([127]), 10, 0, 10, 8, relu=False)) == [-128]


def test_relu_is_fused_after_the_clip():
    a, b = np.array([-10, 10, 4, 127]), np.array([3, -20, 4, 127])
    assert list(kernels.add(a, b, 0, 0, 0, 8, relu=True)) == [0, 0, 8, 127]


def test_a_narrow_output_saturates_at_its_own_range():
    assert list(kernels.add(np.array([7, -8, 3]), np.array([7, -8, -1]), 0, 0, 0, 4, relu=False)) == [7, -8, 2]


def test_equals_the_real_sum_rounded_half_up_and_saturated():
    rng = np.random.default_rng(0)
    for fa, fb, fo, bits, relu in [(4, 2, 3, 8, False), (1, 5, 0, 6, True), (3, 3, 3, 8, False), (-2, 0, -3, 4, False)]:
        a, b = rng.integers(-128, 128, 500), rng.integers(-128, 128, 500)
        fc = max(fa, fb)
        y = kernels.add(a, b, fc - fa, fc - fb, fc - fo, bits, relu)
        real = a * 2.0**-fa + b * 2.0**-fb  # exact in float64 at these sizes
        lo, hi = int_range(bits)
        want = np.clip(np.floor(real * 2.0**fo + 0.5), 0 if relu else lo, hi)
        assert np.array_equal(y, want), (fa, fb, fo, bits, relu)


def test_with_a_zero_input_it_is_requantize():
    acc = np.arange(-300, 300)
    want = kernels.requantize(acc, 3, 8, True)
    assert np.array_equal(kernels.add(acc, np.zeros_like(acc), 0, 0, 3, 8, relu=True), want)
    assert np.array_equal(kernels.add(np.zeros_like(acc), acc, 0, 0, 3, 8, relu=True), want)


def test_the_sum_width_holds_every_extreme_input():
    for bits_a, shift_a, bits_b, shift_b in [(8, 0, 8, 0), (8, 3, 4, 0), (2, 0, 8, 9)]:
        lo, hi = int_range(add_sum_bits(bits_a, shift_a, bits_b, shift_b))
        (alo, ahi), (blo, bhi) = int_range(bits_a), int_range(bits_b)
        assert lo <= (alo << shift_a) + (blo << shift_b) and (ahi << shift_a) + (bhi << shift_b) <= hi
    assert add_sum_bits(8, 0, 8, 0) == 9


@pytest.mark.parametrize(
    "args, match",
    [
        ((-1, 0, 0), "left shifts"),
        ((0, MAX_ALIGN_SHIFT + 1, 0), "left shifts"),
        ((0, 0, -1), "output shift"),
        ((0, 0, 63), "output shift"),
    ],
)
def test_shifts_out_of_range_are_refused(args, match):
    with pytest.raises(ValueError, match=match):
        kernels.add(np.zeros(2), np.zeros(2), *args, 8, False)


def test_two_shapes_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        kernels.add(np.zeros(2), np.zeros(3), 0, 0, 0, 8, False)
