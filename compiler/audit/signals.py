"""Per-example signals computed from a model's logits and the true labels.

All work in float64 from log-softmax, so that confident predictions (p -> 1) keep their
resolution: log(1 - p_i) is computed as logsumexp of the other classes' log-probabilities.
Each `*_signal` is oriented so that a higher value means "more likely a member".
Arrays may carry leading dimensions (e.g. [shadows, examples, classes]).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, logsumexp


def log_probs(logits: np.ndarray) -> np.ndarray:
    return log_softmax(np.asarray(logits, np.float64), axis=-1)


def log_one_minus_probs(logp: np.ndarray) -> np.ndarray:
    """log(1 - p_i) for every class i, stably. Only the top class can have p > 1/2, where
    log1p(-p) loses its digits: there it is the log-sum of the other classes' probabilities."""
    out = np.log1p(-np.exp(np.minimum(logp, np.log(0.5))))
    top = np.argmax(logp, axis=-1)[..., None]
    others = np.where(np.arange(logp.shape[-1]) == top, -np.inf, logp)
    np.put_along_axis(out, top, logsumexp(others, axis=-1, keepdims=True), axis=-1)
    return out


def _take(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.take_along_axis(a, np.broadcast_to(y, a.shape[:-1])[..., None], axis=-1)[..., 0]


def loss(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cross-entropy -log p_y, as log(1 + e^-phi) with phi the scaled confidence: the direct
    -log p_y rounds to 0 for every p_y within 1e-16 of 1, where members pile up."""
    return np.logaddexp(0.0, -scaled_confidence(logits, y))


def loss_signal(logits, y):
    return -loss(logits, y)


def confidence_signal(logits, y):
    """p_y, the confidence in the true class (Song & Mittal's prediction confidence)."""
    return np.exp(_take(log_probs(logits), y))


def entropy_signal(logits, y):
    """Minus the prediction entropy: members tend to get sharper predictions."""
    logp = log_probs(logits)
    return np.sum(np.exp(logp) * logp, axis=-1)


def modified_entropy_signal(logits, y):
    """Minus Song & Mittal's modified entropy
    Mentr = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)
    (monotone in the correctness of the prediction, unlike the plain entropy)."""
    logp = log_probs(logits)
    log1mp = log_one_minus_probs(logp)
    p = np.exp(logp)
    is_true = np.arange(logp.shape[-1]) == np.asarray(y)[..., None]
    own = -np.exp(_take(log1mp, y)) * _take(logp, y)
    others = -np.sum(np.where(is_true, 0.0, p * log1mp), axis=-1)
    return -(own + others)


def scaled_confidence(logits, y):
    """LiRA's logit scaling of the true-class confidence: log(p_y / (1 - p_y)), close to
    Gaussian across models trained with and without an example (Carlini et al. 2022)."""
    logp = log_probs(logits)
    return _take(logp, y) - _take(log_one_minus_probs(logp), y)


def correct(logits, y):
    """1.0 where the argmax is the true label: all a label-only attacker observes."""
    return (np.argmax(logits, axis=-1) == np.asarray(y)).astype(np.float64)


# ---- a regression's signals (graph.meta["task"]): the outputs are values, y their targets ------
def row_mse(outputs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each example's mean squared error (the regression's loss), leading dimensions kept:
    outputs [..., n, d] against targets y [n, d]."""
    diff = np.asarray(outputs, np.float64) - np.asarray(y, np.float64)
    return np.mean(diff**2, axis=-1)


def mse_signal(outputs, y):
    """Minus the example's MSE: members, trained on, tend to be reconstructed better."""
    return -row_mse(outputs, y)


def log_mse_phi(outputs, y):
    """-log MSE: LiRA's statistic for a regression (a positive loss on a log scale is closer to
    Gaussian across shadows than the loss itself, as LiRA's logit scaling is for a probability)."""
    return -np.log(row_mse(outputs, y) + 1e-30)
