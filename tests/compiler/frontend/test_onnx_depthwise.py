"""Depthwise and grouped convolutions, TensorFlow-style asymmetric padding and a whole-plane pool
with unequal strides, from torch.onnx through the software path (issue 27):

    frontend -> canonicalize -> lower -> golden
    == model.int.onnx (onnxruntime) on every test row

A small DS-CNN from both exporters (F.pad to TensorFlow's SAME at stride 2, depthwise 3x3 + BN + ReLU, pointwise
1x1 + BN + ReLU, AvgPool over the whole (5, 3) plane, Linear); a grouped conv (group 2) and a
depthwise conv with a channel multiplier, both imported as their exact block-diagonal weight."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from compiler.backends.onnx import to_onnx
from compiler.data import Dataset
from compiler.exec import golden
from compiler.exec import torch as torch_exec
from compiler.frontend.onnx import load_onnx
from compiler.passes.base import Context
from compiler.passes.canonicalize import Canonicalize
from compiler.passes.lower import Lower


class TinyDSCNN(nn.Module):
    """[1, 10, 6] -> pad (0, 1, 0, 1) -> conv 3x3/2 [8, 5, 3] -> depthwise -> pointwise -> mean -> 4."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, stride=2)
        self.bn0 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 8, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.pool = nn.AvgPool2d((5, 3))  # strides (5, 3): unequal, but one window
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.bn0(self.conv(F.pad(x, (0, 1, 0, 1)))))  # TensorFlow's SAME at stride 2
        x = F.relu(self.bn1(self.dw(x)))
        x = F.relu(self.bn2(self.pw(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class Grouped(nn.Module):
    """[4, 6, 6] -> conv group 2 (4 -> 6) -> relu -> depthwise x2 multiplier (6 -> 12) -> relu -> 3."""

    def __init__(self):
        super().__init__()
        self.g2 = nn.Conv2d(4, 6, 3, padding=1, groups=2)
        self.mult = nn.Conv2d(6, 12, 3, stride=2, padding=1, groups=6)
        self.fc = nn.Linear(12 * 3 * 3, 3)

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.mult(F.relu(self.g2(x)))), 1))


def _export(model: nn.Module, shape: tuple, path, dynamo: bool):
    torch.manual_seed(0)
    with torch.no_grad():  # batchnorm statistics that make the folding do something
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.eval()
    kw = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)} if dynamo else {"dynamic_axes": {"x": {0: "n"}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, *shape),), str(path), dynamo=dynamo, input_names=["x"], **kw)
    return model


def _data(model: nn.Module, shape: tuple) -> Dataset:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(96, *shape)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()  # the float model's own classes
    return Dataset(x[:64], y[:64], x[64:], y[64:])


def _lower(graph, data):
    ctx = Context(data=data, log=lambda *_: None, progress=False)
    canonical = Canonicalize().run(graph, ctx)
    return canonical, Lower().run(canonical, ctx)


def _assert_onnx_equals_golden(low, x):
    session = ort.InferenceSession(to_onnx(low).SerializeToString(), providers=["CPUExecutionProvider"])
    logits, logits_q, classes = session.run(None, {low.inputs[0].name: x})
    ref = golden.run(low, x)
    np.testing.assert_array_equal(logits_q, ref.logits_q)
    np.testing.assert_array_equal(classes, ref.classes)
    np.testing.assert_array_equal(logits, ref.logits)
    return ref


@pytest.fixture(scope="module", params=["torchscript", "dynamo"])
def ds_cnn(request, tmp_path_factory):
    """The dynamo exporter writes F.pad into the Conv's pads; the TorchScript exporter writes a
    Pad node of computed pads, folded into the Conv at import. Both fold the batchnorms (the
    fold into a depthwise conv is tested in tests/compiler/passes/test_canonicalize_conv.py)."""
    path = tmp_path_factory.mktemp("dscnn") / "m.onnx"
    model = _export(TinyDSCNN(), (1, 10, 6), path, dynamo=request.param == "dynamo")
    data = _data(model, (1, 10, 6))
    graph = load_onnx(path)
    return model, data, graph, *_lower(graph, data)


def test_the_ds_cnn_imports_with_its_padding_depthwise_conv_and_global_pool(ds_cnn):
    model, data, graph, canonical, _ = ds_cnn
    convs = [n for n in graph.nodes if n.op == "conv2d"]
    assert convs[0].attrs["pads"] == [0, 0, 1, 1] and convs[0].attrs["stride"] == [2, 2]
    assert [c.attrs.get("group", 1) for c in convs] == [1, 8, 1]
    assert graph.params[convs[1].inputs[1]].shape == (8, 1, 3, 3)
    assert "global_avgpool" in [n.op for n in graph.nodes]  # (5, 3) window with strides (5, 3) over 5 x 3
    with torch.no_grad():
        want = model(torch.from_numpy(data.x_test)).numpy()
    np.testing.assert_allclose(torch_exec.run(graph, data.x_test), want, rtol=1e-4, atol=1e-4)
    assert not {"batchnorm", "identity"} & {n.op for n in canonical.nodes}  # both exporters fold BN; Pad is gone
    np.testing.assert_allclose(torch_exec.run(canonical, data.x_test), want, rtol=1e-4, atol=1e-4)


def test_the_ds_cnn_lowers_and_golden_equals_model_int_onnx_on_every_row(ds_cnn):
    _, data, graph, _, low = ds_cnn
    assert [n.op for n in low.nodes if n.op in ("conv2d", "global_avgpool", "dense")] == [
        "conv2d",
        "conv2d",
        "conv2d",
        "global_avgpool",
        "dense",
    ]
    first, dw = [n for n in low.nodes if n.op == "conv2d"][:2]
    assert first.attrs["pads"] == [0, 0, 1, 1] and first.attrs["stride"] == 2 and first.attrs["out_shape"] == [8, 5, 3]
    assert dw.attrs["group"] == 8 and low.params[dw.inputs[1]].shape == (8, 1, 3, 3)
    ref = _assert_onnx_equals_golden(low, np.concatenate([data.x_train, data.x_test]))
    assert (ref.classes[64:] == data.y_test).mean() >= 0.8  # int8 follows the float model


@pytest.mark.parametrize("dynamo", [False, True])
def test_grouped_convs_are_expanded_exactly_and_lowered(tmp_path, dynamo):
    model = _export(Grouped(), (4, 6, 6), tmp_path / "m.onnx", dynamo)
    data = _data(model, (4, 6, 6))
    graph = load_onnx(tmp_path / "m.onnx")
    g2, mult = [n for n in graph.nodes if n.op == "conv2d"]
    assert "group" not in g2.attrs and "group" not in mult.attrs  # group = 1 after the expansion
    w = graph.params[g2.inputs[1]]
    assert w.shape == (6, 4, 3, 3) and not w[:3, 2:].any() and not w[3:, :2].any()
    np.testing.assert_array_equal(w[:3, :2], model.g2.weight.detach().numpy()[:3])
    wm = graph.params[mult.inputs[1]]  # output o reads input o // 2 only
    assert wm.shape == (12, 6, 3, 3) and all(not np.delete(wm[o], o // 2, axis=0).any() for o in range(12))
    with torch.no_grad():
        want = model(torch.from_numpy(data.x_test)).numpy()
    np.testing.assert_allclose(torch_exec.run(graph, data.x_test), want, rtol=1e-5, atol=1e-5)
    _, low = _lower(graph, data)
    _assert_onnx_equals_golden(low, np.concatenate([data.x_train, data.x_test]))


def _pad_model(path, mode: str = "constant", reader: str = "Conv"):
    """x [1, 3, 6, 5] -> Pad (0, 0, 1, 1 on H, W) -> Conv 3x3 (pads 1) or MaxPool."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64), "pads"),
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w"),
    ]
    second = (
        helper.make_node("Conv", ["p", "w"], ["y"], name="conv", pads=[1, 1, 1, 1], strides=[2, 2])
        if reader == "Conv"
        else helper.make_node("MaxPool", ["p"], ["y"], name="pool", kernel_shape=[2, 2])
    )
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], name="pad", mode=mode), second]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 6, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)],
        inits,
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_a_zero_pad_before_a_conv_becomes_its_padding_and_others_are_refused(tmp_path):
    from compiler.check import check
    from compiler.frontend.errors import FrontendError

    path = _pad_model(tmp_path / "m.onnx")
    graph = load_onnx(path)
    (conv,) = [n for n in graph.nodes if n.op == "conv2d"]
    assert conv.attrs["pads"] == [1, 1, 2, 2] and conv.inputs[0] == "p"  # through an identity canonicalize drops
    x = np.random.default_rng(1).normal(size=(2, 3, 6, 5)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(torch_exec.run(graph, x), want, rtol=1e-5, atol=1e-5)
    assert {v.name: v.detail for v in check(path)}["pad"] == "folded into the Conv after it (its padding)"
    for bad in (_pad_model(tmp_path / "r.onnx", mode="reflect"), _pad_model(tmp_path / "p.onnx", reader="MaxPool")):
        with pytest.raises(FrontendError, match=r"node 'pad' \(Pad\): only a constant-zero Pad of H and W"):
            load_onnx(bad)


def test_the_ds_cnn_with_admm_sparsity_and_4_bit_weights_stays_bit_exact(ds_cnn):
    """ADMM (80% sparsity, 4-bit weights) prunes and quantizes the depthwise conv like any other;
    lower keeps its grid, and golden equals model.int.onnx on every row."""
    from compiler.passes.manager import run_flow

    _, data, graph, _, _ = ds_cnn
    recipe = {"admm": {"global_sparsity": 0.8, "bits": 4, "admm_epochs": 2, "retrain_epochs": 2, "batch_size": 32}}
    ctx = Context(data=data, recipe=recipe, log=lambda *_: None, progress=False)
    compressed, _ = run_flow(graph, ["canonicalize", "admm"], ctx)  # plan (the hardware) is not this test's
    low = Lower().run(compressed, ctx)
    dw = [n for n in low.nodes if n.op == "conv2d"][1]
    w = low.params[dw.inputs[1]]
    assert dw.attrs["group"] == 8 and dw.attrs["weight_format"]["bits"] == 4 and 0 < np.count_nonzero(w) < w.size
    _assert_onnx_equals_golden(low, np.concatenate([data.x_train, data.x_test]))
