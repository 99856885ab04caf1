"""Dense multiply-accumulate: acc[o] = b[o] + sum_i W[o, i] * x[i] (exact integers)."""
import numpy as np

from kernels.fixed import bits_for_signed


def dense_mac(x_q: np.ndarray, w_q: np.ndarray, b_q: np.ndarray | None) -> np.ndarray:
    """x_q: [N, in] ints, w_q: [out, in] ints, b_q: [out] ints -> [N, out] int64 accumulators."""
    acc = np.asarray(x_q, dtype=np.int64) @ np.asarray(w_q, dtype=np.int64).T
    if b_q is not None:
        acc = acc + np.asarray(b_q, dtype=np.int64)
    return acc


def dense_accumulator_bits(w_q: np.ndarray, b_q: np.ndarray | None, input_bits: int) -> int:
    """Accumulator width that no input in Q(input_bits) can overflow (docs/fixed-point.md)."""
    w = np.abs(np.asarray(w_q, dtype=np.int64))
    worst = w.sum(axis=1) * (1 << (input_bits - 1))
    if b_q is not None:
        worst = worst + np.abs(np.asarray(b_q, dtype=np.int64))
    return bits_for_signed(int(worst.max(initial=0)))
