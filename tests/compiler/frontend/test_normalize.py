"""Import normalization (compiler/frontend/normalize.py): exporters' graphs import, agree with
onnxruntime on the original model, and compile with model.int.onnx identical to golden."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from benchmarks.exporter_corpus import tf2onnx_cnn_model
from compiler import api
from compiler.exec import torch as torch_exec
from compiler.frontend.onnx import load_onnx

ROOT = Path(__file__).resolve().parents[3]
RNG = np.random.default_rng(0)


def _digits(n_train=160, n_test=80):
    d = np.load(ROOT / "examples" / "digits.npz")
    return d["x_train"][:n_train], d["y_train"][:n_train], d["x_test"][:n_test], d["y_test"][:n_test]


def _init(name, shape, scale=0.3):
    return numpy_helper.from_array((RNG.normal(size=shape) * scale).astype(np.float32), name)


def _ort(path, x):
    """onnxruntime on the original model; a static batch size is run in chunks of that size."""
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = s.get_inputs()[0].shape[0]
    step = batch if isinstance(batch, int) else len(x)
    x = x.astype(np.float32)
    return np.concatenate([s.run(None, {s.get_inputs()[0].name: x[i : i + step]})[0] for i in range(0, len(x), step)])


def _compile(tmp_path, model_path, x_train, y_train, x_test, y_test):
    data = tmp_path / "data.npz"
    np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    report = api.compile(model_path, data, tmp_path / "out", log=lambda *_: None, progress=False, synth_timeout=None)
    assert report["compiled"]["onnx_matches_golden"] == {"checked_samples": len(x_test), "identical": True}
    return report


def _tf2onnx_cnn(path: Path) -> None:
    """Written as tf2onnx writes a Keras NHWC CNN at opset 9 (benchmarks/exporter_corpus.py), with
    random weights: Transposes around Conv / MaxPool, a Transpose back to NHWC before the
    flattening Reshape, and a 1-D BatchNormalization after a dense layer between Unsqueeze +
    Transpose and Transpose + Squeeze."""
    c = 4
    weights = {
        "cw": RNG.normal(size=(c, 1, 3, 3)) * 0.3,
        "cb": RNG.normal(size=c) * 0.3,
        "w1": RNG.normal(size=(4 * 4 * c, 16)) * 0.3,
        "b1": RNG.normal(size=16) * 0.3,
        "g": RNG.normal(size=16),
        "be": RNG.normal(size=16) * 0.3,
        "mu": RNG.normal(size=16) * 0.3,
        "var": RNG.uniform(0.5, 2.0, 16),
        "w2": RNG.normal(size=(16, 10)) * 0.3,
        "b2": RNG.normal(size=10) * 0.3,
    }
    model = tf2onnx_cnn_model(weights, 1e-3)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def test_tf2onnx_nhwc_cnn_imports_matches_ort_and_compiles(tmp_path):
    path = tmp_path / "keras.onnx"
    _tf2onnx_cnn(path)
    graph = load_onnx(path)
    assert graph.meta["input_layout"] == "nhwc"
    assert graph.inputs[0].shape == (1, 8, 8)
    assert "transpose" not in {n.op for n in graph.nodes}
    x_train, y_train, x_test, y_test = _digits()
    x_nhwc = x_test[..., None]  # the model's own layout, [N, 8, 8, 1]
    ref = _ort(path, x_nhwc)
    ours = torch_exec.predict_logits(graph, x_nhwc.transpose(0, 3, 1, 2))
    assert np.abs(ours - ref).max() < 1e-4
    _compile(tmp_path, path, x_train[..., None], y_train, x_nhwc, y_test)


def test_nhwc_flatten_with_several_channels_permutes_the_dense_weight(tmp_path):
    """Two input channels, so the NHWC input order and the flatten permutation both matter."""
    path = tmp_path / "keras2.onnx"
    _tf2onnx_cnn(path)
    model = onnx.load(path)
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 2
    cw = next(t for t in model.graph.initializer if t.name == "cw")
    cw.CopyFrom(_init("cw", (4, 2, 3, 3)))
    onnx.save(model, path)
    graph = load_onnx(path)
    assert graph.inputs[0].shape == (2, 8, 8) and graph.meta["input_layout"] == "nhwc"
    x = RNG.normal(size=(32, 8, 8, 2)).astype(np.float32)
    ours = torch_exec.predict_logits(graph, x.transpose(0, 3, 1, 2))
    assert np.abs(ours - _ort(path, x)).max() < 1e-4


class _Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.bn, self.fc2 = torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16), torch.nn.Linear(16, 10)
        with torch.no_grad():
            self.bn.running_mean.normal_()
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.normal_()
            self.bn.bias.normal_()

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


@pytest.mark.parametrize(
    "dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"]
)  # the dynamo exporter alone takes ~15 s; its export has a static batch of 2
def test_torch_batchnorm1d_export_imports_matches_ort_and_compiles(tmp_path, dynamo):
    torch.manual_seed(0)
    net = _Mlp().eval()
    path = tmp_path / "bn1d.onnx"
    kwargs = {"dynamo": dynamo}
    if not dynamo:
        kwargs["dynamic_axes"] = {"x": {0: "N"}}
    torch.onnx.export(net, (torch.zeros(2, 64),), str(path), input_names=["x"], **kwargs)
    graph = load_onnx(path)
    assert graph.nodes[0].op == "dense"  # the exporter may already have folded the BatchNorm1d into the Gemm
    x_train, y_train, x_test, y_test = (a.reshape(len(a), -1) if a.ndim == 3 else a for a in _digits())
    ref = _ort(path, x_test)
    assert np.abs(torch_exec.predict_logits(graph, x_test) - ref).max() < 1e-4
    _compile(tmp_path, path, x_train, y_train, x_test, y_test)


def test_fixed_batch_size_is_the_batch(tmp_path):
    batch = 789444
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["xr"], name="reshape"),
        helper.make_node("Gemm", ["xr", "w1", "b1"], ["h"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1, name="fc2"),
    ]
    inits = [
        numpy_helper.from_array(np.array([batch, 16], np.int64), "shape"),
        _init("w1", (12, 16)),
        _init("b1", (12,)),
        _init("w2", (10, 12)),
        _init("b2", (10,)),
    ]
    g = helper.make_graph(
        nodes,
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
        inits,
    )
    path = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)]), path)
    graph = load_onnx(path)
    assert graph.inputs[0].shape == (16,)
    x_train, y_train, x_test, y_test = (a.reshape(len(a), -1)[:, ::4] if a.ndim == 3 else a for a in _digits())
    reference = onnx.load(path)  # ort checks the declared batch: run the original with batch 789444's rows freed
    reference.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    reference.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    reference.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.array([-1, 16], np.int64), "shape"))
    onnx.save(reference, tmp_path / "ref.onnx")
    ref = _ort(tmp_path / "ref.onnx", x_test)
    assert np.abs(torch_exec.predict_logits(graph, x_test) - ref).max() < 1e-4
    _compile(tmp_path, path, x_train, y_train, x_test, y_test)
