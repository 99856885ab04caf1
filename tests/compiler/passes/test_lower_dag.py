"""lower on branching graphs (issue 27): residual blocks and a channel concat exported by
torch.onnx (tests/dag_models.py), through canonicalize -> lower -> plan as `mpc compile` runs
them: the golden executor equals model.int.onnx bit for bit on every test row, the integer
accuracy stays near the float one, and the joins get the attrs of docs/fixed-point.md. A
hand-built float graph checks forks of an accumulator and a ReLU that is not fused."""

import numpy as np
import onnxruntime as ort
import pytest

from compiler.backends.onnx import to_onnx
from compiler.data import Dataset, load_data
from compiler.exec import golden
from compiler.exec import torch as torch_exec
from compiler.ir import FixedPoint, Graph, Node, TensorSpec
from compiler.passes.base import Context
from compiler.passes.lower import Lower
from tests.conftest import EXAMPLES, lower_model
from tests.dag_models import VARIANTS, export_dag


@pytest.fixture(scope="module")
def cnn_data():
    return load_data(EXAMPLES / "digits.npz", (1, 8, 8), 10)


@pytest.fixture(scope="module")
def lower_variant(cnn_data, tmp_path_factory):
    """variant -> (variant, float graph, integer graph), each exported, trained and lowered once."""
    cache: dict = {}

    def get(variant: str):
        if variant not in cache:
            path = export_dag(tmp_path_factory.mktemp("dag") / f"{variant}.onnx", variant, cnn_data)
            cache[variant] = (variant, *lower_model(path, cnn_data))
        return cache[variant]

    return get


@pytest.fixture(params=VARIANTS)
def lowered(request, lower_variant):
    return lower_variant(request.param)


def _onnx_outputs(graph: Graph, x: np.ndarray):
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {graph.inputs[0].name: x.astype(np.float32)})


def test_golden_equals_model_int_onnx_on_every_test_row(lowered, cnn_data):
    _, _, integer = lowered
    logits, logits_q, classes = _onnx_outputs(integer, cnn_data.x_test)
    ref = golden.run(integer, cnn_data.x_test)
    assert len(ref.classes) == len(cnn_data.x_test) == 899
    assert np.array_equal(logits_q, ref.logits_q)
    assert np.array_equal(classes, ref.classes) and np.array_equal(logits, ref.logits)


def test_integer_accuracy_stays_near_the_float_one(lowered, cnn_data):
    _, float_graph, integer = lowered
    float_acc = (torch_exec.predict_logits(float_graph, cnn_data.x_test).argmax(1) == cnn_data.y_test).mean()
    int_acc = (golden.run(integer, cnn_data.x_test).classes == cnn_data.y_test).mean()
    assert float_acc > 0.85  # trained: the comparison means something
    assert abs(int_acc - float_acc) <= 0.02


def _producer(graph: Graph, tensor: str) -> Node:
    node = graph.producer(tensor)
    assert node is not None
    return node


def _format_of(graph: Graph, tensor: str) -> dict:
    """The activation format of an integer tensor, from the node that produced it."""
    node = _producer(graph, tensor)
    if node.op == "requantize":
        return FixedPoint(node.attrs["bits"], node.attrs["out_frac"]).to_dict()
    return node.attrs["format"]


@pytest.mark.parametrize("variant", ["residual", "downsample"])
def test_the_add_joins_two_activations_with_its_relu_fused(lower_variant, variant):
    _, float_graph, integer = lower_variant(variant)
    (add,) = [n for n in integer.nodes if n.op == "add"]
    float_relu = float_graph.consumers(float_graph.node(add.name).outputs[0])[0]
    assert add.attrs["relu"] is True and add.outputs == float_relu.outputs  # the ReLU is the add's
    assert not any(n.name == float_relu.name for n in integer.nodes)
    fa, fb = (FixedPoint.from_dict(f) for f in add.attrs["input_formats"])
    assert add.attrs["input_formats"] == [_format_of(integer, t) for t in add.inputs]
    fc = max(fa.frac, fb.frac)
    assert (add.attrs["shift_a"], add.attrs["shift_b"]) == (fc - fa.frac, fc - fb.frac)
    assert add.attrs["shift"] == fc - add.attrs["format"]["frac"] >= 0
    conv_inputs = [_producer(integer, t) for t in add.inputs]
    if variant == "residual":  # c2's accumulator requantized; the skip is the stem's ReLU output (a fork)
        assert [n.op for n in conv_inputs] == ["requantize", "requantize"]
        assert conv_inputs[0].name == f"{add.name}.input_a" and conv_inputs[1].attrs["relu"] is True
        assert len(integer.consumers(add.inputs[1])) == 2  # the fork: the first conv of the block and the add
    else:  # both branches end in a conv: both accumulators requantized for the join
        assert [n.name for n in conv_inputs] == [f"{add.name}.input_a", f"{add.name}.input_b"]
        skip = _producer(integer, conv_inputs[1].inputs[0])
        assert skip.attrs["kernel"] == [1, 1] and skip.attrs["stride"] == 2 and skip.attrs["out_shape"] == [4, 4, 4]


def test_the_concat_joins_channels_in_the_coarser_format(lower_variant):
    _, _, integer = lower_variant("concat")
    (cat,) = [n for n in integer.nodes if n.op == "concat"]
    formats = [FixedPoint.from_dict(f) for f in cat.attrs["input_formats"]]
    assert cat.attrs["input_formats"] == [_format_of(integer, t) for t in cat.inputs]
    coarse = min(f.frac for f in formats)
    assert cat.attrs["format"] == {"bits": 8, "frac": coarse}
    assert cat.attrs["shifts"] == [f.frac - coarse for f in formats]
    assert cat.attrs["in_shapes"] == [[4, 8, 8], [4, 8, 8]] and cat.attrs["out_shape"] == [8, 8, 8]
    (dense,) = [n for n in integer.nodes if n.op == "dense"]
    assert dense.attrs["input_chw"] == [8, 8, 8]  # the flattened concat streams channel-last


# ---- forks of an accumulator, and a ReLU that is not the add's only reader ----------------------
def _fork_graph(seed: int = 0) -> Graph:
    """h = d1(x) feeds a ReLU and two dense layers (a fork of an accumulator); s = d2(h) + d3(h)
    feeds a ReLU and a second add (so its ReLU stays a node); u = (relu(s) + s) + relu(h) -> d4."""
    rng = np.random.default_rng(seed)
    shapes = {"d1": (8, 6), "d2": (8, 8), "d3": (8, 8), "d4": (4, 8)}
    params = {f"{k}.w": rng.uniform(-1, 1, s).astype(np.float32) for k, s in shapes.items()}
    params |= {f"{k}.b": rng.uniform(-0.5, 0.5, s[0]).astype(np.float32) for k, s in shapes.items()}
    nodes = [
        Node("dense", "d1", ["x", "d1.w", "d1.b"], ["h"]),
        Node("relu", "rh", ["h"], ["a"]),
        Node("dense", "d2", ["h", "d2.w", "d2.b"], ["g"]),
        Node("dense", "d3", ["h", "d3.w", "d3.b"], ["k"]),
        Node("add", "s", ["g", "k"], ["s_out"]),
        Node("relu", "rs", ["s_out"], ["r"]),
        Node("add", "t", ["r", "s_out"], ["t_out"]),
        Node("add", "u", ["t_out", "a"], ["u_out"]),
        Node("dense", "d4", ["u_out", "d4.w", "d4.b"], ["logits"]),
    ]
    graph = Graph([TensorSpec("x", (6,))], [TensorSpec("logits", (4,))], nodes, params)
    graph.validate()
    return graph


@pytest.fixture(scope="module")
def fork_lowered():
    graph = _fork_graph()
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (600, 6)).astype(np.float32)
    y = torch_exec.run(graph, x).argmax(1)
    data = Dataset(x[:400], y[:400], x[400:], y[400:])
    ctx = Context(data=data, log=lambda *_: None, progress=False)
    return graph, Lower().apply(graph, ctx), data


def test_an_accumulator_read_by_several_layers_is_requantized_once(fork_lowered):
    _, integer, _ = fork_lowered
    readers_of_h = integer.consumers("h")
    assert sorted((n.op, n.attrs["relu"]) for n in readers_of_h) == [("requantize", False), ("requantize", True)]
    plain = next(n for n in readers_of_h if not n.attrs["relu"])
    assert plain.outputs == ["h_q"] and sorted(n.name for n in integer.consumers("h_q")) == ["d2", "d3"]


def test_a_relu_is_fused_into_an_add_only_when_it_is_the_only_reader(fork_lowered):
    _, integer, _ = fork_lowered
    adds = {n.name: n for n in integer.nodes if n.op == "add"}
    assert sorted(adds) == ["s", "t", "u"]
    assert not any(a.attrs["relu"] for a in adds.values())  # s's output is also read by t
    (rs,) = [n for n in integer.nodes if n.name == "rs"]
    assert rs.op == "requantize" and rs.attrs["relu"] and rs.inputs == ["s_out"]
    assert adds["t"].inputs == ["r", "s_out"] and adds["u"].inputs[1] == "a"


def test_the_fork_graph_is_exact_and_follows_the_float_model(fork_lowered):
    graph, integer, data = fork_lowered
    logits, logits_q, classes = _onnx_outputs(integer, data.x_test)
    ref = golden.run(integer, data.x_test)
    assert np.array_equal(logits_q, ref.logits_q) and np.array_equal(classes, ref.classes)
    assert (ref.classes == data.y_test).mean() > 0.9
