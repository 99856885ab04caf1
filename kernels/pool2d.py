"""Integer max and average pooling (docs/fixed-point.md "Convolution and pooling").

NCHW per sample, pads = (top, left, bottom, right), floor mode (ceil_mode=0).

- max: padded positions are ignored (torch pads with -inf).
- average: s = sum of the window with zero padding, n = kH*kW (count_include_pad=True, the
  torch/ONNX default) or the number of in-image positions (count_include_pad=False), and

      y = floor((2*s + n) / (2*n))          (s / n rounded half up, exact)

  which for n = 2**k is requantize(s, shift=k). Hardware divides by a non-power-of-two n with
  the exact reciprocal of `avg_reciprocal`. The result is in the input's format and range.
- global average pool: the average over the whole H x W plane (n = H*W).
Imports numpy only.
"""

import numpy as np

from kernels.conv2d import LineGeometry, _pads4, conv_output_size, pad_nchw


def _windows(x: np.ndarray, kh: int, kw: int, stride: int, pads, value: int):
    """[N, C, H_out, W_out, kH*kW] windows of the padded input."""
    t, l, b, r = _pads4(pads)
    if max(t, b) >= kh or max(l, r) >= kw:
        raise ValueError("padding must be smaller than the kernel")
    x = np.asarray(x, dtype=np.int64)
    _, _, h, w = x.shape
    h_out = conv_output_size(h, kh, stride, t, b)
    w_out = conv_output_size(w, kw, stride, l, r)
    xp = pad_nchw(x, (t, l, b, r), value)
    parts = [
        xp[:, :, ky : ky + stride * (h_out - 1) + 1 : stride, kx : kx + stride * (w_out - 1) + 1 : stride]
        for ky in range(kh)
        for kx in range(kw)
    ]
    return np.stack(parts, axis=-1)


def max_pool2d(x_q: np.ndarray, kernel, stride: int | None = None, pads=0) -> np.ndarray:
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    stride = stride or kh
    lowest = np.iinfo(np.int64).min  # never chosen: every window holds an image position
    return _windows(x_q, kh, kw, stride, pads, lowest).max(axis=-1)


def round_div_half_up(s: np.ndarray, n) -> np.ndarray:
    """floor((2*s + n) / (2*n)): s / n rounded half up, exact in int64."""
    s = np.asarray(s, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    return (2 * s + n) // (2 * n)


def avg_pool2d(
    x_q: np.ndarray, kernel, stride: int | None = None, pads=0, count_include_pad: bool = True
) -> np.ndarray:
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    stride = stride or kh
    s = _windows(x_q, kh, kw, stride, pads, 0).sum(axis=-1)
    n = kh * kw if count_include_pad else window_counts(np.shape(x_q)[2:], (kh, kw), stride, pads)
    return round_div_half_up(s, n)


def window_counts(hw, kernel, stride: int, pads) -> np.ndarray:
    """[1, 1, H_out, W_out]: how many cells of each window lie inside the unpadded H x W input."""
    ones = np.ones((1, 1, *hw), dtype=np.int64)
    return _windows(ones, kernel[0], kernel[1], stride, pads, 0).sum(axis=-1)


def global_avg_pool(x_q: np.ndarray) -> np.ndarray:
    """[N, C, H, W] -> [N, C, 1, 1] (ONNX GlobalAveragePool), n = H*W."""
    x = np.asarray(x_q, dtype=np.int64)
    s = x.sum(axis=(2, 3), keepdims=True)
    return round_div_half_up(s, x.shape[2] * x.shape[3])


def avg_reciprocal(n: int, input_bits: int) -> tuple[int, int, int]:
    """(R, F, M) of the hardware division (rtl/pool2d.v) for window size n:

        u = 2*s + n + 2*n*M      (M = 2**(input_bits-1); u >= n > 0 for every window sum)
        y = floor(u * R / 2**F) - M,   R = ceil(2**F / (2n)),
        F = bit_length(U) + bit_length(2n - 1),  U = 4*n*M - n  (the largest u)

    equals floor((2*s + n) / (2n)) for every |s| <= n*M: with e = R*2n - 2**F < 2n,
    u*e < 2**F, so the reciprocal's error never reaches the next multiple of 1/(2n)."""
    m = 1 << (input_bits - 1)
    d = 2 * n
    u_max = 4 * n * m - n
    f = u_max.bit_length() + (d - 1).bit_length()
    r = -(-(1 << f) // d)
    return r, f, m


def avg_divide_reciprocal(s: np.ndarray, n: int, input_bits: int) -> np.ndarray:
    """The hardware's reciprocal division (Python ints, any width); equals round_div_half_up."""
    r, f, m = avg_reciprocal(n, input_bits)
    return np.array(
        [((2 * int(v) + n + 2 * n * m) * r >> f) - m for v in np.asarray(s).ravel()], dtype=np.int64
    ).reshape(np.shape(s))


# ---- schedule of rtl/pool2d.v ----------------------------------------------------------------
POOL_PIPELINE_EDGES = 2  # rtl/pool2d.v: an output completes at its window's last read + 3


def pool_geometry(in_shape, kernel, stride: int, pads) -> LineGeometry:
    """rtl/pool2d.v reads like rtl/conv2d.v with every channel in one word and one output per
    group: one window element per edge."""
    c, h, w = (int(d) for d in in_shape)
    return LineGeometry("pool", c, h, w, c, int(kernel[0]), int(kernel[1]), int(stride), _pads4(pads), 1, c)
