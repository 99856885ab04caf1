"""The stream order of a dense layer's inputs after a flattened image (pure index math, numpy only).

Convolution and pooling engines stream a [C, H, W] tensor channel-last (for y, for x, for c),
while the graph's flatten is row-major C*H*W; so the dense layer after a flatten of a 4-D
tensor stores its weight columns permuted. Lowering (a block-circulant layer's stream-order
weights), the dense engine and the circulant pass all use these.
"""

from __future__ import annotations

import numpy as np


def stream_weight_matrix(w_q: np.ndarray, input_chw) -> np.ndarray:
    """A dense layer's weights with columns in the order its engine receives inputs.

    The dense layer after a flatten of a 4-D tensor (node attr `input_chw`) stores
    W_hw[:, (y*W + x)*C + c] = W[:, c*H*W + y*W + x]. (A block-circulant layer instead reads a
    channel-last flatten, attr `order` = "hwc", and holds this stream-order matrix as its
    weights: docs/fixed-point.md "flatten".)"""
    if not input_chw:
        return w_q
    c, h, w = input_chw
    n_out = w_q.shape[0]
    return w_q.reshape(n_out, c, h, w).transpose(0, 2, 3, 1).reshape(n_out, c * h * w)


def stream_order(shape, input_chw) -> np.ndarray:
    """[n_out, n_in]: the flat index into the graph's weight matrix of each stream-order entry."""
    return stream_weight_matrix(np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape), input_chw)


def unstream(w_stream: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The graph's weight matrix from its stream-order copy (stream_order's inverse)."""
    flat = np.empty(w_stream.size, dtype=w_stream.dtype)
    flat[order.ravel()] = w_stream.ravel()
    return flat.reshape(order.shape)


def stream_reorders(chw) -> bool:
    """Whether the channel-last stream order of a [C, H, W] image differs from row-major C*H*W."""
    c, h, w = chw
    return c > 1 and h * w > 1
