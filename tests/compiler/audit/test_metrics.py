import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from compiler.audit.metrics import attack_metrics, decision_metrics


def _brute_force_balanced_accuracy(scores, is_member):
    return max(
        ((scores[is_member] >= t).mean() + (scores[~is_member] < t).mean()) / 2
        for t in np.append(np.unique(scores), np.inf)
    )


def test_perfect_separation():
    scores = np.r_[np.linspace(1, 2, 200), np.linspace(-2, -1, 200)]
    is_member = np.arange(400) < 200
    m = attack_metrics(scores, is_member)
    assert m["auc"] == 1.0 and m["balanced_accuracy"] == 1.0 and m["tpr_at_1pct_fpr"] == 1.0
    assert m["member_precision"] == m["member_recall"] == m["member_f1"] == 1.0


def test_low_fpr_not_resolvable_below_one_over_n():
    rng = np.random.default_rng(0)
    is_member = np.arange(1000) < 500  # 500 non-members: 0.1% FPR is 0.5 of one
    m = attack_metrics(rng.normal(size=1000), is_member)
    assert m["tpr_at_0_1pct_fpr"] is None and "not resolvable with 500 non-members" in m["note"]
    assert m["tpr_at_1pct_fpr"] is not None


def test_tpr_at_fpr_is_the_best_point_at_or_under_the_level():
    # 1000 non-members at scores 0..999; members: 30 above every non-member, 70 just under the top one
    non_members = np.arange(1000.0)
    members = np.r_[np.full(30, 2000.0), np.full(70, 998.5)]
    scores, is_member = np.r_[members, non_members], np.arange(1100) < 100
    m = attack_metrics(scores, is_member)
    assert m["tpr_at_0_1pct_fpr"] == pytest.approx(1.0)  # threshold 998.5: FPR 1/1000, TPR 100/100
    assert "note" not in m


def test_auc_and_balanced_accuracy_agree_with_direct_computation():
    rng = np.random.default_rng(1)
    is_member = rng.random(600) < 0.5
    scores = rng.normal(size=600) + 0.7 * is_member
    scores[:50] = np.round(scores[:50])  # ties
    m = attack_metrics(scores, is_member)
    assert m["auc"] == pytest.approx(roc_auc_score(is_member, scores), abs=1e-6)
    assert m["balanced_accuracy"] == pytest.approx(_brute_force_balanced_accuracy(scores, is_member), abs=1e-6)


def test_precision_recall_f1_at_the_balanced_optimal_threshold():
    scores = np.array([6, 5, 4, 3, 2, 1, 0], float)
    is_member = np.array([1, 1, 0, 1, 1, 0, 0], bool)
    m = attack_metrics(scores, is_member)
    # best: member if score >= 2 -> TPR 4/4, FPR 1/3 (the non-member at 4 is caught too)
    assert m["balanced_accuracy"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-6)
    assert m["member_precision"] == pytest.approx(0.8) and m["member_recall"] == 1.0
    assert m["member_f1"] == pytest.approx(2 * 0.8 / 1.8, abs=1e-6)


def test_calibrated_decision_reported_separately():
    is_member = np.array([1, 1, 0, 0], bool)
    m = attack_metrics(np.array([3.0, 2, 1, 0]), is_member, decision=np.array([1, 0, 0, 0], bool))
    assert m["balanced_accuracy"] == 1.0
    assert m["calibrated"] == decision_metrics(np.array([1, 0, 0, 0], bool), is_member)
    assert m["calibrated"]["balanced_accuracy"] == 0.75 and m["calibrated"]["member_precision"] == 1.0
