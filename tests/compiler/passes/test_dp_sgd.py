import json
import math

import numpy as np
import pytest
import torch
from opacus.grad_sample import GradSampleModule

from benchmarks.exporter_corpus import torch_sigmoid_head
from compiler import api, passes  # noqa: F401
from compiler.data import Dataset, load_data
from compiler.exec import predict_logits
from compiler.exec.torch import logits_module
from compiler.frontend.onnx import load_onnx
from compiler.ir import Graph
from compiler.passes.base import Context, PassError, get_pass
from compiler.passes.dp_sgd import WholeGraphLayer, noise_multiplier_for
from compiler.recipe import RecipeError, load_recipe, validate_recipe
from tests.conftest import export_pool_zoo

QUICK = {"epochs": 2}


def _ctx(data, seed=0, **options):
    return Context(data=data, recipe={"dp_sgd": options}, seed=seed, log=lambda *_: None, progress=False)


def _run(graph, data, seed=0, **options):
    return get_pass("dp_sgd").run(graph, _ctx(data, seed, **options))


def _accuracy(graph, x, y):
    return float((predict_logits(graph, x).argmax(1) == y).mean())


def test_spends_at_most_the_target_epsilon_and_nearly_all_of_it(float_graph, small_data):
    meta = _run(float_graph, small_data, epsilon=2.0, **QUICK).meta["dp_sgd"]
    assert 1.95 <= meta["epsilon"] <= 2.0 and meta["target_epsilon"] == 2.0
    assert meta["delta"] == pytest.approx(1 / 200) and meta["trained_on"] == 200
    assert meta["sample_rate"] == pytest.approx(64 / 200) and meta["steps"] == 2 * 3  # round(200 / 64) a epoch
    assert meta["accountant"] == "rdp" and meta["init"] == "reinitialize" and meta["noise_multiplier"] > 0


def test_a_smaller_epsilon_needs_more_noise():
    sigmas = [noise_multiplier_for(eps, 1e-3, 0.05, 600) for eps in (0.5, 1.0, 4.0, 16.0)]
    assert all(a > b > 0 for a, b in zip(sigmas, sigmas[1:]))
    assert noise_multiplier_for(math.inf, 1e-3, 0.05, 600) == 0.0
    assert noise_multiplier_for(1.0, 1e-3, 0.05, 600) > noise_multiplier_for(
        1.0, 1e-2, 0.05, 600
    )  # and a smaller delta


def test_empty_poisson_samples_are_noise_steps_the_accountant_counts(float_graph, small_data):
    """batch_size 1 on 60 examples: about a third of the 60 Poisson samples are empty. The spent
    epsilon matches the target only if every one of them was a step of the accountant."""
    tiny = Dataset(small_data.x_train[:60], small_data.y_train[:60], small_data.x_test, small_data.y_test)
    meta = _run(float_graph, tiny, epsilon=3.0, batch_size=1, epochs=1).meta["dp_sgd"]
    assert meta["steps"] == 60 and 2.95 <= meta["epsilon"] <= 3.0


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_per_example_gradients_are_exact_through_dense_conv_and_pools(float_graph, small_data, tmp_path):
    """Opacus' per-example gradients of the whole graph (WholeGraphLayer) equal autograd's on
    each example alone: for the digits MLP and a CNN with max, average and global pooling."""
    cnn = get_pass("canonicalize").run(load_onnx(export_pool_zoo(tmp_path / "zoo.onnx")), _ctx(None))
    cases = [(float_graph, small_data.x_train[:5]), (cnn, small_data.x_train[:5].reshape(5, 1, 8, 8))]
    for graph, x in cases:
        module = logits_module(graph).train()
        layer = WholeGraphLayer(module)
        per_example = GradSampleModule(layer, loss_reduction="sum", force_functorch=True)
        xt, yt = torch.from_numpy(np.array(x, np.float32)), torch.from_numpy(small_data.y_train[:5])
        torch.nn.functional.cross_entropy(per_example(xt), yt, reduction="sum").backward()
        for i in range(len(x)):
            module.zero_grad()
            torch.nn.functional.cross_entropy(module(xt[i : i + 1]), yt[i : i + 1]).backward()
            for own, p in layer.named_parameters():
                inner = dict(module.named_parameters())[layer.inner_names[own]]
                assert torch.allclose(p.grad_sample[i], inner.grad, atol=1e-5), own
        per_example.remove_hooks()


class _RecordingAdam(torch.optim.Adam):
    """Adam that records the norm of the (clipped, noised, scaled) gradient it is given."""

    norms: list[float] = []

    def step(self, closure=None):
        grads = [p.grad.flatten() for group in self.param_groups for p in group["params"]]
        _RecordingAdam.norms.append(float(torch.cat(grads).norm()))
        return super().step(closure)


def test_every_example_gradient_is_clipped(float_graph, small_data, monkeypatch):
    """Without noise the step's gradient is the sum of the clipped example gradients over the
    expected batch size (64): its norm is at most max_grad_norm * |batch| / 64 (|batch| < 100
    here), whereas the unclipped mean gradient of a fresh network is far larger."""
    monkeypatch.setattr(torch.optim, "Adam", _RecordingAdam)

    def step_norms(max_grad_norm):
        _RecordingAdam.norms = []
        _run(float_graph, small_data, epsilon=math.inf, max_grad_norm=max_grad_norm, epochs=1)
        return np.array(_RecordingAdam.norms)

    clipped, free = step_norms(1e-3), step_norms(1e3)
    assert len(clipped) == 3 and clipped.max() <= 1e-3 * 100 / 64
    assert free.min() > 50 * clipped.max()


def test_same_seed_same_weights_other_seed_other_weights_input_untouched(float_graph, small_data):
    before = {k: v.copy() for k, v in float_graph.params.items()}
    a, b = _run(float_graph, small_data, **QUICK), _run(float_graph, small_data, **QUICK)
    c = _run(float_graph, small_data, seed=1, **QUICK)
    assert all(np.array_equal(before[k], float_graph.params[k]) for k in before)
    assert "dp_sgd" not in float_graph.meta and [n.op for n in a.nodes] == [n.op for n in float_graph.nodes]
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params) and a.meta == b.meta
    assert any(not np.array_equal(a.params[k], c.params[k]) for k in a.params)


def test_reinitialize_starts_afresh_and_current_fine_tunes(float_graph, small_data):
    """With a vanishing learning rate the result is the start: fresh weights (chance accuracy)
    for init = reinitialize, the trained model's for init = current."""
    x, y = small_data.x_test, small_data.y_test
    still = {"epsilon": math.inf, "lr": 1e-7, "epochs": 1}
    fresh = _run(float_graph, small_data, **still)
    tuned = _run(float_graph, small_data, init="current", **still)
    w = float_graph.weighted_nodes()[0].inputs[1]
    assert np.abs(fresh.params[w] - float_graph.params[w]).max() > 0.05
    assert np.abs(tuned.params[w] - float_graph.params[w]).max() < 1e-4
    assert _accuracy(float_graph, x, y) > 0.9 and _accuracy(tuned, x, y) > 0.9 and _accuracy(fresh, x, y) < 0.4
    assert fresh.meta["dp_sgd"]["covers"] == "the whole model"
    assert tuned.meta["dp_sgd"]["init"] == "current" and "fine-tuning only" in tuned.meta["dp_sgd"]["covers"]


def test_reinitialize_names_the_parameters_it_cannot_reset(matmul_add_model, small_data):
    """An explicit bias_add (no canonicalize) keeps its trained bias: meta says so."""
    meta = _run(load_onnx(matmul_add_model), small_data, epsilon=math.inf, epochs=1).meta["dp_sgd"]
    assert meta["kept_from_input"] == ["add0.bias", "add1.bias"]


def test_trains_a_model_and_a_binary_classifier(float_graph, digits_data, tmp_path):
    """Without noise the procedure learns (digits: 10 classes; digit 0 vs 1: one sigmoid output,
    whose cross-entropy is exec.train's binary one); at epsilon 4 it still beats chance."""
    d = digits_data
    control = _run(float_graph, d, epsilon=math.inf, epochs=10, lr=1e-2)  # measured: 92.3%
    private = _run(float_graph, d, epsilon=4.0, epochs=10, lr=1e-2)  # 75.9%
    assert _accuracy(control, d.x_test, d.y_test) > 0.85 and _accuracy(private, d.x_test, d.y_test) > 0.6
    model, data_path = torch_sigmoid_head(tmp_path)
    binary = load_data(data_path, (64,), 2)
    trained = _run(load_onnx(model), binary, epsilon=math.inf, epochs=5)
    predicted = predict_logits(trained, binary.x_test)[:, 0] >= 0.5  # a probability output
    assert np.mean(predicted == binary.y_test) > 0.95


def test_options_and_errors(float_graph, small_data, digits_lowered, tmp_path):
    validate_recipe({"dp_sgd": {"epsilon": 8.0, "delta": 1e-5, "max_grad_norm": 0.5, "init": "current"}}, [])
    recipe = tmp_path / "r.toml"
    recipe.write_text("[dp_sgd]\nepsilon = inf\n")
    doc = load_recipe(recipe)
    validate_recipe(doc, [])
    assert doc["dp_sgd"]["epsilon"] == math.inf
    for option, bad in [("epsilon", 0.0), ("epsilon", -1.0), ("max_grad_norm", 0.0), ("delta", 1.0), ("init", "x")]:
        with pytest.raises(RecipeError, match=option):
            validate_recipe({"dp_sgd": {option: bad}}, [])
    assert get_pass("dp_sgd").needs_data
    with pytest.raises(PassError, match="before lower"):
        get_pass("dp_sgd").run(digits_lowered[1], _ctx(small_data))
    with pytest.raises(PassError, match="epsilon 1e-05 is too small"):
        _run(float_graph, small_data, epsilon=1e-5)


def test_compile_records_the_guarantee_in_meta_and_report(digits_model, digits_npz, tmp_path):
    recipe = tmp_path / "dp.toml"
    recipe.write_text('passes = ["canonicalize", "dp_sgd", "lower"]\n[dp_sgd]\nepsilon = 3.0\nepochs = 3\n')
    out = tmp_path / "out"
    report = api.compile(
        digits_model, digits_npz, out, recipe=recipe, synth_timeout=None, log=lambda *_: None, progress=False
    )
    meta = Graph.load(out).meta["dp_sgd"]  # the integer graph keeps it through lower and plan
    expected = {"epsilon", "target_epsilon", "delta", "noise_multiplier", "max_grad_norm", "epochs", "batch_size"}
    assert expected | {"sample_rate", "steps", "init", "accountant", "trained_on"} <= set(meta)
    written = json.loads((out / "report.json").read_text())
    dp = written["privacy_training"]["dp_sgd"]
    assert dp == report["privacy_training"]["dp_sgd"]
    assert {k: dp[k] for k in ("epsilon", "delta", "noise_multiplier", "max_grad_norm")} == {
        k: meta[k] for k in ("epsilon", "delta", "noise_multiplier", "max_grad_norm")
    }
    assert dp["epsilon"] <= 3.0 and "DP-SGD training" in (out / "report.md").read_text()
