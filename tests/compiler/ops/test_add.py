"""The `add` op (compiler/ops/add.py) on a hand-built graph with a fork and a join:

    x -> quantize -> dense d1 -> requantize(+relu) h --+------------------------+-> add j -> dense d3 -> dequantize
                                                       +-> branch (g) ----------+

the branch being an activation table (sigmoid: g finer than h) or a dense layer + requantize(+relu)
(g coarser than h). Golden equals model.int.onnx bit for bit and kernels.add on the node; the float
twin runs in the torch executor; the bit-flip gradient runs through the join; lower produces the join
from the float twin."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import onnxruntime as ort
import pytest
import torch

import kernels
from compiler import ops
from compiler.backends.onnx import to_onnx
from compiler.data import Dataset
from compiler.exec import golden, gradient
from compiler.exec import torch as torch_exec
from compiler.ir import FixedPoint, Graph, Node, TensorSpec
from compiler.passes.base import Context
from compiler.passes.lower import Lower
from kernels.activation import activation_table

N_IN, HIDDEN, CLASSES = 6, 8, 4
X_FMT, H_FMT, W_FRAC = FixedPoint(8, 5), FixedPoint(8, 4), 6


# the branch: its output format, and the add's output format and ReLU
class Branch(NamedTuple):
    g_fmt: FixedPoint
    out_fmt: FixedPoint
    relu: bool


BRANCHES = {
    "table": Branch(g_fmt=FixedPoint(8, 7), out_fmt=FixedPoint(8, 4), relu=False),
    "dense": Branch(g_fmt=FixedPoint(8, 3), out_fmt=FixedPoint(8, 3), relu=True),
}


def float_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {"d1.w": (HIDDEN, N_IN), "d1.b": (HIDDEN,), "d2.w": (HIDDEN, HIDDEN), "d2.b": (HIDDEN,)}
    shapes |= {"d3.w": (CLASSES, HIDDEN), "d3.b": (CLASSES,)}
    return {k: rng.uniform(-1, 1, s).astype(np.float32) for k, s in shapes.items()}


def float_twin(branch: str, p: dict) -> Graph:
    """The float graph: d1 -> relu -> (sigmoid | d2 -> relu) -> add(h, g) [-> relu] -> d3."""
    nodes = [Node("dense", "d1", ["x", "d1.w", "d1.b"], ["h1"]), Node("relu", "r1", ["h1"], ["h"])]
    if branch == "table":
        nodes.append(Node("sigmoid", "s", ["h"], ["g"]))
    else:
        nodes += [Node("dense", "d2", ["h", "d2.w", "d2.b"], ["g1"]), Node("relu", "r2", ["g1"], ["g"])]
    nodes.append(Node("add", "j", ["h", "g"], ["sum"]))
    last = "sum"
    if BRANCHES[branch].relu:
        nodes.append(Node("relu", "rj", ["sum"], ["sum_relu"]))
        last = "sum_relu"
    nodes.append(Node("dense", "d3", [last, "d3.w", "d3.b"], ["logits"]))
    used = {t for n in nodes for t in n.inputs}
    return Graph(
        [TensorSpec("x", (N_IN,))], [TensorSpec("logits", (CLASSES,))], nodes, {k: v for k, v in p.items() if k in used}
    )


class _IntegerBuilder:
    """The integer graph of the float twin, with the formats chosen by hand as lower would."""

    def __init__(self, p: dict):
        self.p = p
        self.params: dict[str, np.ndarray] = {}
        self.nodes = [Node("quantize", "quantize_input", ["x"], ["x_q"], attrs={"format": X_FMT.to_dict()})]

    def dense(self, name: str, x: str, x_fmt: FixedPoint) -> tuple[str, int]:
        """A dense node on `x`; its accumulator's name and frac."""
        w_q = kernels.quantize(self.p[f"{name}.w"], W_FRAC, 8)
        acc_frac = W_FRAC + x_fmt.frac
        b_q = np.round(self.p[f"{name}.b"].astype(np.float64) * 2.0**acc_frac).astype(np.int64)
        self.params[f"{name}.w_q"], self.params[f"{name}.b_q"] = w_q.astype(np.int32), b_q
        attrs = {"acc_bits": kernels.dense_accumulator_bits(w_q, b_q, x_fmt.bits), "acc_frac": acc_frac}
        self.nodes.append(Node("dense", name, [x, f"{name}.w_q", f"{name}.b_q"], [f"{name}_acc"], attrs=attrs))
        return f"{name}_acc", acc_frac

    def requantize(self, name: str, acc: str, acc_frac: int, fmt: FixedPoint, relu: bool) -> str:
        attrs = {"shift": acc_frac - fmt.frac, "bits": fmt.bits, "relu": relu}
        self.nodes.append(Node("requantize", name, [acc], [f"{name}_out"], attrs=attrs))
        return f"{name}_out"


def integer_graph(branch: str, p: dict) -> Graph:
    spec, b = BRANCHES[branch], _IntegerBuilder(p)
    g_fmt, out_fmt = spec.g_fmt, spec.out_fmt
    h = b.requantize("r1", *b.dense("d1", "x_q", X_FMT), H_FMT, relu=True)
    if branch == "table":
        b.params["s.table"] = activation_table("sigmoid", {}, H_FMT.bits, H_FMT.frac, g_fmt.bits, g_fmt.frac)
        formats = {"input_format": H_FMT.to_dict(), "format": g_fmt.to_dict()}
        table_attrs = {"function": "sigmoid", "function_attrs": {}, **formats, "shape": [HIDDEN]}
        b.nodes.append(Node("table", "s", [h, "s.table"], ["g"], attrs=table_attrs))
        g = "g"
    else:
        g = b.requantize("r2", *b.dense("d2", h, H_FMT), g_fmt, relu=True)
    frac_c = max(H_FMT.frac, g_fmt.frac)
    attrs = {
        "shift_a": frac_c - H_FMT.frac,
        "shift_b": frac_c - g_fmt.frac,
        "shift": frac_c - out_fmt.frac,
        "bits": out_fmt.bits,
        "relu": spec.relu,
        "input_formats": [H_FMT.to_dict(), g_fmt.to_dict()],
        "format": out_fmt.to_dict(),
    }
    b.nodes.append(Node("add", "j", [h, g], ["sum"], attrs=attrs))
    acc, acc_frac = b.dense("d3", "sum", out_fmt)
    b.nodes.append(Node("dequantize", "dequantize_output", [acc], ["logits"], attrs={"frac": acc_frac}))
    meta = {"integer": True, "input_format": X_FMT.to_dict(), "output_format": {"bits": 32, "frac": acc_frac}}
    graph = Graph([TensorSpec("x", (N_IN,))], [TensorSpec("logits", (CLASSES,))], b.nodes, b.params, meta)
    graph.validate()
    return graph


def inputs(n: int = 512, seed: int = 1) -> np.ndarray:
    """Typical inputs, inputs on the quantizer's rounding ties and far out of range ones."""
    rng = np.random.default_rng(seed)
    ties = (rng.integers(-120, 120, size=(n // 4, N_IN)) + 0.5) * 2.0**-X_FMT.frac
    wild = rng.normal(0, 20, size=(n // 4, N_IN))
    return np.concatenate([rng.normal(0, 1.5, size=(n // 2, N_IN)), ties, wild]).astype(np.float32)


@pytest.fixture(params=list(BRANCHES))
def graphs(request):
    p = float_weights()
    return request.param, float_twin(request.param, p), integer_graph(request.param, p)


def test_golden_equals_model_int_onnx_bit_for_bit(graphs):
    _, _, graph = graphs
    x = inputs()
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    logits, logits_q, classes = session.run(None, {"x": x})
    ref = golden.run(graph, x)
    assert np.array_equal(logits_q, ref.logits_q)
    assert np.array_equal(classes, ref.classes) and np.array_equal(logits, ref.logits)


def test_golden_runs_kernels_add_on_the_join_and_covers_its_corners(graphs):
    branch, _, graph = graphs
    values: dict = {}
    golden.run_integer(graph, golden.quantize_input(graph, inputs()), values=values)
    node = graph.node("j")
    a = node.attrs
    want = kernels.add(
        values[node.inputs[0]], values[node.inputs[1]], a["shift_a"], a["shift_b"], a["shift"], a["bits"], a["relu"]
    )
    assert np.array_equal(values["sum"], want)
    assert (a["shift_a"], a["shift_b"]) == ((3, 0) if branch == "table" else (0, 1))  # both alignments taken
    fmt = FixedPoint.from_dict(a["format"])
    assert (values["sum"] == fmt.max_int).any()  # saturated somewhere
    if a["relu"]:
        assert (values["sum"] == 0).any()  # and cut by the ReLU


def test_the_float_twin_runs_in_torch_and_the_integer_graph_follows_it(graphs):
    branch, float_graph, graph = graphs
    p = float_weights()
    x = inputs()[:256]  # the typical inputs only
    h = np.maximum(x @ p["d1.w"].T + p["d1.b"], 0)
    g = 1 / (1 + np.exp(-h)) if branch == "table" else np.maximum(h @ p["d2.w"].T + p["d2.b"], 0)
    s = np.maximum(h + g, 0) if BRANCHES[branch].relu else h + g
    want = s @ p["d3.w"].T + p["d3.b"]
    got = torch_exec.run(float_graph, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(torch_exec.intermediates(float_graph, x)["sum"], h + g, rtol=1e-5, atol=1e-5)
    integer = golden.run(graph, x)
    assert np.abs(integer.logits - got).mean() < 0.1 * np.abs(got).mean()
    assert (integer.classes == got.argmax(1)).mean() > 0.95


def test_the_gradient_stand_in_runs_through_the_join(graphs):
    branch, _, graph = graphs
    x = inputs()
    y = golden.run(graph, x).classes[::-1].copy()  # labels the model mostly gets wrong: large gradients
    loss, grads = gradient.integer_gradients(graph, golden.quantize_input(graph, x), y)
    assert np.isfinite(loss) and loss > 0
    weights = ["d1.w_q", "d1.b_q", "d3.w_q", "d3.b_q"] + (["d2.w_q", "d2.b_q"] if branch == "dense" else [])
    assert sorted(grads) == sorted(weights)
    for name in weights:
        assert grads[name].shape == graph.params[name].shape and np.isfinite(grads[name]).all()
        assert np.abs(grads[name]).sum() > 0, name


def test_the_stand_in_passes_each_input_straight_through_scaled_by_its_shifts(graphs):
    """d add / d a = 2**(shift_a - shift) and d add / d b = 2**(shift_b - shift) where the output
    neither saturated nor was cut by the ReLU, 0 elsewhere (requantize's straight-through rule)."""
    _, _, graph = graphs
    node = graph.node("j")
    values: dict = {}
    golden.run_integer(graph, golden.quantize_input(graph, inputs()), values=values)
    a_in = torch.tensor(values[node.inputs[0]], dtype=torch.float64, requires_grad=True)
    b_in = torch.tensor(values[node.inputs[1]], dtype=torch.float64, requires_grad=True)
    ops.get("add").stand_in(graph, node, [a_in, b_in], {}, values).sum().backward()
    at = node.attrs
    fmt = FixedPoint.from_dict(at["format"])
    passes = (values["sum"] > (0 if at["relu"] else fmt.min_int)) & (values["sum"] < fmt.max_int)
    np.testing.assert_array_equal(a_in.grad.numpy(), passes * 2.0 ** (at["shift_a"] - at["shift"]))
    np.testing.assert_array_equal(b_in.grad.numpy(), passes * 2.0 ** (at["shift_b"] - at["shift"]))


def test_lower_lowers_the_float_twin_to_this_integer_form(graphs):
    """lower (the per-tensor walk) gives the join of the hand-built graph: the same node, inputs
    in order, the ReLU fused where it is the add's only reader; exact against model.int.onnx."""
    branch, float_graph, _ = graphs
    x = inputs()[:256]
    y = torch_exec.run(float_graph, x).argmax(1)
    ctx = Context(data=Dataset(x[:200], y[:200], x[200:], y[200:]), log=lambda *_: None, progress=False)
    lowered = Lower().apply(float_graph, ctx)
    (join,) = [n for n in lowered.nodes if n.op == "add"]
    assert join.name == "j" and join.attrs["relu"] is BRANCHES[branch].relu
    assert join.outputs == (["sum_relu"] if BRANCHES[branch].relu else ["sum"])
    session = ort.InferenceSession(to_onnx(lowered).SerializeToString(), providers=["CPUExecutionProvider"])
    assert np.array_equal(session.run(None, {"x": inputs()})[1], golden.run(lowered, inputs()).logits_q)
