"""Attack metrics from membership scores (higher score = "more likely a member").

- auc: area under the ROC curve (scikit-learn).
- balanced_accuracy: max over thresholds of (TPR + TNR) / 2 on the evaluation set, i.e. the
  attack's accuracy at its best threshold on balanced members/non-members (the usual "attack
  accuracy" of MIA papers; an upper bound on what a threshold chosen blind would reach).
- member_precision / member_recall / member_f1: at that same balanced-accuracy-optimal threshold.
- tpr_at_1pct_fpr, tpr_at_0_1pct_fpr: the highest TPR among ROC points with FPR <= the level,
  without interpolation (Carlini et al. 2022). An FPR level below 1 / n_non_members cannot be
  resolved: it is reported as None with a note.
- calibrated: where an attack has its own decision rule chosen without evaluation labels
  (thresholds from shadow models, LR > 1, "correct = member"), the same four accuracy figures
  at that decision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score, roc_curve

FPR_LEVELS = {"tpr_at_1pct_fpr": 0.01, "tpr_at_0_1pct_fpr": 0.001}


def roc(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): predict "member" when score >= threshold."""
    return roc_curve(np.asarray(is_member, bool), np.asarray(scores, np.float64), drop_intermediate=False)


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, level: float) -> float:
    return float(tpr[fpr <= level].max())


def decision_metrics(predicted: np.ndarray, is_member: np.ndarray) -> dict:
    """Balanced accuracy and member precision/recall/F1 of a yes/no membership decision."""
    predicted, is_member = np.asarray(predicted, bool), np.asarray(is_member, bool)
    tpr = predicted[is_member].mean()
    tnr = (~predicted[~is_member]).mean()
    precision, recall, f1, _ = precision_recall_fscore_support(is_member, predicted, average="binary", zero_division=0)
    return {
        "balanced_accuracy": round(float((tpr + tnr) / 2), 6),
        "member_precision": round(float(precision), 6),
        "member_recall": round(float(recall), 6),
        "member_f1": round(float(f1), 6),
    }


def attack_metrics(scores: np.ndarray, is_member: np.ndarray, decision: np.ndarray | None = None) -> dict:
    """All metrics of one attack on one target (see the module docstring)."""
    scores, is_member = np.asarray(scores, np.float64), np.asarray(is_member, bool)
    n_non_members = int((~is_member).sum())
    fpr, tpr, thresholds = roc(scores, is_member)
    best = int(np.argmax(tpr - fpr))
    result: dict[str, Any] = {"auc": round(float(roc_auc_score(is_member, scores)), 6)}
    result.update(decision_metrics(scores >= thresholds[best], is_member))
    notes = []
    for key, level in FPR_LEVELS.items():
        if n_non_members * level < 1:
            result[key] = None
            notes.append(
                f"{key}: an FPR of {level:.1%} is not resolvable with {n_non_members} non-members "
                f"(needs at least {int(round(1 / level))})"
            )
        else:
            result[key] = round(tpr_at_fpr(fpr, tpr, level), 6)
    if decision is not None:
        result["calibrated"] = decision_metrics(decision, is_member)
    if notes:
        result["note"] = "; ".join(notes)
    return result
