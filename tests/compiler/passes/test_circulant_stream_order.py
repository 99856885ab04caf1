"""A block-circulant dense layer after a flattened multi-channel image (the digits CNN's /7/Gemm
reads a flattened [16, 2, 2]): the `circulant` pass makes its stream-order matrix
(compiler.hw.dense.stream_weight_matrix, channel-last columns) block-circulant, `lower` gives it
a channel-last `flatten` (attr `order` = "hwc") and a `circulant` node on the stream-order
weights, and golden, the gradient executor, model.int.onnx and the Verilog backend agree."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

import kernels
from compiler.backends.onnx import to_onnx
from compiler.backends.verilog import engine_specs, write_verilog
from compiler.data import load_data
from compiler.exec import golden
from compiler.exec.gradient import integer_gradients
from compiler.exec.torch import GraphModule
from compiler.frontend.onnx import load_onnx
from compiler.passes.base import Context, PassError
from compiler.passes.circulant import _projector, project_graph, stream_images
from compiler.passes.manager import run_flow
from kernels.circulant_mac import circulant_expand, circulant_project, circulant_vectors
from kernels.stream_order import stream_order, stream_weight_matrix, unstream
from tests.conftest import EXAMPLES

LAYER, CHW, B = "/7/Gemm", [16, 2, 2], 4


def _recipe(**layer):
    return {"circulant": {"block_size": 1, "epochs": 1, "layers": {LAYER: {"block_size": B} | layer}}}


def _run(graph, flow, data, recipe):
    return run_flow(graph, flow, Context(data=data, recipe=recipe, log=lambda *_: None, progress=False))[0]


def _is_block_circulant(w: np.ndarray, b: int) -> bool:
    return np.array_equal(circulant_expand(circulant_project(w, b))[: w.shape[0], : w.shape[1]].astype(w.dtype), w)


@pytest.fixture(scope="module")
def cnn_data():
    return load_data(EXAMPLES / "digits.npz", (1, 8, 8), 10)


@pytest.fixture(scope="module")
def made(cnn_data):
    """The digits CNN after canonicalize + circulant (/7/Gemm at b = 4), and lowered + planned."""
    graph = _run(load_onnx(EXAMPLES / "digits_cnn.onnx"), ["canonicalize", "circulant"], cnn_data, _recipe())
    return graph, _run(graph, ["lower", "plan"], cnn_data, _recipe())


def test_stream_images_names_the_layers_whose_inputs_stream_reordered(made, digits_model):
    graph, _ = made
    assert stream_images(graph) == {LAYER: CHW}
    assert stream_images(load_onnx(digits_model)) == {}  # an MLP: no flatten of an image


def test_the_pass_makes_the_stream_order_matrix_block_circulant(made):
    graph, _ = made
    node = graph.node(LAYER)
    assert node.annotations["circulant"]["input_chw"] == CHW
    w = graph.params[node.inputs[1]]
    assert w.shape == (10, 64)
    assert _is_block_circulant(stream_weight_matrix(w, CHW), B)
    assert not _is_block_circulant(w, B)  # the graph's row-major columns are a permutation of it


def test_the_torch_projector_projects_in_stream_order(made):
    graph, _ = made
    g = graph.copy()
    name = g.node(LAYER).inputs[1]
    g.params[name] = np.random.default_rng(0).normal(size=g.params[name].shape).astype(np.float32)
    module = GraphModule(g)
    with torch.no_grad():  # as fit() calls it, after the optimizer's step
        _projector(g, {LAYER: B})(module, 0)
    got = module.export_params()[name]
    assert _is_block_circulant(stream_weight_matrix(got, CHW), B)
    np.testing.assert_allclose(got, project_graph(g, {LAYER: B}).params[name], rtol=1e-5, atol=1e-6)


def test_lower_streams_the_flatten_channel_last_into_a_circulant_node(made, cnn_data):
    graph, low = made
    ops = [n.op for n in low.nodes]
    assert ops[-4:] == ["maxpool2d", "flatten", "circulant", "dequantize"]
    flat, node = low.nodes[-3], low.node(LAYER)
    assert flat.attrs["order"] == "hwc" and "input_chw" not in node.attrs
    w_s = low.params[node.inputs[1]].astype(np.int64)
    circulant_vectors(w_s, B)  # exactly block-circulant as stored (raises otherwise)
    # the exact product is the graph's: row-major flatten times the graph-order weights
    x_q = golden.quantize_input(low, cnn_data.x_test[:64])
    values: dict = {}
    golden.run_integer(low, x_q, exact={LAYER}, values=values)
    image = values[flat.inputs[0]]
    w_graph = unstream(w_s, stream_order(w_s.shape, CHW))
    bias = low.params[node.inputs[2]]
    assert np.array_equal(values[node.outputs[0]], kernels.dense_mac(image.reshape(len(image), -1), w_graph, bias))
    assert np.array_equal(values[flat.outputs[0]], image.transpose(0, 2, 3, 1).reshape(len(image), -1))


def test_integer_onnx_is_bit_exact_with_golden(made, cnn_data):
    _, low = made
    session = ort.InferenceSession(to_onnx(low).SerializeToString(), providers=["CPUExecutionProvider"])
    logits, logits_q, classes = session.run(None, {low.inputs[0].name: cnn_data.x_test})
    ref = golden.run(low, cnn_data.x_test)
    assert np.array_equal(logits_q, ref.logits_q) and np.array_equal(classes, ref.classes)
    assert np.array_equal(logits, ref.logits)


def test_the_verilog_backend_stores_the_columns_as_they_are(made, tmp_path):
    _, low = made
    specs = engine_specs(low)
    assert [s.engine for s in specs] == ["conv", "pool", "conv", "pool", "circulant"]
    circ = specs[-1]
    assert circ.input_chw is None and (circ.n_in, circ.n_out) == (64, 10)
    write_verilog(low, tmp_path)
    # a circulant node that claims a permuted input is still refused
    bad = low.copy()
    bad.node(LAYER).attrs["input_chw"] = CHW
    bad.nodes[-3].attrs.pop("order")
    with pytest.raises(ValueError, match="circulant layer cannot take a flattened"):
        engine_specs(bad)


def test_gradients_run_through_the_channel_last_flatten(made, cnn_data):
    _, low = made
    x_q = golden.quantize_input(low, cnn_data.x_test[:32])
    loss, grads = integer_gradients(low, x_q, cnn_data.y_test[:32])
    node = low.node(LAYER)
    assert np.isfinite(loss) and grads[node.inputs[3]].shape == low.params[node.inputs[3]].shape
    assert any(np.any(grads[n.inputs[1]]) for n in low.nodes if n.op == "conv2d")  # back through the flatten


def test_a_layer_made_circulant_in_graph_order_is_refused(made, cnn_data):
    graph, _ = made
    old = graph.copy()
    del old.node(LAYER).annotations["circulant"]["input_chw"]
    with pytest.raises(PassError, match=r"'/7/Gemm' was made block-circulant in the graph's row-major column order"):
        _run(old, ["lower"], cnn_data, {})


def test_the_dense_engine_keeps_the_permuted_columns(made, cnn_data):
    graph, _ = made
    low = _run(graph, ["lower", "plan"], cnn_data, {"plan": {"layers": {LAYER: {"engine": "dense"}}}})
    node = low.node(LAYER)
    assert node.op == "dense" and node.attrs["input_chw"] == CHW
    assert "order" not in low.nodes[-3].attrs
    engine_specs(low)


def test_pruned_blocks_are_blocks_of_the_stream_order_matrix(cnn_data):
    graph = _run(
        load_onnx(EXAMPLES / "digits_cnn.onnx"), ["canonicalize", "circulant"], cnn_data, _recipe(prune_blocks=0.25)
    )
    node = graph.node(LAYER)
    assert node.annotations["circulant"]["pruned_blocks"] == 12  # of its 3 x 16 blocks
    w_s = stream_weight_matrix(graph.params[node.inputs[1]], CHW)
    assert _is_block_circulant(w_s, B)
    blocks = np.abs(np.pad(w_s, ((0, 2), (0, 0)))).reshape(3, B, 16, B).sum(axis=(1, 3))
    assert np.count_nonzero(blocks == 0) == 12
    low = _run(graph, ["lower", "plan"], cnn_data, {})
    assert low.node(LAYER).op == "circulant"
