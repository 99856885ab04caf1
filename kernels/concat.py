"""Concatenation along the channel axis of two activation streams (docs/fixed-point.md "concat
(channel join)"): each input brought to the common format, the coarser of the two, by
kernels.requantize's rounding (round half up; it never saturates), then joined along axis 1.

Streams: an image [C, H, W] streams channel-last (pixel by pixel, the C channels of a pixel
together), so the concatenated image interleaves per pixel: a's channels of a pixel, then b's.
A vector [F] streams a whole, then b whole."""

from dataclasses import dataclass

import numpy as np

from kernels.activation import TABLE_BUFFER, TableSchedule
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


@dataclass(frozen=True)
class ConcatSchedule:
    """rtl/concat.v: the joined stream one element per handshake through a 2-entry output FIFO,
    the activation engine's schedule (kernels.activation.TableSchedule) over the joined stream;
    element k is taken from the input concat_stream_order names (a's channels of a pixel, then
    b's), so in_a_ready is high only while a pixel's a-elements are due and in_b_ready only while
    its b-elements are."""

    channels: tuple[int, int]  # C_A, C_B: elements of each input per pixel
    pixels: int  # H * W of an image, 1 for vectors

    @property
    def n_in(self) -> int:
        """Elements taken per frame, from both inputs together (= n_out)."""
        return self.pixels * sum(self.channels)

    @property
    def n_out(self) -> int:
        return self.n_in

    @property
    def table(self) -> TableSchedule:
        return TableSchedule(self.n_in)

    @property
    def compute_cycles(self) -> int:
        return self.n_in

    @property
    def latency(self) -> int:
        return self.table.latency

    @property
    def buffer(self) -> int:
        return TABLE_BUFFER

    def output_edges(self, accepted: list[int]) -> list[int]:
        return self.table.output_edges(accepted)

    def check_edges(self, accepted: list[int], outputs: list[int]) -> None:
        """`accepted`: the joined stream's input handshakes (both inputs, in stream order)."""
        self.table.check_edges(accepted, outputs)
