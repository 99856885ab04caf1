"""kernels.conv2d with `group` (depthwise and grouped): hand-computed cases, the block-diagonal
equivalence the frontend's expansion relies on, and the accumulator width of a depthwise conv."""

import numpy as np
import pytest

from kernels import conv2d, conv_accumulator_bits


def test_depthwise_each_channel_is_convolved_with_its_own_kernel_only():
    x = np.array([[[[1, 2], [3, 4]], [[10, 20], [30, 40]]]])  # [1, 2, 2, 2]
    w = np.array([[[[1, 0], [0, 1]]], [[[0, -1], [2, 0]]]])  # [2, 1, 2, 2]
    b = np.array([5, -7])
    acc = conv2d(x, w, b, stride=1, pads=0, group=2)
    # channel 0: 1*1 + 4*1 + 5 = 10; channel 1: -20 + 2*30 - 7 = 33 (channel 0's pixels never enter it)
    np.testing.assert_array_equal(acc, [[[[10]], [[33]]]])
    assert acc.dtype == np.int64


def test_depthwise_with_stride_2_and_tensorflow_asymmetric_padding():
    x = np.arange(1, 17).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 3, 3), int)
    # pads [0, 0, 1, 1] (TF "SAME" at stride 2): windows at rows/cols 0 and 2, a zero row/column after
    acc = conv2d(
        np.concatenate([x, -x], axis=1), np.concatenate([w, 2 * w]), None, stride=2, pads=[0, 0, 1, 1], group=2
    )
    # window (0, 0): 1+2+3+5+6+7+9+10+11 = 54; (0, 2): 3+4+7+8+11+12 = 45; (2, 0): 9+10+11+13+14+15 = 72;
    # (2, 2): 11+12+15+16 = 54; channel 1 = -2 x channel 0
    expected = np.array([[54, 45], [72, 54]])
    np.testing.assert_array_equal(acc[0, 0], expected)
    np.testing.assert_array_equal(acc[0, 1], -2 * expected)


def test_grouped_conv_equals_its_block_diagonal_group_1_expansion():
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(2, 4, 5, 5))
    w = rng.integers(-128, 128, size=(6, 2, 3, 3))  # group 2: outputs 0..2 read inputs 0..1, 3..5 read 2..3
    b = rng.integers(-1000, 1000, size=6)
    full = np.zeros((6, 4, 3, 3), int)
    full[:3, :2], full[3:, 2:] = w[:3], w[3:]
    np.testing.assert_array_equal(conv2d(x, w, b, 1, 1, group=2), conv2d(x, full, b, 1, 1))


def test_depthwise_equals_its_diagonal_expansion():
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, size=(2, 3, 6, 5))
    w = rng.integers(-128, 128, size=(3, 1, 3, 3))
    full = np.zeros((3, 3, 3, 3), int)
    full[np.arange(3), np.arange(3)] = w[:, 0]
    np.testing.assert_array_equal(conv2d(x, w, None, 2, [0, 0, 1, 1], group=3), conv2d(x, full, None, 2, [0, 0, 1, 1]))


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "group"),
    [((1, 4, 3, 3), (4, 1, 3, 3), 3), ((1, 4, 3, 3), (4, 1, 3, 3), 1), ((1, 4, 3, 3), (3, 2, 3, 3), 2)],
)
def test_channels_that_do_not_fit_the_group_are_refused(x_shape, w_shape, group):
    with pytest.raises(ValueError):
        conv2d(np.zeros(x_shape, int), np.zeros(w_shape, int), None, group=group)


def test_a_depthwise_accumulator_sums_kh_kw_products_only():
    w = np.full((64, 1, 3, 3), -128)  # worst case: 9 products of 128 * 128 per channel
    assert conv_accumulator_bits(w, None, 8) == 19  # |acc| <= 9 * 2**14 = 147456 < 2**18, not 64 * 9 terms
    assert conv_accumulator_bits(w, np.array([1 << 20] * 64), 8) == 22
