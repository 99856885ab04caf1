"""fine_prune: ranking by clean activation, pruning within the accuracy budget, structural
removal, fine-tuning that keeps zeros, option errors, and the backdoor it removes."""

import numpy as np
import pytest

from compiler import passes  # noqa: F401
from compiler.data import Dataset
from compiler.exec import predict_logits
from compiler.frontend.onnx import load_onnx
from compiler.passes.base import Context, PassError, get_pass
from compiler.passes.fine_prune import chosen_layer, holdout_split, mean_activation
from compiler.recipe import RecipeError, validate_recipe
from tests.conftest import EXAMPLES


def _ctx(data, **options):
    return Context(data=data, recipe={"fine_prune": options}, seed=0, log=lambda *_: None, progress=False)


@pytest.fixture(scope="module")
def cnn_graph():
    return get_pass("canonicalize").run(load_onnx(EXAMPLES / "digits_cnn.onnx"), _ctx(None))


@pytest.fixture(scope="module")
def small_data(digits_data):
    d = digits_data
    return Dataset(d.x_train[:400], d.y_train[:400], d.x_test[:200], d.y_test[:200])


def _accuracy(graph, x, y):
    return float((predict_logits(graph, x).argmax(1) == y).mean())


def test_default_layer_is_the_last_conv_or_the_last_hidden_dense(float_graph, cnn_graph):
    dense = [n.name for n in float_graph.weighted_nodes()]
    assert chosen_layer(float_graph, "").name == dense[-2]  # the last one's outputs are the classes
    convs = [n.name for n in cnn_graph.nodes if n.op == "conv2d"]
    assert chosen_layer(cnn_graph, "").name == convs[-1]


def test_unprunable_or_unknown_layers_are_refused_by_name(float_graph):
    last = float_graph.weighted_nodes()[-1].name
    with pytest.raises(PassError, match=f"layer {last!r} .* no prunable units"):
        chosen_layer(float_graph, last)
    with pytest.raises(PassError, match="'nope' is not in the graph"):
        chosen_layer(float_graph, "nope")


def test_prunes_least_active_first_within_budget_and_removes_them(float_graph, small_data):
    before = {k: v.copy() for k, v in float_graph.params.items()}
    ctx = _ctx(small_data, fine_tune_epochs=0, max_accuracy_drop=0.02)
    g = get_pass("fine_prune").run(float_graph, ctx)
    assert all(np.array_equal(before[k], float_graph.params[k]) for k in before)  # input untouched

    record = g.meta["fine_prune"]
    layer = chosen_layer(float_graph, "")
    fit, held = holdout_split(len(small_data.x_train), 0.2, seed=0)
    activation = mean_activation(float_graph, layer, small_data.x_train[fit])
    k = len(record["pruned"])
    assert k > 0 and record["pruned"] == list(np.argsort(activation, kind="stable")[:k])
    base = record["steps"][0]["accuracy"]
    assert all(base - s["accuracy"] <= 0.02 for s in record["steps"][1 : k + 1])  # every kept step within budget
    if len(record["steps"]) > k + 1:  # the step that stopped pruning broke the budget
        assert base - record["steps"][-1]["accuracy"] > 0.02
    # removed from the hardware: the layer has k fewer rows, the next reads k fewer columns
    assert g.params[layer.inputs[1]].shape[0] == before[layer.inputs[1]].shape[0] - k
    held_acc = _accuracy(g, small_data.x_train[held], small_data.y_train[held])
    assert held_acc == pytest.approx(record["steps"][k]["accuracy"])  # removal is exact


def test_removal_is_exact_and_fine_tuning_keeps_pruned_units_at_zero(float_graph, small_data):
    kept = get_pass("fine_prune").run(float_graph, _ctx(small_data, fine_tune_epochs=0, remove_dead=False))
    removed = get_pass("fine_prune").run(float_graph, _ctx(small_data, fine_tune_epochs=0))
    x = small_data.x_test
    assert np.allclose(predict_logits(kept, x), predict_logits(removed, x), atol=1e-4)

    tuned = get_pass("fine_prune").run(float_graph, _ctx(small_data, fine_tune_epochs=2, remove_dead=False))
    layer = chosen_layer(float_graph, "")
    pruned = tuned.meta["fine_prune"]["pruned"]
    assert pruned and not tuned.params[layer.inputs[1]][pruned].any()
    assert not tuned.params[layer.inputs[2]][pruned].any()
    assert not np.array_equal(tuned.params[layer.inputs[1]], kept.params[layer.inputs[1]])  # it trained
    ft = tuned.meta["fine_prune"]["fine_tune"]
    assert ft["epochs"] == 2 and 0 <= ft["accuracy_after"] <= 1


def test_fine_tuning_alone_prunes_nothing(float_graph, small_data):
    g = get_pass("fine_prune").run(float_graph, _ctx(small_data, prune=False, fine_tune_epochs=1))
    assert "pruned" not in g.meta["fine_prune"]
    assert all(g.params[k].shape == v.shape for k, v in float_graph.params.items())


def test_conv_filters_are_pruned_and_removed(cnn_graph, small_data):
    data = Dataset(small_data.x_train[:, None], small_data.y_train, small_data.x_test[:, None], small_data.y_test)
    g = get_pass("fine_prune").run(cnn_graph, _ctx(data, fine_tune_epochs=0, max_accuracy_drop=0.1))
    layer = chosen_layer(cnn_graph, "")
    k = len(g.meta["fine_prune"]["pruned"])
    assert k > 0 and g.params[layer.inputs[1]].shape[0] == cnn_graph.params[layer.inputs[1]].shape[0] - k


def test_options_are_validated(digits_lowered, small_data):
    for bad, match in (
        ({"max_accuracy_drop": 2}, "max_accuracy_drop"),
        ({"holdout": 0}, "holdout"),
        ({"layer": 3}, "layer"),
        ({"prune": "yes"}, "prune"),
    ):
        with pytest.raises(RecipeError, match=match):
            validate_recipe({"passes": ["canonicalize", "fine_prune", "lower"], "fine_prune": bad}, [])
    with pytest.raises(PassError, match="before lower"):
        get_pass("fine_prune").run(digits_lowered[1], _ctx(small_data))
