"""The membership-inference attacks. Each sees only the target's logits on the evaluation points
(a prediction function's output), the true labels, and the attacker's shadow models; it returns
a score per point (higher = "member") and, where the method has one, its own yes/no decision.

The evaluation points and the shadow pool are the same points in the same order (see run.py):
shadow k's logits on point i are `shadows.logits[k, i]`, its membership `shadows.is_in[k, i]`.
Nothing here sees the target's membership labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_curve

from compiler.audit import ATTACK_NAMES, signals
from compiler.audit.shadows import ShadowSet, single_threaded

# Below this many shadows, LiRA uses one variance for all examples (Carlini et al. 2022, Sec. 5:
# per-example variances need many shadow models to be estimated well).
PER_EXAMPLE_VARIANCE_FROM = 64


@dataclass
class AttackResult:
    scores: np.ndarray
    decision: np.ndarray | None  # the attack's own calibrated decision, if it has one
    details: dict | None = None  # what the attacker calibrated (recorded in audit.json)


Signal = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ---- threshold attacks (Song & Mittal 2021) ------------------------------------------------
def best_threshold(scores: np.ndarray, is_in: np.ndarray) -> float:
    """The threshold (member if score >= t) with the best balanced accuracy on shadow data."""
    if is_in.all() or not is_in.any():
        return float(np.median(scores))
    fpr, tpr, thresholds = roc_curve(is_in, scores, drop_intermediate=False)
    t = thresholds[int(np.argmax(tpr - fpr))]
    return float(t) if np.isfinite(t) else float(scores.max()) + 1.0


def class_thresholds(signal: Signal, y: np.ndarray, shadows: ShadowSet, n_classes: int) -> np.ndarray:
    """Per-class thresholds calibrated on the shadows' IN/OUT points (never on the target)."""
    values = signal(shadows.logits, y).ravel()
    labels = np.broadcast_to(y, shadows.is_in.shape).ravel()
    is_in = shadows.is_in.ravel()
    overall = best_threshold(values, is_in)
    return np.array(
        [
            best_threshold(values[labels == c], is_in[labels == c]) if np.any(labels == c) else overall
            for c in range(n_classes)
        ]
    )


def threshold_attack(signal: Signal) -> Callable[..., AttackResult]:
    """Score = the signal's margin over its class's threshold; decision = margin >= 0.
    Sweeping one global value over the margin shifts every class threshold alike (the ROC)."""

    def attack(target_logits: np.ndarray, y: np.ndarray, shadows: ShadowSet, seed: int) -> AttackResult:
        thresholds = class_thresholds(signal, y, shadows, target_logits.shape[-1])
        margin = signal(target_logits, y) - thresholds[y]
        return AttackResult(margin, margin >= 0, {"class_thresholds": [float(t) for t in thresholds]})

    return attack


# ---- shadow-model attack (Shokri et al. 2017) ----------------------------------------------
def shadow_attack(target_logits: np.ndarray, y: np.ndarray, shadows: ShadowSet, seed: int) -> AttackResult:
    """One attack classifier per class, trained on the shadows' output vectors (as
    log-probabilities, which keep the resolution of confident outputs) labelled IN/OUT."""
    features = signals.log_probs(shadows.logits).reshape(-1, target_logits.shape[-1])
    labels = np.broadcast_to(y, shadows.is_in.shape).ravel()
    is_in = shadows.is_in.ravel()
    target_features = signals.log_probs(target_logits)
    scores = np.zeros(len(y))
    with single_threaded():
        for c in np.unique(y):
            rows = labels == c
            if is_in[rows].all() or not is_in[rows].any():
                continue  # nothing to learn for this class: score 0, i.e. undecided
            model = HistGradientBoostingClassifier(
                max_iter=100, max_leaf_nodes=15, learning_rate=0.1, early_stopping=False, random_state=seed
            )
            model.fit(features[rows], is_in[rows])
            scores[y == c] = model.decision_function(target_features[y == c])
    return AttackResult(scores, scores >= 0)


# ---- LiRA (Carlini et al. 2022) ------------------------------------------------------------
@dataclass
class GaussianFits:
    mean_in: np.ndarray
    std_in: np.ndarray
    mean_out: np.ndarray
    std_out: np.ndarray


def _fit(phi: np.ndarray, mask: np.ndarray, per_example: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-example mean (median, as Carlini et al.) of phi over the shadows where mask holds;
    the std per example, or pooled over all examples from the residuals."""
    masked = np.where(mask, phi, np.nan)
    counts = mask.sum(axis=0)
    overall_mean = float(np.nanmean(masked)) if mask.any() else 0.0
    mean = np.where(counts > 0, np.nanmedian(np.where(counts > 0, masked, 0.0), axis=0), overall_mean)
    residuals = np.where(mask, phi - mean, np.nan)
    pooled = float(np.sqrt(np.nanmean(residuals**2))) if counts.max(initial=0) > 1 else float(np.nanstd(masked))
    pooled = max(pooled, 1e-6)
    if not per_example:
        return mean, np.full(phi.shape[1], pooled)
    std = np.where(counts > 1, np.sqrt(np.nanmean(residuals**2, axis=0)), pooled)
    return mean, np.maximum(std, 1e-6)


def lira_fits(y: np.ndarray, shadows: ShadowSet, statistic: Signal = signals.scaled_confidence) -> GaussianFits:
    phi = statistic(shadows.logits, y)  # [K, n]
    per_example = shadows.count >= PER_EXAMPLE_VARIANCE_FROM
    mean_in, std_in = _fit(phi, shadows.is_in, per_example)
    mean_out, std_out = _fit(phi, ~shadows.is_in, per_example)
    return GaussianFits(mean_in, std_in, mean_out, std_out)


def lira_online(
    target_logits, y, shadows: ShadowSet, seed: int, statistic: Signal = signals.scaled_confidence
) -> AttackResult:
    """Log likelihood ratio of the target's scaled confidence under the IN and OUT Gaussians;
    member when the ratio exceeds 1."""
    fits = lira_fits(y, shadows, statistic)
    phi = statistic(target_logits, y)
    score = norm.logpdf(phi, fits.mean_in, fits.std_in) - norm.logpdf(phi, fits.mean_out, fits.std_out)
    return AttackResult(score, score > 0)


def lira_offline(
    target_logits, y, shadows: ShadowSet, seed: int, statistic: Signal = signals.scaled_confidence
) -> AttackResult:
    """One-sided test against the OUT Gaussian only: the score is the z-value of the target's
    scaled confidence (monotone in 1 - P[OUT >= phi]). A test has no balanced decision of its
    own (its natural cut is a significance level), so no calibrated decision is reported."""
    fits = lira_fits(y, shadows, statistic)
    phi = statistic(target_logits, y)
    return AttackResult((phi - fits.mean_out) / fits.std_out, None)


# ---- label-only -----------------------------------------------------------------------------
def label_only(target_logits, y, shadows: ShadowSet | None, seed: int) -> AttackResult:
    """Member if the predicted class is right (the gap attack of Yeom et al. 2018 and
    Choquette-Choo et al. 2021's baseline): uses only the argmax the hardware outputs."""
    correct = signals.correct(target_logits, y)
    return AttackResult(correct, correct > 0)


ATTACKS: dict[str, Callable[..., AttackResult]] = {
    "loss_threshold": threshold_attack(signals.loss_signal),
    "confidence_threshold": threshold_attack(signals.confidence_signal),
    "entropy_threshold": threshold_attack(signals.entropy_signal),
    "modified_entropy_threshold": threshold_attack(signals.modified_entropy_signal),
    "shadow": shadow_attack,
    "lira_offline": lira_offline,
    "lira_online": lira_online,
    "label_only": label_only,
}
NEEDS_SHADOWS = {name for name in ATTACKS if name != "label_only"}
assert tuple(ATTACKS) == ATTACK_NAMES, "compiler/audit/__init__.py lists the attacks in this order"


# ---- a regression (graph.meta["task"]): the loss is each example's MSE ------------------------
def regression_threshold(target_outputs, y, shadows: ShadowSet, seed: int) -> AttackResult:
    """The loss-threshold attack on a regression: member if the example's MSE is under one
    threshold calibrated on the shadows (no classes to calibrate per class)."""
    threshold = best_threshold(signals.mse_signal(shadows.logits, y).ravel(), shadows.is_in.ravel())
    margin = signals.mse_signal(target_outputs, y) - threshold
    return AttackResult(margin, margin >= 0, {"threshold": threshold})


def regression_shadow(target_outputs, y, shadows: ShadowSet, seed: int) -> AttackResult:
    """Shokri et al.'s attack classifier on a regression: one classifier on each example's
    squared errors per output (what the shadows' losses look like in and out)."""
    features = ((shadows.logits - y) ** 2).reshape(-1, target_outputs.shape[-1])
    with single_threaded():
        model = HistGradientBoostingClassifier(
            max_iter=100, max_leaf_nodes=15, learning_rate=0.1, early_stopping=False, random_state=seed
        )
        model.fit(features, shadows.is_in.ravel())
        scores = model.decision_function((target_outputs - y) ** 2)
    return AttackResult(scores, scores >= 0)


REGRESSION_ATTACKS: dict[str, Callable[..., AttackResult]] = {
    "loss_threshold": regression_threshold,
    "shadow": regression_shadow,
    "lira_offline": lambda t, y, s, seed: lira_offline(t, y, s, seed, signals.log_mse_phi),
    "lira_online": lambda t, y, s, seed: lira_online(t, y, s, seed, signals.log_mse_phi),
}
# what the others need that a regression's outputs do not have
REGRESSION_SKIPS = {
    "confidence_threshold": "needs class probabilities",
    "entropy_threshold": "needs class probabilities",
    "modified_entropy_threshold": "needs class probabilities",
    "label_only": "needs a predicted class",
}
