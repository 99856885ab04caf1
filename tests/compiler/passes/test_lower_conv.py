"""lower on convolutional graphs: conv2d / pools become integer nodes with the shapes and
formats docs/fixed-point.md states, the golden executor keeps the float model's accuracy, the
conv engine plan meets the cycle budget, and what has no integer form is refused by name."""

import itertools

import numpy as np
import pytest
import torch

from benchmarks.cnn_graphs import build_cnn, conv, dense, flatten, maxpool
from compiler import hw
from compiler.data import Dataset, load_data
from compiler.exec import golden
from compiler.exec import torch as torch_exec
from compiler.hw import conv as hw_conv
from compiler.passes.base import PassError
from compiler.passes.plan import cycle_budget
from tests.conftest import EXAMPLES, export_pool_zoo, lower_model


def _plan_conv(graph, node, opts, recipe, budget):
    """The conv engine's plan for `node` at `budget` cycles (or the recipe's multipliers)."""
    fixed = recipe.get("lower", {}).get("layers", {}).get(node.name, {}).get("multipliers")
    node.annotations.update(hw.engine("conv").plan(graph, node, budget, fixed, 16).annotations)


def _largest_layer_cycles(graph, multipliers):
    return cycle_budget(graph, [n for n in graph.nodes if n.op in ("dense", "conv2d")], multipliers)


@pytest.fixture(scope="module")
def cnn_data():
    return load_data(EXAMPLES / "digits.npz", (1, 8, 8), 10)


@pytest.fixture(scope="module")
def cnn_lowered(cnn_data):
    return lower_model(EXAMPLES / "digits_cnn.onnx", cnn_data)


def test_cnn_lowers_to_integer_conv_pool_nodes_in_order(cnn_lowered):
    _, low = cnn_lowered
    assert [n.op for n in low.nodes] == [
        "quantize",
        "conv2d",
        "requantize",
        "maxpool2d",
        "conv2d",
        "requantize",
        "maxpool2d",
        "flatten",
        "dense",
        "dequantize",
    ]
    conv1, conv2 = low.weighted_nodes(include_conv=True)[:2]
    assert conv1.attrs["in_shape"] == [1, 8, 8] and conv1.attrs["out_shape"] == [8, 8, 8]
    assert conv2.attrs["in_shape"] == [8, 4, 4] and conv2.attrs["out_shape"] == [16, 4, 4]
    assert conv1.attrs["stride"] == 1 and conv1.attrs["pads"] == [1, 1, 1, 1]
    pool = low.nodes[3]
    relu = low.nodes[2]
    assert pool.attrs["format"]["frac"] == relu.attrs["out_frac"]  # a pool keeps its input's format
    assert low.node("/7/Gemm").attrs["input_chw"] == [16, 2, 2]
    for layer in (conv1, conv2):  # accumulators that cannot overflow, exactly as wide as needed
        w = low.params[layer.inputs[1]].astype(np.int64)
        b = low.params[layer.inputs[2]]
        worst = int(
            (np.abs(w).reshape(len(w), -1).sum(1) * 2 ** (layer.attrs["input_format"]["bits"] - 1) + np.abs(b)).max()
        )
        assert worst < 2 ** (layer.attrs["acc_bits"] - 1) <= 2 * worst + 1


def test_integer_cnn_keeps_float_accuracy(cnn_lowered, cnn_data):
    graph, low = cnn_lowered
    float_acc = np.mean(torch_exec.run(graph, cnn_data.x_test).argmax(1) == cnn_data.y_test)
    int_acc = np.mean(golden.run(low, cnn_data.x_test).classes == cnn_data.y_test)
    assert float_acc > 0.9 and abs(int_acc - float_acc) <= 0.01


def test_golden_conv_equals_float_conv_on_the_dequantized_grid(cnn_lowered, cnn_data):
    """The first conv's integers, dequantized, are the float conv of the dequantized input and
    weights (exact: every product and sum is a dyadic rational well inside float64)."""
    _, low = cnn_lowered
    conv = low.nodes[1]
    record = {}
    x_q = golden.quantize_input(low, cnn_data.x_test[:16])
    golden.run_integer(low, x_q, record=record)
    acc = golden.step(low, conv, record[conv.name])
    w = low.params[conv.inputs[1]] * 2.0 ** -conv.attrs["weight_format"]["frac"]
    b = low.params[conv.inputs[2]] * 2.0 ** -conv.attrs["acc_frac"]
    x = x_q * 2.0 ** -conv.attrs["input_format"]["frac"]
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=1)
    np.testing.assert_array_equal(acc * 2.0 ** -conv.attrs["acc_frac"], ref.numpy())


def _all_splits(node):
    """Every (p_co, p_ci, p_k) rtl/conv2d.v's timing contract covers (P_CO <= G), by brute force:
    ((p_co, p_ci, p_k), multipliers, cycles, weight ROM bits)."""
    a = node.attrs
    c_in, c_out, (kh, kw) = a["in_shape"][0], a["out_shape"][0], a["kernel"]
    for pc, pi, pk in itertools.product(range(1, c_out + 1), range(1, c_in + 1), range(1, kh * kw + 1)):
        if pc <= -(-kh * kw // pk) * -(-c_in // pi):
            cycles = hw_conv.conv_compute_cycles(a["in_shape"], c_out, a["kernel"], a["stride"], a["pads"], pc, pi, pk)
            rom = hw_conv.conv_weight_rom_bits(
                a["in_shape"], c_out, a["kernel"], pc, pi, a["weight_format"]["bits"], pk
            )
            yield (pc, pi, pk), pc * pi * pk, cycles, rom


def _assert_cheapest_within(node, budget):
    """The node's plan has the fewest multipliers of any covered split within `budget` cycles,
    then the fewest cycles, then the smallest weight ROM."""
    ann = node.annotations
    assert ann["engine"] == "conv" and ann["multipliers"] == ann["p_co"] * ann["p_ci"] * ann["p_k"]
    chosen = {split: (m, c, r) for split, m, c, r in _all_splits(node)}[(ann["p_co"], ann["p_ci"], ann["p_k"])]
    planned = ann["cost"]["conv"]
    assert chosen == (ann["multipliers"], planned["compute_cycles"], planned["weight_rom_bits"])
    assert chosen[1] <= budget
    assert chosen == min((m, c, r) for _, m, c, r in _all_splits(node) if c <= budget)


def test_conv_engines_meet_the_cycle_budget_with_the_fewest_multipliers(cnn_lowered):
    _, low = cnn_lowered
    budget = max(n.annotations["cost"]["conv"]["compute_cycles"] for n in low.nodes if n.op == "conv2d")
    for node in (n for n in low.nodes if n.op == "conv2d"):
        _assert_cheapest_within(node, budget)


def test_a_single_channel_first_layer_gets_kernel_position_parallelism():
    """LeNet-5's conv1 (1 -> 6 channels, 5x5) within conv2's 9600 cycles: at most 6 multipliers
    without P_K (14400 cycles); with it 2 channels x 5 positions, 8640 cycles."""
    graph = build_cnn((1, 28, 28), [conv(6, k=5, pad=0), maxpool(2), conv(16, k=5, pad=0), flatten(), dense(10)])
    conv1 = graph.node("L0_conv2d")
    _plan_conv(graph, conv1, {"engine": "auto"}, {}, 9600)
    ann = conv1.annotations
    assert (ann["p_co"], ann["p_ci"], ann["p_k"], ann["multipliers"]) == (2, 1, 5, 10)
    assert ann["cost"]["conv"]["compute_cycles"] == 24 * 24 * 3 * 5 and "5 kernel positions" in ann["engine_reason"]
    _assert_cheapest_within(conv1, 9600)
    assert _largest_layer_cycles(graph, 16) == 9600  # conv2: 16 x 1 x 1, its multiplies / 16
    _plan_conv(graph, conv1, {"engine": "auto"}, {"lower": {"layers": {"L0_conv2d": {"multipliers": 16}}}}, 9600)
    assert (ann["p_co"], ann["p_ci"], ann["p_k"], ann["cost"]["conv"]["compute_cycles"]) == (3, 1, 5, 5760)


def test_recipe_multipliers_and_sparse_engine_on_a_conv(cnn_data):
    _, low = lower_model(EXAMPLES / "digits_cnn.onnx", cnn_data, {"lower": {"layers": {"/3/Conv": {"multipliers": 4}}}})
    assert low.node("/3/Conv").annotations["multipliers"] <= 4
    with pytest.raises(PassError, match="'/0/Conv' is a convolution: there is no sparse convolution engine"):
        lower_model(EXAMPLES / "digits_cnn.onnx", cnn_data, {"lower": {"layers": {"/0/Conv": {"engine": "sparse"}}}})


def test_pools_lower_and_match_float(tmp_path, cnn_data):
    graph, low = lower_model(export_pool_zoo(tmp_path / "m.onnx"), cnn_data)
    ops = [n.op for n in low.nodes]
    assert ops.count("avgpool2d") == 2 and ops.count("global_avgpool") == 1
    assert ops[1:4] == ["conv2d", "requantize", "maxpool2d"] and low.nodes[2].attrs["relu"]  # relu moved first
    avg = [n for n in low.nodes if n.op == "avgpool2d"]
    assert [a.attrs["count_include_pad"] for a in avg] == [False, True]
    # the integer model follows the float one: logits agree to a few output LSBs' worth
    ref = torch_exec.run(graph, cnn_data.x_test[:64])
    got = golden.run(low, cnn_data.x_test[:64]).logits
    assert np.max(np.abs(got - ref)) < 0.05 * np.max(np.abs(ref)) + 0.05


def test_an_explicit_batchnorm_is_refused_by_name():
    from compiler.ir import Graph, Node, TensorSpec
    from compiler.passes.base import Context, get_pass

    g = Graph(
        [TensorSpec("x", (2, 4, 4))],
        [TensorSpec("y", (10,))],
        [
            Node("batchnorm", "bn0", ["x", "s", "t"], ["h"]),
            Node("flatten", "f", ["h"], ["hf"]),
            Node("dense", "fc", ["hf", "w"], ["y"]),
        ],
        {"s": np.ones(2, np.float32), "t": np.zeros(2, np.float32), "w": np.ones((10, 32), np.float32)},
    )
    x = np.zeros((4, 2, 4, 4), np.float32)
    y = np.zeros(4, np.int64)
    with pytest.raises(PassError, match="'bn0' follows no conv/dense layer"):
        get_pass("lower").run(g, Context(data=Dataset(x, y, x, y), log=lambda *_: None, progress=False))


def test_a_block_circulant_layer_after_a_multichannel_image_reads_it_channel_last(cnn_data):
    """(tests/compiler/passes/test_circulant_stream_order.py has the details.)"""
    recipe = {
        "passes": ["canonicalize", "circulant", "lower"],
        "circulant": {"block_size": 1, "epochs": 1, "layers": {"/7/Gemm": {"block_size": 2}}},
    }
    _, low = lower_model(EXAMPLES / "digits_cnn.onnx", cnn_data, recipe)
    assert low.node("/7/Gemm").op == "circulant" and "input_chw" not in low.node("/7/Gemm").attrs
    assert next(n for n in low.nodes if n.op == "flatten").attrs["order"] == "hwc"
