"""Predicted class from the output integers.

Several outputs: the argmax, ties to the lowest index. One output (a binary classifier): class 1
when the output, at its fixed-point format Q(bits, frac), is at least the threshold (0.5 for a
probability from a sigmoid, 0 for a raw logit): output_q >= ceil(threshold * 2**frac), exact.
"""

import math

import numpy as np


def argmax(logits_q: np.ndarray) -> np.ndarray:
    return np.argmax(np.asarray(logits_q), axis=-1)


def threshold_code(threshold: float, frac: int) -> int:
    """The smallest output integer that stands for a value >= threshold."""
    return math.ceil(threshold * 2.0**frac)


def binary_classes(output_q: np.ndarray, threshold: float, frac: int) -> np.ndarray:
    """[N, 1] output integers -> [N] classes 0/1."""
    return (np.asarray(output_q)[..., 0] >= threshold_code(threshold, frac)).astype(np.int64)
