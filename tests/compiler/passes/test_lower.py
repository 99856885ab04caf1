import numpy as np
import pytest

import kernels
from compiler.exec import predict_classes
from compiler.ir import FixedPoint
from compiler.ops.formats import choose_format
from tests.conftest import EXAMPLES, lower_model


def _accuracy(graph, data):
    return float(np.mean(predict_classes(graph, data.x_test) == data.y_test))


@pytest.mark.parametrize("model", ["digits_mlp.onnx", "digits_matmul_add.onnx"])
def test_integer_accuracy_within_one_point_of_float(model, digits_data):
    float_g, int_g = lower_model(EXAMPLES / model, digits_data)
    assert _accuracy(int_g, digits_data) >= _accuracy(float_g, digits_data) - 0.01


def test_integer_graph_follows_the_contract(digits_lowered, digits_data):
    _, g = digits_lowered
    assert [n.op for n in g.nodes] == [
        "quantize",
        "flatten",
        "dense",
        "requantize",
        "dense",
        "requantize",
        "dense",
        "dequantize",
    ]
    for node in g.nodes:
        if node.op == "requantize":
            assert node.attrs["shift"] >= 0 and node.attrs["relu"] and node.attrs["bits"] == 8
        if node.op == "dense":
            w = g.params[node.inputs[1]]
            fmt = FixedPoint.from_dict(node.attrs["weight_format"])
            assert w.min() >= fmt.min_int and w.max() <= fmt.max_int
            assert node.attrs["acc_frac"] == fmt.frac + node.attrs["input_format"]["frac"]
            b = g.params[node.inputs[2]] if len(node.inputs) > 2 else None
            assert node.attrs["acc_bits"] == kernels.dense_accumulator_bits(w, b, node.attrs["input_format"]["bits"])


def test_choose_format_covers_the_peak_or_clips_rare_outliers():
    values = np.linspace(-1.0, 1.0, 1001)

    def mse(f):
        return np.mean((kernels.dequantize(kernels.quantize(values, f, 8), f) - values) ** 2)

    # 2**6 covers the peak; 2**7 clips only |x| > 127.5/128 and halves the step: it wins; 2**8 clips half
    assert choose_format(values, 8).frac == 7 and mse(7) < mse(6) < mse(8)
    spiky = np.concatenate([np.random.default_rng(0).normal(0, 0.1, 100_000), [3.0]])
    fmt = choose_format(spiky, 8)
    assert fmt.frac > choose_format(np.array([3.0]), 8).frac  # one outlier is clipped for resolution
    assert choose_format(values, 8, max_frac=4).frac == 4
    assert choose_format(np.zeros(10), 8).frac == 7


def test_weight_and_activation_bits_options(digits_data):
    _, g = lower_model(
        EXAMPLES / "digits_mlp.onnx",
        digits_data,
        {"lower": {"weight_bits": 6, "activation_bits": 5, "layers": {"/5/Gemm": {"weight_bits": 4}}}},
    )
    dense = g.weighted_nodes()
    assert [n.attrs["weight_format"]["bits"] for n in dense] == [6, 6, 4]
    assert all(n.attrs["input_format"]["bits"] == 5 for n in dense)
    assert all(np.abs(g.params[n.inputs[1]]).max() <= 2 ** (n.attrs["weight_format"]["bits"] - 1) for n in dense)


def test_dense_model_gets_dense_engines_balanced_to_the_largest_layer(digits_lowered):
    _, g = digits_lowered
    plan = [(n.annotations["engine"], n.annotations["multipliers"]) for n in g.weighted_nodes()]
    assert plan[0] == ("dense", 16)  # the largest layer takes the budget
    target = g.weighted_nodes()[0].annotations["cost"]["dense"]["compute_cycles"]
    for node in g.weighted_nodes():
        assert node.annotations["engine"] == "dense"  # unpruned: indices would only cost bits
        assert node.annotations["cost"]["dense"]["compute_cycles"] <= target


def test_pruned_layers_take_the_sparse_engine_unless_the_recipe_says_dense(digits_data):
    recipe = {
        "admm": {"sparsity": 0.8, "admm_epochs": 2, "retrain_epochs": 1},
        "lower": {"layers": {"/5/Gemm": {"engine": "dense", "multipliers": 3}}},
    }
    _, g = lower_model(EXAMPLES / "digits_mlp.onnx", digits_data, recipe)
    engines = {n.name: n.annotations for n in g.weighted_nodes()}
    assert engines["/1/Gemm"]["engine"] == "sparse" and engines["/1/Gemm"]["delta_bits"] >= 1
    assert engines["/5/Gemm"]["engine"] == "dense" and engines["/5/Gemm"]["multipliers"] == 3
    assert "chosen by recipe" in engines["/5/Gemm"]["engine_reason"]
    assert engines["/1/Gemm"]["break_even_sparsity"] < 0.8
