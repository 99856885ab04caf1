"""The residual join: two activations aligned exactly to the finer scale, summed exactly, then
requantized (round half up, saturate, optional ReLU) as kernels.requantize does
(docs/fixed-point.md, "add (residual join)")."""

import numpy as np

from kernels.activation import TableSchedule
from kernels.requantize import requantize

MAX_SUM_BITS = 62  # every step exact in int64 (numpy here, the int64 ONNX graph)
ACTIVATION_BITS = 8  # the widest activation (docs/fixed-point.md "Formats")
MAX_ALIGN_SHIFT = MAX_SUM_BITS - ACTIVATION_BITS - 1  # so that S <= MAX_SUM_BITS
MAX_SHIFT = 62  # requantize's rounding constant 1 << (shift - 1) fits int64

# rtl/add.v's timing is rtl/activation.v's: one element (here a pair) per handshake into a
# 2-entry output FIFO, one edge of latency.
AddSchedule = TableSchedule


def add_sum_bits(bits_a: int, shift_a: int, bits_b: int, shift_b: int) -> int:
    """S: the width of the aligned sum, which no inputs in range overflow."""
    return max(bits_a + shift_a, bits_b + shift_b) + 1


def add(a: np.ndarray, b: np.ndarray, shift_a: int, shift_b: int, shift: int, bits: int, relu: bool) -> np.ndarray:
    """requantize(a * 2**shift_a + b * 2**shift_b, shift, bits, relu), elementwise, for
    activations a, b of at most ACTIVATION_BITS bits."""
    if not (0 <= shift_a <= MAX_ALIGN_SHIFT and 0 <= shift_b <= MAX_ALIGN_SHIFT):  # aligning never rounds
        raise ValueError(f"add aligns by left shifts of 0..{MAX_ALIGN_SHIFT}, got shift_a {shift_a}, shift_b {shift_b}")
    if not 0 <= shift <= MAX_SHIFT:
        raise ValueError(f"add output shift must be in 0..{MAX_SHIFT}, got {shift}")
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"add takes two tensors of one shape, got {a.shape} and {b.shape}")
    return requantize((a << shift_a) + (b << shift_b), shift, bits, relu)
