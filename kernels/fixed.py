"""Shared helpers for two's-complement fixed-point integers."""

import numpy as np


def int_range(bits: int) -> tuple[int, int]:
    """Range of a signed two's-complement integer of `bits` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def bits_for_signed(magnitude: int) -> int:
    """Smallest signed width holding every value in [-magnitude, magnitude]."""
    magnitude = int(magnitude)
    if magnitude < 0:
        raise ValueError("magnitude must be >= 0")
    return magnitude.bit_length() + 1


def round_half_even(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties to even (numpy's rint; ONNX QuantizeLinear's rounding)."""
    return np.rint(x)


def saturate(q: np.ndarray, bits: int) -> np.ndarray:
    lo, hi = int_range(bits)
    return np.clip(q, lo, hi)
