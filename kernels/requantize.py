"""Accumulator -> activation: round half up by an arithmetic shift, saturate, optional ReLU."""

import numpy as np

from kernels.fixed import saturate


def requantize(acc: np.ndarray, shift: int, bits: int, relu: bool) -> np.ndarray:
    if shift < 0:
        raise ValueError(f"requantize shift must be >= 0, got {shift}")
    acc = np.asarray(acc, dtype=np.int64)
    if shift > 0:
        acc = (acc + (1 << (shift - 1))) >> shift  # numpy >> on int64 is arithmetic (floor)
    y = saturate(acc, bits)
    if relu:
        y = np.maximum(y, 0)
    return y
