"""mia_quant: weight grids chosen for membership privacy under an accuracy budget (Famili & Lao 2023)."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from compiler import passes  # noqa: F401
from compiler.audit.signals import loss
from compiler.data import Dataset
from compiler.exec import predict_classes, predict_logits
from compiler.frontend.onnx import load_onnx
from compiler.ir import FixedPoint
from compiler.passes.base import Context, PassError, get_pass
from compiler.passes.mia_quant import split_train
from compiler.recipe import RecipeError, validate_recipe

QUICK = {"lambdas": [3.0], "bits": [3, 4], "per_layer_search": False, "max_accuracy_drop": 0.1}


def _ctx(data, seed=0, name="mia_quant", **options):
    return Context(data=data, recipe={name: options}, seed=seed, log=lambda *_: None, progress=False)


def noisy_prototypes(seed: int, n: int, features: int = 64, classes: int = 10, flip: float = 0.4):
    """Binary vectors near one random prototype per class, 40% of bits flipped: hard enough that
    a small MLP memorizes its training set (members' loss far below everyone else's)."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((classes, features)) < 0.5
    y = rng.integers(0, classes, n)
    x = prototypes[y] ^ (rng.random((n, features)) < flip)
    return x.astype(np.float32), y


def overfit_model(seed: int, members: int = 400, binary: bool = False):
    """(canonicalized float graph, Dataset): a 64-64-10 MLP trained 200 epochs on `members` rows,
    as many non-members in x_test; `binary`: an untrained 64-64-1 sigmoid model on labels y % 2."""
    import torch

    from benchmarks.datasets import MlpRecipe, export_onnx, member_split, train_torch_mlp

    x, y = noisy_prototypes(seed, 2 * members)
    split = member_split(x, y % 2 if binary else y, members, members, seed=seed)
    data = Dataset(split["x_train"], split["y_train"], split["x_test"], split["y_test"])
    if binary:
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1), torch.nn.Sigmoid()
        )
    else:
        model = train_torch_mlp(data.x_train, data.y_train, 10, MlpRecipe(hidden=(64,), epochs=200, seed=seed))
    with tempfile.TemporaryDirectory() as tmp:
        graph = load_onnx(export_onnx(model, (64,), Path(tmp) / "m.onnx"))
    return get_pass("canonicalize").run(graph, _ctx(None)), data


@pytest.fixture(scope="module")
def overfit():
    return overfit_model(seed=1)


def _loss_auc(graph, data):
    """The audit's loss-threshold AUC: all of x_train (members) against x_test."""
    xs, ys = np.concatenate([data.x_train, data.x_test]), np.concatenate([data.y_train, data.y_test])
    return roc_auc_score(np.arange(len(xs)) < len(data.x_train), -loss(predict_logits(graph, xs), ys))


def test_weights_lie_on_the_annotated_grids_and_lower_keeps_them_exactly(overfit):
    graph, data = overfit
    options = {**QUICK, "bits": [3, 4, 6], "per_layer_search": True, "epochs": 10, "max_accuracy_drop": 1.0}
    chosen = get_pass("mia_quant").run(graph, _ctx(data, **options))
    meta = chosen.meta["mia_quant"]
    assert len(meta["candidates"]) == 3 + 2 * 2  # uniform widths, then each layer's two others
    lowered = get_pass("lower").run(chosen, _ctx(data, name="lower"))
    for f_node, i_node in zip(chosen.weighted_nodes(), lowered.weighted_nodes()):
        fmt = FixedPoint.from_dict(f_node.annotations["weight_format"])
        assert fmt.bits == meta["bits"][f_node.name] == f_node.annotations["mia_quant"]["bits"]
        levels = chosen.params[f_node.inputs[1]].astype(np.float64) * 2.0**fmt.frac
        assert np.array_equal(levels, np.round(levels))
        assert fmt.min_int <= levels.min() and levels.max() <= fmt.max_int
        assert i_node.attrs["weight_format"] == fmt.to_dict()  # lower took the grid, not weight_bits
        assert np.array_equal(lowered.params[i_node.inputs[1]], levels.astype(np.int64))  # bit-exact


def test_the_accuracy_budget_holds_on_the_held_out_slice(overfit):
    graph, data = overfit
    options = {**QUICK, "lambdas": [1.5, 6.0], "max_accuracy_drop": 0.04}
    chosen = get_pass("mia_quant").run(graph, _ctx(data, **options))
    meta = chosen.meta["mia_quant"]
    split = split_train(len(data.x_train), 0.2, 0.25, seed=0)
    on_slice = predict_classes(chosen, data.x_train[split.validation]) == data.y_train[split.validation]
    accuracy = float(on_slice.mean())
    assert accuracy == pytest.approx(meta["candidates"][meta["chosen"]]["accuracy"])
    assert meta["float"]["accuracy"] - accuracy <= 0.04 + 1e-9
    for trial in meta["candidates"]:
        assert trial["within_budget"] == (trial["accuracy_drop"] <= 0.04 + 1e-9)
    assert not all(t["within_budget"] for t in meta["candidates"])  # lambda 6 costs too much here
    assert meta["sizes"] == {"members": 220, "reference": 100, "validation": 80}
    # init = "current": the float model is the graph as given, measured on the same slice
    current = get_pass("mia_quant").run(graph, _ctx(data, **{**QUICK, "init": "current", "max_accuracy_drop": 1.0}))
    given = predict_classes(graph, data.x_train[split.validation]) == data.y_train[split.validation]
    assert current.meta["mia_quant"]["float"]["accuracy"] == pytest.approx(given.mean())


def test_lowers_the_membership_signal_against_plain_quantization_at_the_same_bits(overfit):
    """On the overfit MLP (float: test accuracy 39.5%, loss AUC 0.840), mia_quant chooses 3 bits
    at lambda 3. The signal it optimizes (loss-threshold AUC of its members against the held-out
    slice) is below what rounding its float model onto the same grids gives, and below the same
    training with lambda 0; the audit's loss AUC of the integer model (all of x_train against
    x_test) is below lower's plain 3-bit quantization of the given model.
    Measured (seeds 1/2/3 of data and model): in-pass AUC 0.831/0.799/0.793 against rounding
    0.862/0.845/0.803 and lambda 0 0.848/0.842/0.803; audit AUC 0.655/0.689/0.681 against plain
    0.725/0.713/0.722, but lambda 0 gives 0.646/0.690/0.692: most of the audit's drop comes from
    retraining without the 45% of x_train held out (never fit, so never leaked), not from the
    term. On the rows it trained on, mia_quant's model leaks more than plain 3-bit rounding of
    the given model (AUC 0.795/0.815/0.819 against 0.736/0.716/0.718), whose accuracy 3 bits
    wreck (test 27-32% against mia_quant's 31-32%). docs/audit.md has the Location figures."""
    graph, data = overfit
    options = {**QUICK, "lambdas": [1.5, 3.0]}
    defended = get_pass("mia_quant").run(graph, _ctx(data, **options))
    meta = defended.meta["mia_quant"]
    bits, chosen = meta["bits"], meta["candidates"][meta["chosen"]]
    assert list(bits.values()) == [3, 3] and meta["lambda_"] == 3.0
    pinned = {n: {"bits": [b]} for n, b in bits.items()}
    control = get_pass("mia_quant").run(graph, _ctx(data, **{**options, "lambdas": [0.0], "layers": pinned}))
    # the pass's own signal: members against the held-out slice, recomputed here
    split = split_train(len(data.x_train), 0.2, 0.25, seed=0)
    members, held_out = split.members, split.validation
    xs = np.concatenate([data.x_train[members], data.x_train[held_out]])
    ys = np.concatenate([data.y_train[members], data.y_train[held_out]])
    in_pass = roc_auc_score(np.arange(len(xs)) < len(members), -loss(predict_logits(defended, xs), ys))
    assert in_pass == pytest.approx(chosen["loss_auc"])
    assert chosen["loss_auc"] < chosen["plain_quantization"]["loss_auc"] - 0.005
    assert chosen["loss_auc"] < control.meta["mia_quant"]["candidates"][0]["loss_auc"] - 0.005
    # the audit's view of the integer models
    plain = get_pass("lower").run(
        graph, _ctx(data, name="lower", layers={n: {"weight_bits": b} for n, b in bits.items()})
    )
    assert _loss_auc(get_pass("lower").run(defended, _ctx(data, name="lower")), data) < _loss_auc(plain, data) - 0.02


def test_is_deterministic_from_the_seed_and_leaves_its_input_alone(overfit):
    graph, data = overfit
    before = {k: v.copy() for k, v in graph.params.items()}
    a = get_pass("mia_quant").run(graph, _ctx(data, **QUICK))
    b = get_pass("mia_quant").run(graph, _ctx(data, **QUICK))
    c = get_pass("mia_quant").run(graph, _ctx(data, seed=1, **QUICK))
    assert all(np.array_equal(before[k], graph.params[k]) for k in before)
    assert "mia_quant" not in graph.meta and all("weight_format" not in n.annotations for n in graph.nodes)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params) and a.meta == b.meta
    assert any(not np.array_equal(a.params[k], c.params[k]) for k in a.params)


def test_a_bad_option_names_the_option(overfit):
    graph, data = overfit
    for key, value in [
        ("lambdas", [-1.0]),
        ("lambdas", 3.0),
        ("bits", [9]),
        ("bits", []),
        ("bits", [4, 4]),
        ("max_accuracy_drop", 1.5),
        ("membership_term", "loss"),
        ("init", "fresh"),
        ("epochs", 0),
        ("validation_fraction", 0.9),
    ]:
        with pytest.raises(PassError, match=f"mia_quant: {key} must"):
            get_pass("mia_quant").run(graph, _ctx(data, **{key: value}))
        with pytest.raises(RecipeError, match=key):
            validate_recipe({"mia_quant": {key: value}}, [])
    layer = graph.weighted_nodes()[0].name
    with pytest.raises(PassError, match=f"layer '{layer}': bits must"):
        get_pass("mia_quant").run(graph, _ctx(data, layers={layer: {"bits": [1]}}))
    with pytest.raises(PassError, match="leave no members"):
        get_pass("mia_quant").run(graph, _ctx(Dataset(data.x_train[:2], data.y_train[:2], data.x_test, data.y_test)))
    validate_recipe({"mia_quant": {"bits": [2, 4], "lambdas": [0, 2.5], "layers": {layer: {"bits": [8]}}}}, [layer])
    assert get_pass("mia_quant").needs_data


def test_an_impossible_budget_says_what_was_tried_and_the_best_accuracy(overfit):
    graph, data = overfit
    options = {**QUICK, "lambdas": [200.0], "bits": [2], "max_accuracy_drop": 0.0, "epochs": 5}
    with pytest.raises(PassError) as error:
        get_pass("mia_quant").run(graph, _ctx(data, **options))
    message = str(error.value)
    assert "no configuration meets max_accuracy_drop = 0.0" in message
    assert "80 rows of x_train" in message and "lambda 200, 2/2 bits: " in message
    assert "Best accuracy" in message and "Raise max_accuracy_drop" in message


def test_refuses_integer_graphs_and_layers_already_on_a_grid(overfit):
    graph, data = overfit
    lowered = get_pass("lower").run(graph, _ctx(data, name="lower"))
    with pytest.raises(PassError, match="before lower"):
        get_pass("mia_quant").run(lowered, _ctx(data))
    on_grid = graph.copy()
    on_grid.weighted_nodes()[1].annotations["weight_format"] = {"bits": 4, "frac": 3}
    with pytest.raises(PassError, match="already on a weight grid"):
        get_pass("mia_quant").run(on_grid, _ctx(data))


def test_the_adversarial_term_and_binary_models(overfit):
    graph, data = overfit
    gap = get_pass("mia_quant").run(graph, _ctx(data, **QUICK))
    game = get_pass("mia_quant").run(graph, _ctx(data, membership_term="adversarial", **QUICK))
    assert game.meta["mia_quant"]["membership_term"] == "adversarial"
    assert any(not np.array_equal(gap.params[k], game.params[k]) for k in gap.params)
    binary, binary_data = overfit_model(seed=2, members=200, binary=True)
    result = get_pass("mia_quant").run(binary, _ctx(binary_data, **{**QUICK, "max_accuracy_drop": 1.0}))
    node = result.weighted_nodes()[-1]
    levels = result.params[node.inputs[1]] * 2.0 ** node.annotations["weight_format"]["frac"]
    assert np.array_equal(levels, np.round(levels))
    with pytest.raises(PassError, match="one output per class"):
        get_pass("mia_quant").run(binary, _ctx(binary_data, membership_term="adversarial"))
