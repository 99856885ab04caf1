from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.exec import torch as torch_exec
from compiler.frontend.onnx import FrontendError, load_onnx

NODE_TESTS = Path(onnx.__file__).parent / "backend" / "test" / "data" / "pytorch-converted"
SUPPORTED_NODE_TESTS = [
    "test_Linear",
    "test_Linear_no_bias",
    "test_ReLU",
    "test_Softmax",
    "test_LogSoftmax",
    "test_log_softmax_lastdim",
    "test_log_softmax_dim3",
]


def _tensor(path: Path) -> np.ndarray:
    t = TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


@pytest.mark.parametrize("case", SUPPORTED_NODE_TESTS)
def test_onnx_pytorch_converted_node_tests_match_their_outputs(case):
    folder = NODE_TESTS / case
    graph = load_onnx(folder / "model.onnx")
    for data_set in sorted(folder.glob("test_data_set_*")):
        x = _tensor(data_set / "input_0.pb")
        expected = _tensor(data_set / "output_0.pb")
        np.testing.assert_allclose(torch_exec.run(graph, x), expected, rtol=1e-5, atol=1e-5)


def _model(nodes, inits, in_shape=(None, 4), out_shape=(None, 3), opset=17, **kw):
    g = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], **kw)


def test_all_unsupported_nodes_are_reported_at_once(tmp_path):
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    m = _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["a"], name="mm"),
            helper.make_node("Softplus", ["a"], ["b"], name="squash"),
            helper.make_node("Sin", ["b"], ["y"], name="squash2"),
        ],
        [w],
    )
    onnx.save(m, tmp_path / "m.onnx")
    with pytest.raises(FrontendError) as e:
        load_onnx(tmp_path / "m.onnx")
    msg = str(e.value)
    assert "2 unsupported node(s)" in msg and "'squash' (Softplus)" in msg and "'squash2' (Sin)" in msg
    assert str(tmp_path / "m.onnx") in msg


def test_not_an_onnx_file(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01this is not a protobuf\xff" * 10)
    with pytest.raises(FrontendError, match="not an ONNX model"):
        load_onnx(tmp_path / "junk.onnx")
    with pytest.raises(FrontendError, match="no such file"):
        load_onnx(tmp_path / "missing.onnx")


def test_nan_weights_are_refused(tmp_path):
    w = np.ones((3, 4), np.float32)
    w[1, 2] = np.nan
    m = _model([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")], [numpy_helper.from_array(w, "w")])
    onnx.save(m, tmp_path / "m.onnx")
    with pytest.raises(FrontendError, match="'w' contains NaN or Inf"):
        load_onnx(tmp_path / "m.onnx")


def test_external_data_inside_the_model_folder_is_accepted_and_outside_refused(tmp_path):
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "w")
    m = _model([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")], [w])
    (tmp_path / "inside").mkdir()
    onnx.save(
        m,
        tmp_path / "inside" / "m.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    graph = load_onnx(tmp_path / "inside" / "m.onnx")
    assert np.array_equal(graph.params["fc.weight"], np.arange(12, dtype=np.float32).reshape(3, 4))

    outside = onnx.load(tmp_path / "inside" / "m.onnx", load_external_data=False)
    for t in outside.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../weights.bin"
    (tmp_path / "weights.bin").write_bytes((tmp_path / "inside" / "weights.bin").read_bytes())
    (tmp_path / "evil").mkdir()
    onnx.save(outside, tmp_path / "evil" / "m.onnx")
    with pytest.raises(FrontendError, match="outside the model's folder"):
        load_onnx(tmp_path / "evil" / "m.onnx")


def test_gemm_without_transB_and_with_alpha_beta(tmp_path):
    rng = np.random.default_rng(1)
    w, c = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(3,)).astype(np.float32)
    m = _model(
        [helper.make_node("Gemm", ["x", "w", "c"], ["y"], alpha=0.5, beta=2.0, name="fc")],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(c, "c")],
    )
    onnx.save(m, tmp_path / "m.onnx")
    x = rng.normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(torch_exec.run(load_onnx(tmp_path / "m.onnx"), x), 0.5 * x @ w + 2.0 * c, rtol=1e-5)


def test_torch_dynamo_export_imports(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(12, 5), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(5, 3)
    ).eval()
    torch.onnx.export(
        model,
        (torch.randn(2, 3, 4),),
        str(tmp_path / "m.onnx"),
        dynamo=True,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        verbose=False,
    )
    graph = load_onnx(tmp_path / "m.onnx")
    x = np.random.default_rng(0).normal(size=(6, 3, 4)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(torch_exec.run(graph, x), expected, rtol=1e-5, atol=1e-6)
    assert {n.op for n in graph.nodes} >= {"flatten", "dense", "relu"}


def test_non_flattening_reshape_is_refused(tmp_path):
    shape = numpy_helper.from_array(np.array([-1, 2, 2], np.int64), "s")
    m = _model([helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")], [shape], out_shape=(None, 2, 2))
    onnx.save(m, tmp_path / "m.onnx")
    with pytest.raises(FrontendError, match="'rs' \\(Reshape\\): only a reshape that flattens"):
        load_onnx(tmp_path / "m.onnx")
