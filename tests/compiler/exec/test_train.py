"""compiler/exec/train.py's retraining options (used by the circulant pass by default):
knowledge distillation, the learning-rate schedule, the held-out slice and best-epoch choice."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compiler import passes  # noqa: F401
from compiler.data import Dataset
from compiler.exec.torch import fixed_threads, logits_module, predict_logits
from compiler.exec.train import (
    TrainConfig,
    fit,
    holdout_split,
    keep_margin,
    lr_factor,
    teacher_logits,
    train,
    with_params,
)


@pytest.fixture(scope="module")
def rows(digits_data):
    d = digits_data
    return Dataset(d.x_train[:300], d.y_train[:300], d.x_test[:300], d.y_test[:300])


def _agreement(graph, reference, x) -> float:
    return float((predict_logits(graph, x).argmax(1) == reference.argmax(1)).mean())


# ------------------------------------------------------------------------ held-out slice
def test_holdout_split_is_stratified_seeded_and_disjoint(rows):
    y = rows.y_train
    trained, heldout = holdout_split(y, 0.2, seed=5)
    assert np.array_equal(np.sort(np.concatenate([trained, heldout])), np.arange(len(y)))
    for label in np.unique(y):
        count = int((y == label).sum())
        assert int((y[heldout] == label).sum()) == round(0.2 * count)  # every class, in proportion
    assert np.array_equal(heldout, holdout_split(y, 0.2, seed=5)[1])
    assert not np.array_equal(heldout, holdout_split(y, 0.2, seed=6)[1])
    assert len(holdout_split(y, 0.0, seed=5)[1]) == 0


def test_held_out_rows_are_never_trained_on(float_graph, rows):
    """Poisoned held-out rows (NaN inputs): one step on any of them would make every weight NaN."""
    x = rows.x_train.copy()
    _, heldout = holdout_split(rows.y_train, 0.25, seed=1)
    x[heldout] = np.nan
    teacher = teacher_logits(float_graph, x)
    config = TrainConfig(epochs=2, lr=1e-3, validation_fraction=0.25, distill=0.5, schedule="cosine")
    result = fit(float_graph, x, rows.y_train, config, seed=1, teacher=teacher)
    assert all(np.isfinite(v).all() for v in result.graph.params.values())
    plain = fit(float_graph, x, rows.y_train, TrainConfig(epochs=1, lr=1e-3), seed=1)  # the check can fail
    assert not all(np.isfinite(v).all() for v in plain.graph.params.values())


# ------------------------------------------------------------------------ defaults unchanged
def test_options_off_train_exactly_as_before(float_graph, rows):
    """The plain loop every other pass relies on (Adam, shuffled minibatches, cross-entropy, the
    last parameters), written out: new options off must give the same parameters, bit for bit."""
    config = TrainConfig(epochs=2, batch_size=32, lr=3e-3)
    got = train(float_graph, rows.x_train, rows.y_train, config, seed=4)
    torch.manual_seed(4)
    module = logits_module(float_graph).train()
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(rows.x_train.astype(np.float32)), torch.from_numpy(rows.y_train.astype(np.int64))
    gen = torch.Generator().manual_seed(4)
    with fixed_threads():
        for _ in range(2):
            for idx in torch.randperm(len(xt), generator=gen).split(32):
                opt.zero_grad()
                F.cross_entropy(module(xt[idx]), yt[idx]).backward()
                opt.step()
    want = with_params(float_graph, module.export_params())
    for name in want.params:
        assert np.array_equal(got.params[name], want.params[name])


# ------------------------------------------------------------------------ distillation
def test_distillation_follows_the_teacher_over_the_labels(float_graph, rows):
    """Labels all wrong (shifted by one class): alpha = 1 learns the teacher's answers, alpha = 0
    the wrong labels."""
    x, wrong = rows.x_train, (rows.y_train + 1) % 10
    teacher = teacher_logits(float_graph, x)
    config = TrainConfig(epochs=20, lr=1e-2, temperature=4.0)
    distilled = train(float_graph, x, wrong, TrainConfig(**{**config.__dict__, "distill": 1.0}), teacher=teacher)
    labels = train(float_graph, x, wrong, config, teacher=teacher)
    reference = teacher_logits(float_graph, rows.x_test)
    assert _agreement(distilled, reference, rows.x_test) > 0.85
    assert _agreement(labels, reference, rows.x_test) < 0.5


def test_teacher_logits_are_the_training_logits(float_graph, rows):
    np.testing.assert_allclose(teacher_logits(float_graph, rows.x_test), predict_logits(float_graph, rows.x_test))


@pytest.mark.parametrize(
    "config, teacher, message",
    [
        (TrainConfig(distill=0.5), False, "needs the teacher's logits"),
        (TrainConfig(distill=1.5), True, "distill must be in"),
        (TrainConfig(temperature=0.0), True, "temperature must be > 0"),
        (TrainConfig(schedule="linear"), False, "schedule must be one of"),
        (TrainConfig(validation_fraction=1.0), False, "validation_fraction must be in"),
    ],
)
def test_bad_training_options_are_refused(float_graph, rows, config, teacher, message):
    logits = teacher_logits(float_graph, rows.x_train) if teacher else None
    with pytest.raises(ValueError, match=message):
        train(float_graph, rows.x_train, rows.y_train, config, teacher=logits)


# ------------------------------------------------------------------------ schedule
def test_schedules_shape_the_learning_rate():
    total = 101
    assert lr_factor("constant", 70, total) == 1.0
    assert lr_factor("cosine", 0, total) == 1.0 and lr_factor("cosine", 100, total) == 0.0
    assert lr_factor("cosine", 50, total) == pytest.approx(0.5)
    assert lr_factor("onecycle", 0, total) == pytest.approx(1 / 25)
    assert lr_factor("onecycle", 30, total) == pytest.approx(1.0)
    assert lr_factor("onecycle", 100, total) == pytest.approx(0.0)


@pytest.mark.parametrize("schedule, last_step_moves", [("constant", True), ("cosine", False)])
def test_the_optimizer_follows_the_schedule(float_graph, rows, schedule, last_step_moves):
    """Cosine decays to 0: the very last step changes no weight; a constant rate does."""
    seen = []
    weight = float_graph.weighted_nodes()[0].inputs[1]
    record = lambda module, step: seen.append(module.param(weight).detach().clone())
    train(float_graph, rows.x_train, rows.y_train, TrainConfig(epochs=1, lr=1e-2, schedule=schedule), after_step=record)
    assert len(seen) == -(-len(rows.x_train) // 64)
    assert (not torch.equal(seen[-1], seen[-2])) == last_step_moves


# ------------------------------------------------------------------------ best epoch, patience
def test_best_held_out_epoch_is_kept_and_patience_stops(float_graph, rows):
    """A learning rate that wrecks the model: the held-out slice keeps the starting point
    (epoch 0), and patience 2 stops after two epochs without a better score."""
    config = TrainConfig(epochs=8, lr=1.0, validation_fraction=0.3, patience=2)
    result = fit(float_graph, rows.x_train, rows.y_train, config, seed=2)
    assert result.best_epoch == 0 and result.epochs_run == 2
    assert len(result.history) == 3 and result.heldout_accuracy == max(result.history) == result.history[0]
    for name, value in float_graph.params.items():
        assert np.array_equal(result.graph.params[name], value)
    full = fit(float_graph, rows.x_train, rows.y_train, TrainConfig(epochs=8, lr=1.0, validation_fraction=0.3), seed=2)
    assert full.epochs_run == 8 and len(full.history) == 9  # patience 0: every epoch runs
    _, heldout = holdout_split(rows.y_train, 0.3, seed=2)
    acc = float((predict_logits(full.graph, rows.x_train[heldout]).argmax(1) == rows.y_train[heldout]).mean())
    assert acc == pytest.approx(full.heldout_accuracy)  # the returned parameters are the scored ones


def test_the_kept_epoch_is_the_latest_within_the_margin_of_the_best(float_graph, rows):
    """A dip of a row or two on a small slice is noise: the latest epoch within the best score's
    95% interval is kept, not the single best one."""
    assert keep_margin(1.0, 120) == pytest.approx(0.0226, abs=1e-4)  # a perfect score still has a width
    assert keep_margin(0.9, 100) == pytest.approx(2 * (0.8846 * 0.1154 / 104) ** 0.5, abs=1e-4)
    config = TrainConfig(epochs=12, lr=1e-2, validation_fraction=0.3, schedule="cosine")
    result = fit(float_graph, rows.x_train, rows.y_train, config, seed=3)
    n = len(holdout_split(rows.y_train, 0.3, seed=3)[1])
    best = max(result.history)
    want = max(e for e, a in enumerate(result.history) if a >= best - keep_margin(best, n) - 1e-12)
    assert result.best_epoch == want and result.heldout_accuracy == result.history[want]


# ------------------------------------------------------------------------ a regression
def _regression(float_graph, rows):
    """The digits MLP as a regression (graph.meta["task"]) onto fixed random projections of x."""
    g = float_graph.copy()
    g.meta["task"] = "regression"
    x = rows.x_train
    w = np.random.default_rng(0).normal(size=(x[0].size, 10)).astype(np.float32) / 8
    return g, x, x.reshape(len(x), -1) @ w


def _mse(graph, x, y) -> float:
    return float(((predict_logits(graph, x) - y) ** 2).mean())


def test_a_regression_trains_on_the_mean_squared_error(float_graph, rows):
    g, x, y = _regression(float_graph, rows)
    trained = train(g, x, y, TrainConfig(epochs=15, lr=3e-3), seed=0)
    assert trained.meta["task"] == "regression"
    assert _mse(trained, x, y) < 0.2 * _mse(g, x, y)
    # one step is one Adam step on F.mse_loss, as for cross-entropy on labels
    one = train(g, x[:64], y[:64], TrainConfig(epochs=1, batch_size=64, lr=1e-3), seed=0)
    with fixed_threads():
        torch.manual_seed(0)
        module = logits_module(g).train()
        opt = torch.optim.Adam(module.parameters(), lr=1e-3)
        F.mse_loss(module(torch.from_numpy(x[:64])), torch.from_numpy(y[:64])).backward()
        opt.step()
    for name, value in module.export_params().items():
        np.testing.assert_allclose(one.params[name], value, rtol=1e-5, atol=1e-6)


def test_a_regressions_held_out_slice_is_random_and_scored_by_its_mse(float_graph, rows):
    g, x, y = _regression(float_graph, rows)
    trained, heldout = holdout_split(y, 0.2, seed=3)
    assert len(heldout) == round(0.2 * len(y)) and np.array_equal(np.sort(np.r_[trained, heldout]), np.arange(len(y)))
    assert np.array_equal(heldout, holdout_split(y, 0.2, seed=3)[1])
    result = fit(g, x, y, TrainConfig(epochs=4, lr=3e-3, validation_fraction=0.2), seed=3)
    assert result.heldout_accuracy is None and result.heldout_rows == len(heldout)
    assert result.heldout_mse == pytest.approx(_mse(result.graph, x[heldout], y[heldout]), rel=1e-4)
    assert len(result.history) == 5 and result.history[result.best_epoch] == pytest.approx(result.heldout_mse)
    assert result.heldout_mse < result.history[0]  # it learned
