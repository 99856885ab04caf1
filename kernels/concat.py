"""Concatenation along the channel axis of two activation streams (docs/fixed-point.md "concat
(channel join)"): each input brought to the common format, the coarser of the two, by
kernels.requantize's rounding (round half up; it never saturates), then joined along axis 1.

Streams: an image [C, H, W] streams channel-last (pixel by pixel, the C channels of a pixel
together), so the concatenated image interleaves per pixel: a's channels of a pixel, then b's.
A vector [F] streams a whole, then b whole."""

import numpy as np

from kernels.requantize import requantize


def concat_format(bits: list[int], fracs: list[int]) -> tuple[int, int, list[int]]:
    """The common format (bits, frac) of the inputs Q(bits[i], fracs[i]) and each input's
    right shift into it: the coarsest frac and the widest bits, so that no input saturates."""
    frac = min(fracs)
    return max(bits), frac, [f - frac for f in fracs]


def concat(xs: list[np.ndarray], shifts: list[int], bits: int) -> np.ndarray:
    """requantize(xs[i], shifts[i], bits) joined along axis 1 ([N, C, H, W] or [N, F])."""
    if len(xs) != len(shifts) or len(xs) < 2:
        raise ValueError(f"concat takes two or more inputs with a shift each, got {len(xs)} and {len(shifts)}")
    if any(s < 0 for s in shifts):
        raise ValueError(f"concat aligns by right shifts >= 0, got {shifts}")
    arrays = [np.asarray(x, dtype=np.int64) for x in xs]
    if len({a.shape[:1] + a.shape[2:] for a in arrays}) != 1:
        raise ValueError(f"concat joins along axis 1 only; got shapes {[a.shape for a in arrays]}")
    return np.concatenate([requantize(a, s, bits, relu=False) for a, s in zip(arrays, shifts)], axis=1)


def concat_stream_order(channels: list[int], pixels: int) -> list[tuple[int, int]]:
    """For every element of the concatenated stream (channel-last, `pixels` = H * W, 1 for a
    vector), (which input, its index in that input's own stream)."""
    order = []
    for p in range(pixels):
        for i, c in enumerate(channels):
            order += [(i, p * c + k) for k in range(c)]
    return order
