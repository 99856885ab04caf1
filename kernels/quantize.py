"""Host-side conversion between float tensors and the integer stream (docs/fixed-point.md)."""

import numpy as np

from kernels.fixed import round_half_even, saturate


def quantize(x: np.ndarray, frac: int, bits: int) -> np.ndarray:
    """q = clip(round_half_even(x * 2**frac)) in float32, as ONNX QuantizeLinear does."""
    scaled = np.asarray(x, dtype=np.float32) * np.float32(2.0**frac)
    return saturate(round_half_even(scaled), bits).astype(np.int64)


def dequantize(q: np.ndarray, frac: int) -> np.ndarray:
    """Real value of integers q in a format with `frac` fractional bits, as float32."""
    return (np.asarray(q, dtype=np.float64) * 2.0**-frac).astype(np.float32)
