"""compiler/passes/base.py's task helpers: the training passes run a regression
(graph.meta["task"]) on the MSE (minmax and privacy_admm with an attack on its errors), and the
passes defined on class labels refuse it in one line."""

import numpy as np
import pytest

from compiler import passes  # noqa: F401
from compiler.data import Dataset
from compiler.exec import predict_logits
from compiler.passes.base import Context, PassError, get_pass


@pytest.fixture(scope="module")
def regression(float_graph, small_data):
    """The digits MLP as a regression onto fixed random projections of its input."""
    g = float_graph.copy()
    g.meta["task"] = "regression"
    d = small_data
    w = np.random.default_rng(0).normal(size=(d.x_train[0].size, 10)).astype(np.float32) / 8
    y_train, y_test = (x.reshape(len(x), -1) @ w for x in (d.x_train, d.x_test))
    return g, Dataset(d.x_train, y_train, d.x_test, y_test, task="regression")


def _ctx(data, recipe):
    return Context(data=data, recipe=recipe, log=lambda *_: None, progress=False)


def _mse(graph, data) -> float:
    return float(((predict_logits(graph, data.x_test) - data.y_test) ** 2).mean())


@pytest.mark.parametrize(
    "name, recipe",
    [
        ("dp_sgd", {"dp_sgd": {"epochs": 3, "epsilon": 1000.0, "init": "current"}}),
        ("magnitude_prune", {"magnitude_prune": {"sparsity": 0.5, "epochs": 3}}),
        ("admm", {"admm": {"sparsity": 0.5, "admm_epochs": 2, "retrain_epochs": 2}}),
        ("minmax", {"minmax": {"epochs": 3, "lambda_": 1.0}}),
        ("privacy_admm", {"privacy_admm": {"sparsity": 0.5, "admm_epochs": 2, "retrain_epochs": 2}}),
    ],
)
def test_training_passes_fit_a_regression_on_its_mse(regression, name, recipe):
    graph, data = regression
    out = get_pass(name).run(graph, _ctx(data, recipe))
    assert out.meta["task"] == "regression"
    assert all(np.isfinite(v).all() for v in out.params.values())
    assert _mse(out, data) < _mse(graph, data)  # the MSE fell: trained on it (cross-entropy on floats would fail)


def test_the_min_max_game_attacks_a_regressions_errors(regression):
    from compiler.exec.torch import logits_module
    from compiler.passes.minmax import ErrorAttackModel, MinMaxGame

    graph, data = regression
    opts = {"lambda_": 1.0, "attack_steps": 1, "batch_size": 16, "attack_lr": 1e-3}
    game = MinMaxGame(data.x_train[:50], data.y_train[:50], data.x_train[50:], data.y_train[50:], 10, opts, 0, True)
    assert isinstance(game.attack, ErrorAttackModel)
    penalty = game.penalty(logits_module(graph), 0)
    assert penalty.ndim == 0 and float(penalty) < 0 and np.isfinite(game.last_attack_loss)


@pytest.mark.parametrize(
    "name, recipe, why",
    [
        ("fine_prune", {}, "a drop in held-out accuracy"),
        ("mia_quant", {}, "a drop in class accuracy, its signal a class loss"),
        ("circulant", {"circulant": {"block_size": "auto"}}, 'block_size = "auto"'),
    ],
)
def test_passes_defined_on_classes_refuse_a_regression(regression, name, recipe, why):
    graph, data = regression
    with pytest.raises(PassError) as e:
        get_pass(name).run(graph, _ctx(data, recipe))
    message = str(e.value)
    assert message.startswith(f"{name}: ") and why in message and "regression" in message and "\n" not in message
