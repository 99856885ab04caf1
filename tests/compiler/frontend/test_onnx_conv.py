"""Convolutional networks through the frontend and the torch executor (issue 7, float half).

The onnx package's pytorch-converted node tests (opset 6) for 2-D Conv / pooling / BatchNorm
match their shipped outputs; the out-of-scope ones are refused by name and reason; hand-built
models pin the attribute forms (auto_pad, asymmetric pads, count_include_pad) against onnx's
reference evaluator; a LeNet-5 from both torch exporters matches torch; `mpc compile` on it
stops with one clear line (conv layers are not lowered yet).
"""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from compiler.exec import torch as torch_exec
from compiler.exec.train import reinitialize
from compiler.frontend.onnx import FrontendError, load_onnx
from compiler.ir import Graph

NODE_TESTS = Path(onnx.__file__).parent / "backend" / "test" / "data" / "pytorch-converted"

SUPPORTED = {  # case -> the IR ops it becomes
    "test_Conv2d": ["conv2d"],
    "test_Conv2d_no_bias": ["conv2d"],
    "test_Conv2d_padding": ["conv2d"],
    "test_Conv2d_strided": ["conv2d"],
    "test_MaxPool2d": ["maxpool2d"],
    # grouped (issue 27): depthwise as it is, other groups as their block-diagonal group = 1 weight
    "test_Conv2d_groups": ["conv2d"],
    "test_Conv2d_groups_thnn": ["conv2d"],
    **{f"test_Conv2d_depthwise{s}": ["conv2d"] for s in ("", "_padded", "_strided", "_with_multiplier")},
    "test_Conv1d_groups": ["conv2d"],
    # 1-D (issue 13): on the 2-D ops with H = 1
    **{f"test_Conv1d{s}": ["conv2d"] for s in ("", "_pad1", "_pad1size1", "_pad2", "_pad2size1", "_stride")},
    "test_MaxPool1d": ["maxpool2d"],
    "test_MaxPool1d_stride": ["maxpool2d"],
    "test_AvgPool2d": ["avgpool2d"],
    "test_AvgPool2d_stride": ["avgpool2d"],
    "test_BatchNorm2d_eval": ["batchnorm"],
    "test_BatchNorm2d_momentum_eval": ["batchnorm"],
}
_UNSUPPORTED_OP = "op type is not supported by mpc"
REFUSED = {  # case -> (node named in the message, why)
    "test_Conv2d_dilated": ("'Conv_0' (Conv)", "dilated convolution (dilations=[2, 2]) is not supported"),
    "test_MaxPool2d_stride_padding_dilation": ("'MaxPool_0' (MaxPool)", "dilated pooling (dilations=[10, 10])"),
    "test_Conv1d_dilated": ("'Conv_0' (Conv)", "dilated convolution (dilations=[2]) is not supported"),
    **{
        f"test_Conv3d{s}": ("'Conv_0' (Conv)", "3-D convolution is not supported")
        for s in ("", "_dilated", "_dilated_strided", "_groups", "_no_bias", "_stride", "_stride_padding")
    },
    "test_MaxPool1d_stride_padding_dilation": ("'MaxPool_0' (MaxPool)", "dilated pooling (dilations=[10])"),
    **{
        f"test_MaxPool3d{s}": ("'MaxPool_0' (MaxPool)", "3-D max pooling is not supported")
        for s in ("", "_stride", "_stride_padding")
    },
    **{
        f"test_AvgPool3d{s}": ("'AveragePool_0' (AveragePool)", "3-D average pooling is not supported")
        for s in ("", "_stride", "_stride1_pad0_gpu_input")
    },
    # torch exported AvgPool1d as Unsqueeze -> 2-D AveragePool -> Squeeze
    "test_AvgPool1d": ("'Unsqueeze_0' (Unsqueeze)", _UNSUPPORTED_OP),
    "test_AvgPool1d_stride": ("'Unsqueeze_0' (Unsqueeze)", _UNSUPPORTED_OP),
    "test_BatchNorm1d_3d_input_eval": (
        "'BatchNormalization_0' (BatchNormalization)",
        "only BatchNormalization over [N, C] or [N, C, H, W] is supported (rank 3",
    ),
    "test_BatchNorm3d_eval": ("'BatchNormalization_0' (BatchNormalization)", "(rank 5 given)"),
    "test_BatchNorm3d_momentum_eval": ("'BatchNormalization_0' (BatchNormalization)", "(rank 5 given)"),
    "test_ConvTranspose2d": ("'ConvTranspose_0' (ConvTranspose)", _UNSUPPORTED_OP),
    "test_ConvTranspose2d_no_bias": ("'ConvTranspose_0' (ConvTranspose)", _UNSUPPORTED_OP),
}


def _tensor(path: Path) -> np.ndarray:
    t = TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


@pytest.mark.parametrize("case", sorted(SUPPORTED))
def test_pytorch_converted_conv_pool_batchnorm_tests_match_their_outputs(case):
    folder = NODE_TESTS / case
    graph = load_onnx(folder / "model.onnx")
    assert [n.op for n in graph.nodes] == SUPPORTED[case]
    data_sets = sorted(folder.glob("test_data_set_*"))
    assert data_sets
    for data_set in data_sets:
        x, expected = _tensor(data_set / "input_0.pb"), _tensor(data_set / "output_0.pb")
        x = x.reshape(len(x), *graph.inputs[0].shape)  # 1-D: [N, C, L] is [N, C, 1, L] in the IR
        np.testing.assert_allclose(torch_exec.run(graph, x).reshape(expected.shape), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_out_of_scope_pytorch_converted_tests_are_refused_by_name(case):
    node, why = REFUSED[case]
    with pytest.raises(FrontendError) as e:
        load_onnx(NODE_TESTS / case / "model.onnx")
    msg = str(e.value)
    assert f"node {node}: " in msg and why in msg, msg
    assert "Traceback" not in msg


def test_every_2d_conv_pool_batchnorm_case_is_classified():
    """A new onnx release that ships more such cases should make us decide about them."""
    cases = {p.name for p in NODE_TESTS.iterdir() if any(k in p.name for k in ("Conv", "Pool", "BatchNorm"))}
    assert cases - set(SUPPORTED) - set(REFUSED) == set()


# ---- attribute forms, against onnx's reference evaluator --------------------------------------
def _out(name, rank):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * rank)


def _single(op, attrs, x_shape, inits=(), extra_inputs=(), opset=17, out_name="y"):
    """A one-node model y = op(x, *extra_inputs)."""
    node = helper.make_node(op, ["x", *extra_inputs], [out_name], name="n", **attrs)
    g = helper.make_graph(
        [node],
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, *x_shape])],
        [_out(out_name, 2 if attrs.get("keepdims", 1) == 0 else 4)],
        list(inits),
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _reference(model, x):
    """onnxruntime's output. (onnx's ReferenceEvaluator gets MaxPool SAME_LOWER's output size
    wrong and counts padding in AveragePool-1, whose spec excludes it.) onnxruntime does not run
    opset 6: such a model is stamped opset 7, which keeps Conv, GlobalAveragePool and
    AveragePool-1's meaning (AveragePool-7's count_include_pad defaults to 0)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.ir_version = 8
    for o in m.opset_import:
        o.version = max(o.version, 7)
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


_RNG = np.random.default_rng(7)
_W = numpy_helper.from_array(_RNG.normal(size=(4, 3, 3, 2)).astype(np.float32), "w")
_B = numpy_helper.from_array(_RNG.normal(size=(4,)).astype(np.float32), "b")
WINDOW_CASES = {
    "conv_same_upper": ("Conv", {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, [_W, _B], ["w", "b"], 17),
    "conv_same_lower": ("Conv", {"auto_pad": "SAME_LOWER", "strides": [1, 1]}, [_W], ["w"], 17),
    "conv_valid": ("Conv", {"auto_pad": "VALID"}, [_W, _B], ["w", "b"], 17),
    "conv_asymmetric_pads_no_kernel_shape": (
        "Conv",
        {"pads": [1, 0, 2, 1], "strides": [3, 3]},
        [_W, _B],
        ["w", "b"],
        11,
    ),
    "conv_opset6_defaults": ("Conv", {}, [_W], ["w"], 6),
    "maxpool_asymmetric_pads": (
        "MaxPool",
        {"kernel_shape": [3, 2], "pads": [2, 0, 1, 1], "strides": [2, 2]},
        [],
        [],
        17,
    ),
    "maxpool_same_lower": (
        "MaxPool",
        {"kernel_shape": [3, 3], "auto_pad": "SAME_LOWER", "strides": [2, 2]},
        [],
        [],
        17,
    ),
    "avgpool_include_pad_asymmetric": (
        "AveragePool",
        {"kernel_shape": [3, 3], "pads": [0, 2, 1, 0], "count_include_pad": 1},
        [],
        [],
        17,
    ),
    "avgpool_exclude_pad_asymmetric": (
        "AveragePool",
        {"kernel_shape": [3, 3], "pads": [0, 2, 1, 0], "count_include_pad": 0},
        [],
        [],
        17,
    ),
    "avgpool_exclude_pad_symmetric": (
        "AveragePool",
        {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]},
        [],
        [],
        17,
    ),
    "avgpool_opset6_pads": ("AveragePool", {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1]}, [], [], 6),
    "avgpool_same_upper": (
        "AveragePool",
        {"kernel_shape": [2, 3], "auto_pad": "SAME_UPPER", "count_include_pad": 1},
        [],
        [],
        17,
    ),
    "global_avgpool": ("GlobalAveragePool", {}, [], [], 6),
    "reduce_mean_keepdims_attr": ("ReduceMean", {"axes": [2, 3]}, [], [], 13),
    "reduce_mean_no_keepdims_negative_axes": ("ReduceMean", {"axes": [-1, -2], "keepdims": 0}, [], [], 13),
    "reduce_mean_axes_input": (
        "ReduceMean",
        {"keepdims": 0},
        [numpy_helper.from_array(np.array([2, 3], np.int64), "axes")],
        ["axes"],
        18,
    ),
}


@pytest.mark.parametrize("case", sorted(WINDOW_CASES))
def test_window_attribute_forms_match_the_onnx_reference(case, tmp_path):
    op, attrs, inits, extra, opset = WINDOW_CASES[case]
    model = _single(op, attrs, (3, 7, 6), inits, extra, opset)
    onnx.save(model, tmp_path / "m.onnx")
    graph = load_onnx(tmp_path / "m.onnx")
    x = np.random.default_rng(0).normal(size=(2, 3, 7, 6)).astype(np.float32)
    np.testing.assert_allclose(torch_exec.run(graph, x), _reference(model, x), rtol=1e-5, atol=1e-5)


def test_window_attrs_are_explicit_in_the_ir(tmp_path):
    onnx.save(
        _single("Conv", {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, (3, 7, 6), [_W, _B], ["w", "b"]),
        tmp_path / "m.onnx",
    )
    (node,) = load_onnx(tmp_path / "m.onnx").nodes
    assert node.op == "conv2d" and node.inputs[1:] == ["n.weight", "n.bias"]
    # out = ceil(7/2) = 4 rows: total pad (4-1)*2+3-7 = 2 -> 1, 1; ceil(6/2) = 3 cols: (3-1)*2+2-6 = 0
    assert node.attrs == {"kernel": [3, 2], "stride": [2, 2], "pads": [1, 0, 1, 0]}


def test_batchnorm_after_gemm_and_per_channel_add_after_conv(tmp_path):
    rng = np.random.default_rng(3)
    c = 4
    inits = [
        numpy_helper.from_array(numpy_helper.to_array(_W), "w"),
        numpy_helper.from_array(rng.normal(size=(c, 1, 1)).astype(np.float32), "cb"),
        numpy_helper.from_array(rng.normal(size=(3, c * 5 * 5)).astype(np.float32), "fw"),
        *[
            numpy_helper.from_array(v.astype(np.float32), k)
            for k, v in {
                "g": rng.normal(size=3),
                "be": rng.normal(size=3),
                "mu": rng.normal(size=3),
                "var": rng.uniform(0.5, 2, size=3),
            }.items()
        ],
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Add", ["c", "cb"], ["a"], name="add"),
        helper.make_node("Flatten", ["a"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fw"], ["d"], transB=1, name="fc"),
        helper.make_node("BatchNormalization", ["d", "g", "be", "mu", "var"], ["y"], epsilon=1e-3, name="bn"),
    ]
    g = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 7, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])
    onnx.save(model, tmp_path / "m.onnx")
    graph = load_onnx(tmp_path / "m.onnx")
    assert [n.op for n in graph.nodes] == ["conv2d", "bias_add", "flatten", "dense", "batchnorm"]
    x = rng.normal(size=(5, 3, 7, 6)).astype(np.float32)
    np.testing.assert_allclose(torch_exec.run(graph, x), _reference(model, x), rtol=1e-4, atol=1e-4)


def _refusal(tmp_path, model) -> str:
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(FrontendError) as e:
        load_onnx(tmp_path / "m.onnx")
    return str(e.value)


def test_unsupported_attributes_are_all_reported_at_once(tmp_path):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    w2 = numpy_helper.from_array(rng.normal(size=(4, 2, 3, 3)).astype(np.float32), "w2")
    stats = [numpy_helper.from_array(np.ones(4, np.float32), k) for k in ("g", "be", "mu", "var")]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], dilations=[2, 2], pads=[2, 2, 2, 2], name="dil"),
        helper.make_node("Conv", ["a", "w2"], ["b"], group=3, pads=[1, 1, 1, 1], name="grp"),
        helper.make_node("MaxPool", ["b"], ["c"], kernel_shape=[2, 2], ceil_mode=1, name="ceil"),
        helper.make_node("AveragePool", ["c"], ["d"], kernel_shape=[2, 2], ceil_mode=1, name="ceil_avg"),
        helper.make_node(
            "BatchNormalization", ["d", "g", "be", "mu", "var"], ["e", "rm", "rv"], training_mode=1, name="bn_train"
        ),
        helper.make_node("ReduceMean", ["e"], ["y"], axes=[1, 2], name="mean_c"),
    ]
    g = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 8, 8])],
        [_out("y", 4)],
        [w, w2, *stats],
    )
    msg = _refusal(tmp_path, helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)]))
    assert "6 unsupported node(s)" in msg
    for fragment in [
        "'dil' (Conv): dilated convolution (dilations=[2, 2]) is not supported",
        "'grp' (Conv): group 3 does not divide the 4 output channels",
        "'ceil' (MaxPool): ceil_mode=1 is not supported",
        "'ceil_avg' (AveragePool): ceil_mode=1 is not supported",
        "'bn_train' (BatchNormalization): training-mode BatchNormalization (training_mode=1)",
        "'mean_c' (ReduceMean): only a mean over H and W",
    ]:
        assert fragment in msg, msg


def test_opset6_training_mode_batchnorm_storage_order_and_non_constant_weights_are_refused(tmp_path):
    stats = [numpy_helper.from_array(np.ones(3, np.float32), k) for k in ("g", "be", "mu", "var")]
    nodes = [
        helper.make_node("BatchNormalization", ["x", "g", "be", "mu", "var"], ["a"], name="bn6"),  # is_test=0
        helper.make_node("MaxPool", ["a"], ["b"], kernel_shape=[2, 2], storage_order=1, name="so"),
        helper.make_node("Conv", ["b", "b"], ["y"], name="dyn_w"),
    ]
    g = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])], [_out("y", 4)], stats
    )
    msg = _refusal(tmp_path, helper.make_model(g, opset_imports=[helper.make_opsetid("", 8)]))
    assert "'so' (MaxPool): storage_order=1 is not supported" in msg
    assert "'dyn_w' (Conv): weight W must be a constant initializer" in msg
    g6 = helper.make_graph(
        nodes[:1], "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])], [_out("a", 4)], stats
    )
    msg = _refusal(tmp_path, helper.make_model(g6, opset_imports=[helper.make_opsetid("", 6)]))
    assert "'bn6' (BatchNormalization): training-mode BatchNormalization (is_test=0)" in msg


@pytest.mark.parametrize("shape", [(4, 1, 1), (1, 4, 1, 1), (6,), (7, 1), (1,)], ids=str)
def test_constant_add_on_a_feature_map_keeps_onnx_broadcasting(tmp_path, shape):
    bias = numpy_helper.from_array(np.random.default_rng(0).normal(size=shape).astype(np.float32), "b")
    model = _single("Add", {}, (4, 7, 6), [bias], ["b"])
    onnx.save(model, tmp_path / "m.onnx")
    x = np.random.default_rng(1).normal(size=(2, 4, 7, 6)).astype(np.float32)
    np.testing.assert_allclose(torch_exec.run(load_onnx(tmp_path / "m.onnx"), x), _reference(model, x), rtol=1e-6)


def test_shape_derived_values_may_only_feed_a_flattening_reshape(tmp_path):
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("Add", ["x", "sf"], ["y"], name="add_shape"),
    ]
    g = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])], [_out("y", 2)]
    )
    msg = _refusal(tmp_path, helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    assert "'add_shape' (Add): input 'sf' is computed from a Shape" in msg


# ---- LeNet-5 from both torch exporters ---------------------------------------------------------
class LeNet5(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = torch.nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(400, 120), torch.nn.Linear(120, 84), torch.nn.Linear(84, 10)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.nn.functional.avg_pool2d(torch.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)  # Shape -> Gather -> Concat -> Reshape with a dynamic batch
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


LENET_OPS = [
    "conv2d",
    "relu",
    "maxpool2d",
    "conv2d",
    "relu",
    "avgpool2d",
    "flatten",
    "dense",
    "relu",
    "dense",
    "relu",
    "dense",
]


def export_lenet(path: Path, dynamo: bool, dynamic_batch: bool, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = LeNet5().eval()
    x = torch.randn(2, 1, 28, 28)
    if dynamo:
        kw = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)} if dynamic_batch else {}
        torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False, **kw)
    else:
        kw = {"input_names": ["x"], "dynamic_axes": {"x": {0: "n"}}} if dynamic_batch else {}
        torch.onnx.export(model, (x,), str(path), dynamo=False, **kw)
    return model


@pytest.mark.parametrize(
    "dynamo,dynamic_batch",
    [(False, False), (False, True), (True, False), (True, True)],
    ids=["torchscript-static", "torchscript-dynamic", "dynamo-static", "dynamo-dynamic"],
)
def test_lenet5_from_torch_imports_and_matches(tmp_path, dynamo, dynamic_batch):
    model = export_lenet(tmp_path / "lenet.onnx", dynamo, dynamic_batch)
    graph = load_onnx(tmp_path / "lenet.onnx")
    assert [n.op for n in graph.nodes] == LENET_OPS
    assert graph.inputs[0].shape == (1, 28, 28) and graph.outputs[0].shape == (10,)
    conv1 = graph.nodes[0]
    assert conv1.attrs == {"kernel": [5, 5], "stride": [1, 1], "pads": [2, 2, 2, 2]}
    assert graph.params[conv1.inputs[1]].shape == (6, 1, 5, 5)
    assert graph.nodes[5].attrs["count_include_pad"] is True
    x = np.random.default_rng(1).normal(size=(9, 1, 28, 28)).astype(np.float32)  # another batch size
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(torch_exec.run(graph, x), expected, rtol=1e-4, atol=1e-5)


def test_conv_graph_round_trips_trains_and_reinitializes(tmp_path):
    export_lenet(tmp_path / "lenet.onnx", dynamo=False, dynamic_batch=True)
    graph = load_onnx(tmp_path / "lenet.onnx")
    graph.save(tmp_path / "ckpt")
    loaded = Graph.load(tmp_path / "ckpt")
    assert [(n.op, n.attrs) for n in loaded.nodes] == [(n.op, n.attrs) for n in graph.nodes]
    x = np.random.default_rng(2).normal(size=(4, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(torch_exec.run(loaded, x), torch_exec.run(graph, x))

    assert [n.op for n in graph.weighted_nodes()] == ["dense"] * 3  # 2-D weights only
    convs = [n for n in graph.weighted_nodes(include_conv=True) if n.op == "conv2d"]
    assert len(convs) == 2 and graph.weighted_nodes(include_conv=True)[:2] == convs

    module = torch_exec.GraphModule(graph)
    torch.nn.functional.cross_entropy(module(torch.from_numpy(x)), torch.tensor([0, 1, 2, 3])).backward()
    assert float(module.param(convs[0].inputs[1]).grad.abs().sum()) > 0  # conv weights are trainable

    fresh = reinitialize(graph, seed=3)
    for node in graph.weighted_nodes(include_conv=True):
        w0, w1 = graph.params[node.inputs[1]], fresh.params[node.inputs[1]]
        assert w1.shape == w0.shape and not np.allclose(w0, w1)
        fan_in = w0[0].size
        assert np.abs(w1).max() <= 1 / np.sqrt(fan_in) + 1e-6  # torch's default init bound


class UnevenStrideNet(torch.nn.Module):
    """Imports and runs in float, but no line-buffered engine steps the two axes differently."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, stride=(1, 2))
        self.fc = torch.nn.Linear(4 * 6 * 3, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def test_mpc_compile_of_a_cnn_it_cannot_lower_stops_with_one_clear_line(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            UnevenStrideNet().eval(),
            (torch.zeros(1, 1, 8, 8),),
            str(tmp_path / "m.onnx"),
            dynamo=False,
            input_names=["x"],
            dynamic_axes={"x": {0: "n"}},
        )
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "data.npz",
        x_train=rng.normal(size=(16, 1, 8, 8)).astype(np.float32),
        y_train=rng.integers(0, 10, 16),
        x_test=rng.normal(size=(8, 1, 8, 8)).astype(np.float32),
        y_test=rng.integers(0, 10, 8),
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "compiler.cli",
            "compile",
            tmp_path / "m.onnx",
            "--data",
            tmp_path / "data.npz",
            "-o",
            tmp_path / "out",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("mpc compile: error:")
    assert "/conv/Conv" in lines[0] and "strides must be equal" in lines[0]
    assert not (tmp_path / "out").exists()
