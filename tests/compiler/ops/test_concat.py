"""The `concat` op (compiler/ops/concat.py) on a hand-built integer graph with a fork and a
channel join of two images in different formats:

    x -> quantize -> conv c1 -> requantize(+relu) h (Q(8, 4)) --+-> concat j -> flatten -> dense d -> dequantize
                                   conv c2 on x -> requantize g (Q(8, 2)) -+

Golden equals kernels.concat on the node and model.int.onnx bit for bit (onnxruntime); the
float op runs in the torch executor; the bit-flip gradient runs through the join."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

import kernels
from compiler import ops
from compiler.backends.onnx import to_onnx
from compiler.exec import golden, gradient
from compiler.exec import torch as torch_exec
from compiler.ir import FixedPoint, Graph, Node, TensorSpec
from compiler.passes.base import PassError

C_IN, C_A, C_B, SIDE, CLASSES = 1, 3, 2, 4, 5
X_FMT, H_FMT, G_FMT, W_FRAC = FixedPoint(8, 5), FixedPoint(8, 4), FixedPoint(8, 2), 6
WINDOW = {"kernel": [3, 3], "stride": 1, "pads": [1, 1, 1, 1]}


def _conv(name: str, c_out: int, rng, params: dict) -> Node:
    w_q = rng.integers(-60, 60, size=(c_out, C_IN, 3, 3))
    b_q = rng.integers(-2000, 2000, size=c_out)
    params[f"{name}.w"], params[f"{name}.b"] = w_q.astype(np.int32), b_q.astype(np.int64)
    attrs = WINDOW | {
        "acc_frac": W_FRAC + X_FMT.frac,
        "acc_bits": kernels.conv_accumulator_bits(w_q, b_q, X_FMT.bits),
        "in_shape": [C_IN, SIDE, SIDE],
        "out_shape": [c_out, SIDE, SIDE],
    }
    return Node("conv2d", name, ["x_q", f"{name}.w", f"{name}.b"], [f"{name}_acc"], attrs=attrs)


def _requantize(name: str, acc: str, fmt: FixedPoint, relu: bool) -> Node:
    attrs = {"shift": W_FRAC + X_FMT.frac - fmt.frac, "bits": fmt.bits, "relu": relu, "out_frac": fmt.frac}
    return Node("requantize", name, [acc], [f"{name}_out"], attrs=attrs)


def integer_graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    shifts = [H_FMT.frac - G_FMT.frac, 0]
    cat_attrs = {
        "axis": 1,
        "shifts": shifts,
        "bits": 8,
        "input_formats": [H_FMT.to_dict(), G_FMT.to_dict()],
        "format": G_FMT.to_dict(),
        "in_shapes": [[C_A, SIDE, SIDE], [C_B, SIDE, SIDE]],
        "out_shape": [C_A + C_B, SIDE, SIDE],
    }
    n_in = (C_A + C_B) * SIDE * SIDE
    w_d = rng.integers(-40, 40, size=(CLASSES, n_in))
    params["d.w"], params["d.b"] = w_d.astype(np.int32), np.zeros(CLASSES, np.int64)
    dense_attrs = {"acc_frac": W_FRAC + G_FMT.frac, "acc_bits": kernels.dense_accumulator_bits(w_d, None, 8)}
    nodes = [
        Node("quantize", "quantize_input", ["x"], ["x_q"], attrs={"format": X_FMT.to_dict()}),
        _conv("c1", C_A, rng, params),
        _requantize("r1", "c1_acc", H_FMT, relu=True),
        _conv("c2", C_B, rng, params),
        _requantize("r2", "c2_acc", G_FMT, relu=False),
        Node("concat", "j", ["r1_out", "r2_out"], ["cat"], attrs=cat_attrs),
        Node("flatten", "f", ["cat"], ["flat"]),
        Node("dense", "d", ["flat", "d.w", "d.b"], ["d_acc"], attrs=dense_attrs | {"input_chw": [C_A + C_B, 4, 4]}),
        Node("dequantize", "dequantize_output", ["d_acc"], ["logits"], attrs={"frac": W_FRAC + G_FMT.frac}),
    ]
    meta = {"integer": True, "input_format": X_FMT.to_dict(), "output_format": {"bits": 32, "frac": W_FRAC + 2}}
    graph = Graph([TensorSpec("x", (C_IN, SIDE, SIDE))], [TensorSpec("logits", (CLASSES,))], nodes, params, meta)
    graph.validate()
    return graph


def inputs(n: int = 256, seed: int = 1) -> np.ndarray:
    """Typical inputs, quantizer ties and far out of range ones."""
    rng = np.random.default_rng(seed)
    shape = (C_IN, SIDE, SIDE)
    ties = (rng.integers(-120, 120, size=(n // 4, *shape)) + 0.5) * 2.0**-X_FMT.frac
    wild = rng.normal(0, 20, size=(n // 4, *shape))
    return np.concatenate([rng.normal(0, 1.5, size=(n // 2, *shape)), ties, wild]).astype(np.float32)


@pytest.fixture(scope="module")
def graph():
    return integer_graph()


def test_golden_equals_model_int_onnx_bit_for_bit(graph):
    x = inputs()
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    logits, logits_q, classes = session.run(None, {"x": x})
    ref = golden.run(graph, x)
    assert np.array_equal(logits_q, ref.logits_q)
    assert np.array_equal(classes, ref.classes) and np.array_equal(logits, ref.logits)


def test_golden_runs_kernels_concat_and_rounds_the_finer_input(graph):
    values: dict = {}
    golden.run_integer(graph, golden.quantize_input(graph, inputs()), values=values)
    h, g = values["r1_out"], values["r2_out"]
    assert np.array_equal(values["cat"], kernels.concat([h, g], [2, 0], 8))
    assert np.array_equal(values["cat"][:, C_A:], g)  # the coarser input passes unchanged
    assert np.array_equal(values["cat"][:, :C_A], kernels.requantize(h, 2, 8, relu=False))
    assert (h % 4 == 2).any()  # ties of the rounding were met


def _float_graph(axis: int = 1) -> Graph:
    """x -> relu -> concat(relu(x), x): a fork and a channel join."""
    out = (4, 3, 3) if axis == 1 else (2, 6, 3)
    nodes = [Node("relu", "r", ["x"], ["a"]), Node("concat", "j", ["a", "x"], ["y"], attrs={"axis": axis})]
    graph = Graph([TensorSpec("x", (2, 3, 3))], [TensorSpec("y", out)], nodes, {})
    graph.validate()
    return graph


def test_the_float_op_joins_channels_in_the_torch_executor():
    x = np.random.default_rng(0).normal(size=(5, 2, 3, 3)).astype(np.float32)
    y = torch_exec.run(_float_graph(), x)
    np.testing.assert_array_equal(y, np.concatenate([np.maximum(x, 0), x], axis=1))


def test_the_gradient_runs_through_the_join(graph):
    x = inputs()
    y = golden.run(graph, x).classes[::-1].copy()
    loss, grads = gradient.integer_gradients(graph, golden.quantize_input(graph, x), y)
    assert np.isfinite(loss) and loss > 0
    for name in ("c1.w", "c2.w", "d.w"):
        assert grads[name].shape == graph.params[name].shape and np.abs(grads[name]).sum() > 0, name


def test_the_stand_in_scales_each_input_by_its_shift(graph):
    node = graph.node("j")
    a = torch.ones(2, C_A, SIDE, SIDE, dtype=torch.float64, requires_grad=True)
    b = torch.ones(2, C_B, SIDE, SIDE, dtype=torch.float64, requires_grad=True)
    ops.get("concat").stand_in(graph, node, [a, b], {}, {}).sum().backward()
    assert torch.all(a.grad == 0.25) and torch.all(b.grad == 1.0)


def test_lower_refuses_a_concat_along_another_axis():
    with pytest.raises(PassError, match=r"^lower: concat 'j' joins along axis 2; only 1"):
        ops.get("concat").lower(None, _float_graph(axis=2).node("j"))
