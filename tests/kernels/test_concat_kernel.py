"""kernels.concat: the channel join of docs/fixed-point.md "concat (channel join)", on hand-computed cases."""

import numpy as np
import pytest

import kernels
from kernels.concat import concat_format, concat_stream_order


def test_common_format_is_the_coarser_frac_and_the_wider_bits():
    assert concat_format([8, 8], [4, 2]) == (8, 2, [2, 0])
    assert concat_format([6, 8], [3, 5]) == (8, 3, [0, 2])
    assert concat_format([8, 8], [-1, -1]) == (8, -1, [0, 0])


def test_same_format_is_a_plain_join_along_channels():
    a = np.arange(2 * 2 * 3).reshape(1, 2, 3, 2) - 5  # [N, C=2, H=3, W=2]
    b = -np.arange(3 * 3 * 2).reshape(1, 3, 3, 2)
    y = kernels.concat([a, b], [0, 0], 8)
    assert y.shape == (1, 5, 3, 2)
    assert np.array_equal(y[:, :2], a) and np.array_equal(y[:, 2:], b)


def test_the_finer_input_rounds_half_up_into_the_coarser_format():
    # a in Q(8, 3): 5/8, -6/8, 127/8, -128/8, 1/8 -> Q(8, 1) (shift 2), in halves: 1.25 -> 1, -1.5 -> -1 (half up),
    # 31.75 -> 32, -32 -> -32, 0.25 -> 0
    a = np.array([[5, -6, 127, -128, 1]])
    b = np.array([[1, -2]])
    assert kernels.concat([a, b], [2, 0], 8).tolist() == [[1, -1, 32, -32, 0, 1, -2]]


def test_vectors_join_and_shapes_are_checked():
    assert kernels.concat([np.array([[1, 2]]), np.array([[3]])], [0, 0], 8).tolist() == [[1, 2, 3]]
    with pytest.raises(ValueError, match="axis 1 only"):
        kernels.concat([np.zeros((1, 2, 3, 3)), np.zeros((1, 2, 2, 3))], [0, 0], 8)
    with pytest.raises(ValueError, match="right shifts"):
        kernels.concat([np.zeros((1, 2)), np.zeros((1, 2))], [0, -1], 8)


def test_the_stream_interleaves_per_pixel():
    # a: 2 channels, b: 1 channel, 2 pixels: a0 a1 b0 | a2 a3 b1 (each input's own channel-last stream)
    assert concat_stream_order([2, 1], 2) == [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1)]
    x_a = np.arange(2 * 2).reshape(1, 2, 1, 2)
    x_b = 10 + np.arange(2).reshape(1, 1, 1, 2)
    y = kernels.concat([x_a, x_b], [0, 0], 8)
    stream = {0: x_a[0].transpose(1, 2, 0).ravel(), 1: x_b[0].transpose(1, 2, 0).ravel()}
    want = [stream[i][k] for i, k in concat_stream_order([2, 1], 2)]
    assert y[0].transpose(1, 2, 0).ravel().tolist() == want
