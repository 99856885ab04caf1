import tempfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from compiler import passes  # noqa: F401
from compiler.audit.signals import loss
from compiler.data import Dataset
from compiler.exec import predict_logits
from compiler.frontend.onnx import load_onnx
from compiler.passes.base import Context, PassError, get_pass
from compiler.passes.minmax import reference_split
from compiler.recipe import RecipeError, validate_recipe


def _ctx(data, seed=0, **options):
    return Context(data=data, recipe={"minmax": options}, seed=seed, log=lambda *_: None, progress=False)


def test_reference_split_is_disjoint_seeded_and_sized():
    members, reference = reference_split(100, 0.25, seed=3)
    assert len(reference) == 25 and len(members) == 75
    assert not set(members) & set(reference) and set(members) | set(reference) == set(range(100))
    again = reference_split(100, 0.25, seed=3)
    assert np.array_equal(members, again[0]) and not np.array_equal(reference, reference_split(100, 0.25, 4)[1])


def test_retrains_without_mutating_and_is_reproducible(float_graph, small_data):
    before = {k: v.copy() for k, v in float_graph.params.items()}
    a = get_pass("minmax").run(float_graph, _ctx(small_data, epochs=2))
    b = get_pass("minmax").run(float_graph, _ctx(small_data, epochs=2))
    assert all(np.array_equal(before[k], float_graph.params[k]) for k in before)
    assert [n.op for n in a.nodes] == [n.op for n in float_graph.nodes]
    assert any(not np.array_equal(a.params[k], before[k]) for k in before)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert a.meta["minmax"]["reference_size"] == 50 and a.meta["minmax"]["trained_on"] == 150
    accuracy = (predict_logits(a, small_data.x_test).argmax(1) == small_data.y_test).mean()
    assert accuracy > 0.8  # 2 epochs from trained weights keep the model


def test_rejects_integer_graphs(digits_lowered, small_data):
    with pytest.raises(PassError, match="before lower"):
        get_pass("minmax").run(digits_lowered[1], _ctx(small_data))


def test_options_are_validated():
    with pytest.raises(RecipeError, match="lambda_"):
        validate_recipe({"minmax": {"lambda_": -1.0}}, [])
    with pytest.raises(RecipeError, match="reference_fraction"):
        validate_recipe({"minmax": {"reference_fraction": 1.0}}, [])
    assert get_pass("minmax").needs_data


@pytest.mark.slow
def test_adversarial_regularization_reduces_the_loss_gap():
    """An MLP overfit on 100 digits, retrained 30 epochs with and without the attack's term:
    the members' loss stands out less (loss-attack AUC) with lambda = 3."""
    from benchmarks.datasets import MlpRecipe, export_onnx, load_digits, member_split, train_torch_mlp

    x, y = load_digits()
    split = member_split(x, y, 100, 300, seed=1)
    data = Dataset(split["x_train"], split["y_train"], split["x_test"], split["y_test"])
    model = train_torch_mlp(data.x_train, data.y_train, 10, MlpRecipe(hidden=(128,), epochs=300, seed=1))
    with tempfile.TemporaryDirectory() as tmp:
        graph = get_pass("canonicalize").run(load_onnx(export_onnx(model, (8, 8), Path(tmp) / "m.onnx")), _ctx(None))

    def loss_auc(g):
        xs = np.concatenate([data.x_train, data.x_test])
        ys = np.concatenate([data.y_train, data.y_test])
        return roc_auc_score(np.arange(len(xs)) < len(data.x_train), -loss(predict_logits(g, xs), ys))

    plain = get_pass("minmax").run(graph, _ctx(data, epochs=30, lambda_=0.0))
    defended = get_pass("minmax").run(graph, _ctx(data, epochs=30, lambda_=3.0))
    assert loss_auc(defended) < loss_auc(plain) - 0.03
