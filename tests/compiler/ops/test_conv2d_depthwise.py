"""The depthwise `conv2d` (attr `group` = C, weight [C, 1, kH, kW]; compiler/ops/conv2d.py) on a
small hand-built float graph, lowered:

    x [4, 8, 6] -> depthwise 3x3, stride 2, pads [0, 0, 1, 1] (TensorFlow's SAME) -> relu
      -> pointwise 1x1 -> relu -> global_avgpool -> flatten -> dense -> 3 logits

The float forward is torch's grouped conv; lower keeps `group` and an accumulator of kH*kW
products; golden computes each channel from its own channel only and equals model.int.onnx
(ConvInteger with group) bit for bit, also with an accumulator wider than int32; the gradient
stand-in runs through it."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from compiler.backends.onnx import to_onnx
from compiler.data import Dataset
from compiler.exec import golden, gradient
from compiler.exec import torch as torch_exec
from compiler.ir import Graph, Node, TensorSpec
from compiler.passes.base import Context
from compiler.passes.lower import Lower

C, H, W, CLASSES = 4, 8, 6, 3
DW = {"kernel": [3, 3], "stride": [2, 2], "pads": [0, 0, 1, 1], "group": C}


def float_graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    params = {
        "dw.w": rng.normal(0, 0.5, (C, 1, 3, 3)),
        "dw.b": rng.normal(0, 0.1, C),
        "pw.w": rng.normal(0, 0.5, (6, C, 1, 1)),
        "pw.b": rng.normal(0, 0.1, 6),
        "fc.w": rng.normal(0, 0.5, (CLASSES, 6)),
        "fc.b": rng.normal(0, 0.1, CLASSES),
    }
    nodes = [
        Node("conv2d", "dw", ["x", "dw.w", "dw.b"], ["a"], attrs=DW),
        Node("relu", "r1", ["a"], ["a_r"]),
        Node(
            "conv2d", "pw", ["a_r", "pw.w", "pw.b"], ["p"], attrs={"kernel": [1, 1], "stride": [1, 1], "pads": [0] * 4}
        ),
        Node("relu", "r2", ["p"], ["p_r"]),
        Node("global_avgpool", "gap", ["p_r"], ["g"]),
        Node("flatten", "flat", ["g"], ["f"]),
        Node("dense", "fc", ["f", "fc.w", "fc.b"], ["logits"]),
    ]
    params = {k: v.astype(np.float32) for k, v in params.items()}
    return Graph([TensorSpec("x", (C, H, W))], [TensorSpec("logits", (CLASSES,))], nodes, params)


def data(seed: int = 1) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(96, C, H, W)).astype(np.float32)
    return Dataset(x[:64], rng.integers(0, CLASSES, 64), x[64:], rng.integers(0, CLASSES, 32))


@pytest.fixture(scope="module")
def lowered():
    graph, d = float_graph(), data()
    ctx = Context(data=d, log=lambda *_: None, progress=False)
    return graph, Lower().run(graph, ctx), d


def test_the_float_forward_is_torchs_grouped_conv():
    graph = float_graph()
    x = data().x_test
    p = {k: torch.from_numpy(v) for k, v in graph.params.items()}
    a = torch.relu(
        torch.nn.functional.conv2d(
            torch.nn.functional.pad(torch.from_numpy(x), (0, 1, 0, 1)), p["dw.w"], p["dw.b"], stride=2, groups=C
        )
    )
    a = torch.relu(torch.nn.functional.conv2d(a, p["pw.w"], p["pw.b"]))
    want = a.mean(dim=(2, 3)) @ p["fc.w"].T + p["fc.b"]
    np.testing.assert_allclose(torch_exec.run(graph, x), want.numpy(), rtol=1e-5, atol=1e-5)


def test_lower_keeps_the_group_and_a_kernel_only_accumulator(lowered):
    _, low, _ = lowered
    dw, pw = low.node("dw"), low.node("pw")
    assert dw.attrs["group"] == C and "group" not in pw.attrs  # absent means 1: a group = 1 node is as before
    assert dw.attrs["in_shape"] == [C, H, W] and dw.attrs["out_shape"] == [C, 4, 3]  # TF SAME: ceil(8/2), ceil(6/2)
    assert dw.attrs["stride"] == 2 and dw.attrs["pads"] == [0, 0, 1, 1]
    w = low.params[dw.inputs[1]].astype(np.int64)
    assert w.shape == (C, 1, 3, 3)
    worst = int((np.abs(w).reshape(C, -1).sum(1) * 2 ** (dw.attrs["input_format"]["bits"] - 1)).max())
    worst += int(np.abs(low.params[dw.inputs[2]]).max())  # a bound on every channel's 9 products and its bias
    assert worst < 2 ** (dw.attrs["acc_bits"] - 1) <= 4 * worst + 2


def test_golden_convolves_each_channel_with_its_own_kernel_only(lowered):
    _, low, d = lowered
    dw = low.node("dw")
    record: dict = {}
    golden.run_integer(low, golden.quantize_input(low, d.x_test[:5]), record=record)
    x = np.pad(record[dw.name].astype(np.int64), ((0, 0), (0, 0), (0, 1), (0, 1)))
    w, b = low.params[dw.inputs[1]].astype(np.int64), low.params[dw.inputs[2]]
    want = np.zeros((5, C, 4, 3), np.int64)
    for c in range(C):  # the IR contract: acc[c, oy, ox] = B[c] + sum W[c, 0, ky, kx] x_pad[c, 2oy + ky, 2ox + kx]
        for oy in range(4):
            for ox in range(3):
                want[:, c, oy, ox] = b[c] + (x[:, c, 2 * oy : 2 * oy + 3, 2 * ox : 2 * ox + 3] * w[c, 0]).sum((1, 2))
    np.testing.assert_array_equal(golden.step(low, dw, record[dw.name]), want)


def _onnx_equals_golden(low, x):
    session = ort.InferenceSession(to_onnx(low).SerializeToString(), providers=["CPUExecutionProvider"])
    logits, logits_q, classes = session.run(None, {low.inputs[0].name: x})
    ref = golden.run(low, x)
    np.testing.assert_array_equal(logits_q, ref.logits_q)
    np.testing.assert_array_equal(classes, ref.classes)
    np.testing.assert_array_equal(logits, ref.logits)
    return session, ref


def test_golden_equals_model_int_onnx_bit_for_bit(lowered):
    graph, low, d = lowered
    model = to_onnx(low)
    (conv,) = [n for n in model.graph.node if n.op_type == "ConvInteger" and n.name.startswith("a__")]
    assert {a.name: a.i for a in conv.attribute if a.name == "group"} == {"group": C}
    _, ref = _onnx_equals_golden(low, np.concatenate([d.x_train, d.x_test]))
    float_classes = torch_exec.run(graph, d.x_test).argmax(1)
    assert (ref.classes[64:] == float_classes).mean() >= 0.8  # the integer model follows the float one


def test_a_depthwise_accumulator_wider_than_int32_adds_its_bias_in_int64(lowered):
    _, low, d = lowered
    wide = low.copy()
    dw = wide.node("dw")
    bias = wide.params[dw.inputs[2]].astype(np.int64)
    wide.params[dw.inputs[2]] = bias + np.array([1, -1, 1, -1]) * (1 << 34)  # saturates both ways after it
    dw.attrs["acc_bits"] = 40
    _onnx_equals_golden(wide, d.x_test)


def test_the_gradient_stand_in_runs_through_the_depthwise_conv(lowered):
    _, low, d = lowered
    x_q = golden.quantize_input(low, d.x_test)
    loss, grads = gradient.integer_gradients(low, x_q, golden.run(low, d.x_test).classes[::-1].copy())
    g = grads[low.node("dw").inputs[1]]
    assert np.isfinite(loss) and g.shape == (C, 1, 3, 3) and np.isfinite(g).all() and np.abs(g).sum() > 0
