import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from compiler.audit import attacks, signals
from compiler.audit.shadows import ShadowSet, membership_design
from compiler.exec.train import TrainConfig


def _shadows(logits, is_in):
    k = len(logits)
    return ShadowSet(np.asarray(logits, float), np.asarray(is_in, bool), [1.0] * k, [1.0] * k, TrainConfig(), 0.0)


# ---- signals ----------------------------------------------------------------------------------
def test_signals_match_their_definitions():
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(50, 5)) * 2, rng.integers(0, 5, 50)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    py = p[np.arange(50), y]
    np.testing.assert_allclose(signals.loss(logits, y), -np.log(py))
    np.testing.assert_allclose(signals.confidence_signal(logits, y), py)
    np.testing.assert_allclose(signals.entropy_signal(logits, y), (p * np.log(p)).sum(1))
    other = np.where(np.arange(5) == y[:, None], 0.0, p * np.log(1 - p)).sum(1)
    np.testing.assert_allclose(signals.modified_entropy_signal(logits, y), (1 - py) * np.log(py) + other)
    np.testing.assert_allclose(signals.scaled_confidence(logits, y), np.log(py / (1 - py)))
    np.testing.assert_array_equal(signals.correct(logits, y), (logits.argmax(1) == y).astype(float))


def test_signals_keep_resolution_for_confident_outputs():
    logits = np.array([[60.0, 0.0, 0.0], [40.0, 0.0, 0.0]])  # p_y = 1 - 2e-26, 1 - 8e-18
    y = np.array([0, 0])
    phi = signals.scaled_confidence(logits, y)
    np.testing.assert_allclose(phi, [60 - np.log(2), 40 - np.log(2)])
    assert np.all(np.isfinite(signals.modified_entropy_signal(logits, y)))
    assert signals.loss(logits, y)[0] < signals.loss(logits, y)[1]


def test_signals_accept_a_leading_shadow_axis():
    rng = np.random.default_rng(1)
    logits, y = rng.normal(size=(3, 20, 4)), rng.integers(0, 4, 20)
    batched = signals.modified_entropy_signal(logits, y)
    assert batched.shape == (3, 20)
    np.testing.assert_allclose(batched[2], signals.modified_entropy_signal(logits[2], y))


# ---- shadow membership design -----------------------------------------------------------------
def test_design_puts_every_point_in_exactly_half_the_shadows():
    design = membership_design(n_pool=40, count=6, seed=3)
    assert design.shape == (6, 40)
    assert np.all(design.sum(axis=1) == 20) and np.all(design.sum(axis=0) == 3)
    np.testing.assert_array_equal(design, membership_design(40, 6, seed=3))
    assert not np.array_equal(design, membership_design(40, 6, seed=4))


# ---- attacks on synthetic shadows with a known answer ------------------------------------------
def _two_class_logits(phi):
    """Logits whose true-class (class 0) scaled confidence is exactly phi."""
    return np.stack([phi, np.zeros_like(phi)], axis=-1)


def _lira_world(seed=0, k=16, n=400, gap=1.5):
    """Each example has its own difficulty mu_i; training on it adds `gap` to its scaled
    confidence. Half the examples are members of the target."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 4, n)
    is_in = membership_design(n, k, seed)
    phi_shadows = mu + gap * is_in + rng.normal(0, 0.5, (k, n))
    is_member = np.arange(n) < n // 2
    phi_target = mu + gap * is_member + rng.normal(0, 0.5, n)
    return _shadows(_two_class_logits(phi_shadows), is_in), _two_class_logits(phi_target), np.zeros(n, int), is_member


def test_lira_uses_per_example_calibration_and_beats_a_global_threshold():
    shadows, target, y, is_member = _lira_world()
    online = attacks.lira_online(target, y, shadows, seed=0)
    offline = attacks.lira_offline(target, y, shadows, seed=0)
    global_auc = roc_auc_score(is_member, signals.loss_signal(target, y))
    assert global_auc < 0.7  # mu_i's spread hides the membership gap
    assert roc_auc_score(is_member, online.scores) > 0.9
    assert roc_auc_score(is_member, offline.scores) > 0.9
    assert online.decision is not None and offline.decision is None
    assert ((online.decision == is_member).mean()) > 0.8


def _logits_with_true_class(phi, y):
    """Two-class logits whose class y has scaled confidence phi (the other logit is 0)."""
    logits = np.zeros(phi.shape + (2,))
    np.put_along_axis(logits, np.broadcast_to(y, phi.shape)[..., None], phi[..., None], axis=-1)
    return logits


def test_threshold_attack_calibrates_one_threshold_per_class_on_shadows():
    # class 0: members' loss ~0.1, non-members' ~1; class 1: ~2 vs ~4. No single threshold
    # serves both classes; one per class, calibrated on the shadows, does.
    rng = np.random.default_rng(2)
    n, k = 200, 8
    y = np.arange(n) % 2

    def logits_for(member):
        loss = np.where(y == 0, np.where(member, 0.1, 1.0), np.where(member, 2.0, 4.0))
        loss = loss * np.exp(rng.normal(0, 0.1, member.shape))
        return _logits_with_true_class(-np.log(np.expm1(loss)), y)  # loss = log(1 + e^-phi)

    is_in = membership_design(n, k, 2)
    shadows = _shadows(logits_for(is_in), is_in)
    is_member = np.arange(n) < n // 2
    result = attacks.ATTACKS["loss_threshold"](logits_for(is_member), y, shadows, seed=0)
    loss_thresholds = -np.array(result.details["class_thresholds"])
    assert 0.1 < loss_thresholds[0] < 1.0 and 2.0 < loss_thresholds[1] < 4.0
    assert (result.decision == is_member).mean() > 0.95


def test_shadow_attack_learns_member_outputs():
    shadows, target, y, is_member = _lira_world(seed=5, gap=4.0)
    result = attacks.shadow_attack(target, y, shadows, seed=0)
    assert roc_auc_score(is_member, result.scores) > 0.6


def test_label_only_uses_only_the_argmax():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]])
    y = np.array([0, 0, 1])
    result = attacks.label_only(logits, y, None, seed=0)
    np.testing.assert_array_equal(result.decision, [True, False, False])
    scaled = attacks.label_only(logits * 100 + 7, y, None, seed=0)  # same argmax, same attack
    np.testing.assert_array_equal(result.scores, scaled.scores)


@pytest.mark.parametrize("name", sorted(attacks.ATTACKS))
def test_every_attack_is_deterministic(name):
    shadows, target, y, _ = _lira_world(seed=7, k=4, n=60)
    a = attacks.ATTACKS[name](target, y, shadows, seed=1)
    b = attacks.ATTACKS[name](target, y, shadows, seed=1)
    np.testing.assert_array_equal(a.scores, b.scores)


# ---- a regression: the loss is each example's MSE ---------------------------------------------
def _regression_world(seed=0, k=8, n=300, d=6):
    """Shadows and a target whose members (IN) are reconstructed with a smaller error than
    non-members: outputs = y + noise of scale 0.5 (IN) or 1.0 (OUT)."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, d))
    is_in = membership_design(n, k, seed)
    scale = np.where(is_in, 0.5, 1.0)[..., None]
    shadow_outputs = y + rng.normal(size=(k, n, d)) * scale
    member = np.arange(n) < n // 2
    target = y + rng.normal(size=(n, d)) * np.where(member, 0.5, 1.0)[:, None]
    return target, y, _shadows(shadow_outputs, is_in), member


def test_regression_signals_are_the_rows_mse():
    outputs, y = np.array([[[1.0, 3.0], [0.0, 0.0]]]), np.array([[1.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(signals.row_mse(outputs, y), [[2.0, 1.0]])
    np.testing.assert_allclose(signals.mse_signal(outputs[0], y), [-2.0, -1.0])
    np.testing.assert_allclose(signals.log_mse_phi(outputs[0], y), [-np.log(2.0), 0.0])


@pytest.mark.parametrize("name", list(attacks.REGRESSION_ATTACKS))
def test_regression_attacks_find_the_members_by_their_error(name):
    target, y, shadows, member = _regression_world()
    result = attacks.REGRESSION_ATTACKS[name](target, y, shadows, 0)
    assert result.scores.shape == (len(y),)
    assert roc_auc_score(member, result.scores) > 0.85  # members' errors are half the non-members'
    again = attacks.REGRESSION_ATTACKS[name](target, y, shadows, 0)
    np.testing.assert_array_equal(result.scores, again.scores)


def test_the_regression_threshold_is_calibrated_on_the_shadows_only():
    target, y, shadows, _ = _regression_world()
    result = attacks.regression_threshold(target, y, shadows, 0)
    expected = attacks.best_threshold(signals.mse_signal(shadows.logits, y).ravel(), shadows.is_in.ravel())
    assert result.details == {"threshold": expected}
    np.testing.assert_allclose(result.scores, signals.mse_signal(target, y) - expected)
    np.testing.assert_array_equal(result.decision, result.scores >= 0)


def test_every_attack_is_either_a_regressions_or_skipped_with_a_reason():
    assert set(attacks.REGRESSION_ATTACKS) | set(attacks.REGRESSION_SKIPS) == set(attacks.ATTACKS)
    assert not set(attacks.REGRESSION_ATTACKS) & set(attacks.REGRESSION_SKIPS)
