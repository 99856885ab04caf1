"""Branching ONNX graphs through the frontend (issue 27): torch.onnx's residual blocks and channel
concat (tests/dag_models.py) import as forks and joins and run in the torch executor as torch
does; Concat along the channel axis (also written as a negative axis, and with three inputs)
becomes two-input `concat` nodes, other axes and broadcasting adds are refused by node name;
`mpc check` names the joins' hardware, and `mpc compile` builds what check accepts."""

import json
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from compiler.check import check, render
from compiler.exec import torch as torch_exec
from compiler.frontend.onnx import FrontendError, load_onnx
from tests.dag_models import VARIANTS, dag_module, export_dag


@pytest.fixture(scope="module", params=VARIANTS)
def exported(request, tmp_path_factory):
    path = export_dag(tmp_path_factory.mktemp("dag") / f"{request.param}.onnx", request.param)
    return request.param, path


def test_torch_exports_import_as_forks_and_joins_and_run_as_torch(exported):
    variant, path = exported
    graph = load_onnx(path)
    join = "concat" if variant == "concat" else "add"
    (node,) = [n for n in graph.nodes if n.op == join]
    assert len(node.inputs) == 2 and not any(t in graph.params for t in node.inputs)
    stem_out = graph.nodes[1].outputs[0]  # the stem's ReLU: read by the block and by the skip
    assert graph.nodes[1].op == "relu" and len(graph.consumers(stem_out)) == 2
    x = np.random.default_rng(0).normal(size=(16, 1, 8, 8)).astype(np.float32)
    torch.manual_seed(0)
    want = dag_module(variant).eval()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(torch_exec.run(graph, x), want, rtol=1e-5, atol=1e-5)


def test_check_names_the_joins_hardware(exported):
    variant, path = exported
    verdicts = {v.op_type: v for v in check(path)}
    join, detail = (
        ("Concat", "concat engine (channel join)") if variant == "concat" else ("Add", "add engine (residual join)")
    )
    assert verdicts[join].status == "imported" and verdicts[join].detail == f"{join.lower()}: {detail}"
    assert render(path, check(path)).endswith("every node is supported: `mpc compile` will take this model")


def test_compile_builds_a_concat_as_check_says(tmp_path):
    """check and compile agree on the concat block: the design has a concat engine (the whole
    flow and its simulation: tests/compiler/backends/test_verilog_dag.py)."""
    from compiler import api

    path = export_dag(tmp_path / "concat.onnx", "concat")

    x = np.random.default_rng(0).normal(size=(64, 1, 8, 8)).astype(np.float32)
    data = tmp_path / "d.npz"
    np.savez(data, x_train=x[:48], y_train=np.arange(48) % 10, x_test=x[48:], y_test=np.arange(16) % 10)
    assert all(v.status != "refused" for v in check(path))
    api.compile(path, data, tmp_path / "out", log=lambda *_: None, progress=False, synth_timeout=None)
    design = json.loads((tmp_path / "out" / "rtl" / "design.json").read_text())
    assert [e["engine"] for e in design["engines"]].count("concat") == 1


def _model(path, node: onnx.NodeProto, out_shape: list[int], in_shape=(None, 2, 3, 3)) -> str:
    """x -> Relu a; x -> Sigmoid b; Relu c; then `node` on (a, b[, c])."""
    pre = [
        helper.make_node("Relu", ["x"], ["a"], name="relu_a"),
        helper.make_node("Sigmoid", ["x"], ["b"], name="sig_b"),
        helper.make_node("Relu", ["b"], ["c"], name="relu_c"),
    ]
    graph = helper.make_graph(
        [*pre, node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("axis", [1, -3])
def test_concat_on_the_channel_axis_imports_whatever_the_axis_sign(tmp_path, axis):
    node = helper.make_node("Concat", ["a", "b"], ["y"], name="cat", axis=axis)
    graph = load_onnx(_model(tmp_path / "m.onnx", node, [None, 4, 3, 3]))
    (cat,) = graph.nodes[-1:]
    assert (cat.op, cat.name, cat.inputs, cat.attrs) == ("concat", "cat", ["a", "b"], {"axis": 1})


def test_a_three_input_concat_becomes_a_chain_of_two_input_concats(tmp_path):
    node = helper.make_node("Concat", ["a", "b", "c"], ["y"], name="cat", axis=1)
    graph = load_onnx(_model(tmp_path / "m.onnx", node, [None, 6, 3, 3]))
    first, last = graph.nodes[-2:]
    assert (first.op, first.inputs, first.outputs) == ("concat", ["a", "b"], ["cat.part1"])
    assert (last.name, last.inputs, last.outputs) == ("cat", ["cat.part1", "c"], ["y"])
    x = np.random.default_rng(1).normal(size=(3, 2, 3, 3)).astype(np.float32)
    sig = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(torch_exec.run(graph, x), np.concatenate([np.maximum(x, 0), sig, sig], 1), rtol=1e-6)


def test_concat_along_another_axis_is_refused_naming_the_node(tmp_path):
    node = helper.make_node("Concat", ["a", "b"], ["y"], name="cat_h", axis=2)
    with pytest.raises(FrontendError) as e:
        load_onnx(_model(tmp_path / "m.onnx", node, [None, 2, 6, 3]))
    msg = str(e.value)
    assert "\n" not in msg
    assert "node 'cat_h' (Concat): only a Concat along the channel axis (1) is supported (axis=2, rank=4)" in msg


def test_an_add_that_broadcasts_is_refused_naming_the_node(tmp_path):
    node = helper.make_node("Add", ["a", "p"], ["y"], name="bcast")
    pool = helper.make_node("GlobalAveragePool", ["b"], ["p"], name="pool")
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["a"], name="relu_a"),
            helper.make_node("Sigmoid", ["x"], ["b"], name="sig_b"),
            pool,
            node,
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2, 3, 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "m.onnx")
    with pytest.raises(FrontendError, match=r"node 'bcast' \(Add\): adding tensors of shapes .* is not supported"):
        load_onnx(tmp_path / "m.onnx")


def test_an_add_of_two_computed_tensors_is_a_join(tmp_path):
    node = helper.make_node("Add", ["a", "b"], ["y"], name="join")
    graph = load_onnx(_model(tmp_path / "m.onnx", node, [None, 2, 3, 3]))
    assert (graph.nodes[-1].op, graph.nodes[-1].inputs) == ("add", ["a", "b"])


def test_a_join_of_flattened_images_is_refused_as_lower_would(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu_a"),
        helper.make_node("Flatten", ["a"], ["fa"], name="flat_a", axis=1),
        helper.make_node("Flatten", ["x"], ["fx"], name="flat_x", axis=1),
        helper.make_node("Concat", ["fa", "fx"], ["y"], name="cat_flat", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 36])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "m.onnx")
    with pytest.raises(FrontendError, match=r"node 'cat_flat' \(Concat\): input 'fa' is a flattened image; join"):
        load_onnx(tmp_path / "m.onnx")


@pytest.mark.slow
def test_the_dynamo_exporters_residual_block_imports_as_the_torchscript_one(tmp_path):
    torch.manual_seed(0)
    model = dag_module("downsample").eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(2, 1, 8, 8),),
            str(tmp_path / "m.onnx"),
            dynamo=True,
            dynamic_shapes=({0: torch.export.Dim("n")},),
        )
    graph = load_onnx(tmp_path / "m.onnx")
    assert [n.op for n in graph.nodes] == [
        "conv2d",
        "relu",
        "conv2d",
        "relu",
        "conv2d",
        "conv2d",
        "add",
        "relu",
        "flatten",
        "dense",
    ]
    x = np.random.default_rng(0).normal(size=(8, 1, 8, 8)).astype(np.float32)
    want = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(torch_exec.run(graph, x), want, rtol=1e-4, atol=1e-5)
