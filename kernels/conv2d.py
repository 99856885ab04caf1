"""Integer 2-D convolution (docs/fixed-point.md "Convolution and pooling").

Per sample, NCHW; weights [C_out, C_in, kH, kW]; groups = 1; zero padding
pads = (top, left, bottom, right); one stride for both axes:

    acc[co, y, x] = b[co] + sum_{ci, ky, kx} W[co, ci, ky, kx] * x_pad[ci, y*s + ky, x*s + kx]

exact in int64. Imports numpy only.
"""
import numpy as np

from kernels.fixed import bits_for_signed


def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int) -> int:
    """Output length of one axis (floor mode, as torch/ONNX with ceil_mode=0)."""
    n = (size + pad_before + pad_after - kernel) // stride + 1
    if n < 1:
        raise ValueError(f"kernel {kernel} does not fit in {size} + padding")
    return n


def _pads4(pads) -> tuple[int, int, int, int]:
    if isinstance(pads, int):
        return (pads,) * 4
    t, l, b, r = (int(p) for p in pads)
    if min(t, l, b, r) < 0:
        raise ValueError("padding must be >= 0")
    return t, l, b, r


def pad_nchw(x: np.ndarray, pads, value: int = 0) -> np.ndarray:
    t, l, b, r = _pads4(pads)
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def conv2d(x_q: np.ndarray, w_q: np.ndarray, b_q: np.ndarray | None, stride: int = 1,
           pads=0) -> np.ndarray:
    """x_q [N, C_in, H, W] ints, w_q [C_out, C_in, kH, kW], b_q [C_out] or None
    -> [N, C_out, H_out, W_out] int64 accumulators."""
    x = np.asarray(x_q, dtype=np.int64)
    w = np.asarray(w_q, dtype=np.int64)
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
        raise ValueError(f"shapes {x.shape} and {w.shape} are not NCHW / [C_out, C_in, kH, kW]")
    if stride < 1:
        raise ValueError("stride must be >= 1")
    t, l, b, r = _pads4(pads)
    n, _, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    h_out = conv_output_size(h, kh, stride, t, b)
    w_out = conv_output_size(wd, kw, stride, l, r)
    xp = pad_nchw(x, (t, l, b, r))
    acc = np.zeros((n, c_out, h_out, w_out), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, :, ky:ky + stride * (h_out - 1) + 1:stride,
                       kx:kx + stride * (w_out - 1) + 1:stride]       # [N, C_in, H_out, W_out]
            acc += np.einsum("nchw,oc->nohw", patch, w[:, :, ky, kx])
    if b_q is not None:
        acc += np.asarray(b_q, dtype=np.int64).reshape(1, c_out, 1, 1)
    return acc


def conv_accumulator_bits(w_q: np.ndarray, b_q: np.ndarray | None, input_bits: int) -> int:
    """Accumulator width no input in Q(input_bits) can overflow: dense's rule over each
    output channel's C_in*kH*kW weights (padding only removes terms)."""
    w = np.abs(np.asarray(w_q, dtype=np.int64)).reshape(np.shape(w_q)[0], -1)
    worst = w.sum(axis=1) * (1 << (input_bits - 1))
    if b_q is not None:
        worst = worst + np.abs(np.asarray(b_q, dtype=np.int64))
    return bits_for_signed(int(worst.max(initial=0)))
