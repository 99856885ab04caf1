"""canonicalize on convolutional graphs: BatchNormalization folds into the conv / dense before
it (exactly, to float rounding), a per-channel Add fuses into the conv's bias, a batchnorm that
follows no conv/dense stays explicit, and `lower` refuses what is left by name."""

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from compiler import passes  # noqa: F401
from compiler.data import Dataset
from compiler.exec import torch as torch_exec
from compiler.frontend.onnx import load_onnx
from compiler.passes.base import Context, PassError, get_pass


class ConvBnNet(torch.nn.Module):
    """conv (no bias) + BN, conv + BN, a BN after a ReLU (cannot fold), linear + BN1d."""

    def __init__(self):
        super().__init__()
        self.c1, self.bn1 = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4)
        self.c2, self.bn2 = torch.nn.Conv2d(4, 8, 3, stride=2), torch.nn.BatchNorm2d(8)
        self.bn3 = torch.nn.BatchNorm2d(8, eps=1e-3)
        self.fc, self.bn4 = torch.nn.Linear(32, 10), torch.nn.BatchNorm1d(10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn1(self.c1(x))), 2)
        x = self.bn3(torch.relu(self.bn2(self.c2(x))))
        return self.bn4(self.fc(torch.flatten(x, 1)))


def _conv_bn_net(seed=0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = ConvBnNet()
    with torch.no_grad():  # statistics far from (0, 1) so that folding is not a no-op
        for bn in (model.bn1, model.bn2, model.bn3, model.bn4):
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.3, 3.0)
            bn.weight.normal_(1, 0.5)
            bn.bias.normal_(0, 0.5)
    return model.eval()


def _export(model, path: Path, dynamo: bool) -> Path:
    x = torch.randn(2, 1, 12, 12)
    if dynamo:  # its optimizer already folds the BNs it can
        torch.onnx.export(
            model, (x,), str(path), dynamo=True, verbose=False, dynamic_shapes=({0: torch.export.Dim("batch")},)
        )
    else:  # constant folding off keeps every BatchNormalization node in the file
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            do_constant_folding=False,
            input_names=["x"],
            dynamic_axes={"x": {0: "n"}},
        )
    return path


CANONICAL_OPS = ["conv2d", "relu", "maxpool2d", "conv2d", "relu", "batchnorm", "flatten", "dense"]


def _x(n=16, seed=1):
    return np.random.default_rng(seed).normal(size=(n, 1, 12, 12)).astype(np.float32)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_batchnorm_folds_into_conv_and_dense_and_matches_torch(tmp_path, dynamo):
    model = _conv_bn_net()
    graph = load_onnx(_export(model, tmp_path / "m.onnx", dynamo))
    canon = get_pass("canonicalize").run(graph, Context())
    assert [n.op for n in canon.nodes] == CANONICAL_OPS
    x = _x()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(torch_exec.run(canon, x), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(torch_exec.run(graph, x), expected, rtol=1e-4, atol=1e-5)
    for node in canon.weighted_nodes(include_conv=True):
        assert len(node.inputs) == 3  # x, weight, bias (made for c1)
        assert canon.params[node.inputs[2]].shape == (canon.params[node.inputs[1]].shape[0],)
    assert set(canon.params) == {p for n in canon.nodes for p in n.inputs if p in canon.params}
    if not dynamo:
        assert [n.op for n in graph.nodes].count("batchnorm") == 4  # the input graph is untouched
        folded = {n.op: n.annotations.get("folded_batchnorm") for n in canon.nodes if n.op in ("conv2d", "dense")}
        assert folded["dense"] == "/bn4/BatchNormalization"


def test_folded_weights_are_the_exact_formula(tmp_path):
    model = _conv_bn_net(seed=2)
    canon = get_pass("canonicalize").run(load_onnx(_export(model, tmp_path / "m.onnx", dynamo=False)), Context())
    conv1 = canon.nodes[0]
    bn = model.bn1
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
    expected_w = model.c1.weight.detach().double().numpy() * scale[:, None, None, None]
    expected_b = bn.bias.detach().double().numpy() - bn.running_mean.double().numpy() * scale
    np.testing.assert_allclose(canon.params[conv1.inputs[1]], expected_w, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(canon.params[conv1.inputs[2]], expected_b, rtol=1e-6, atol=1e-7)


def test_lower_refuses_a_batchnorm_canonicalize_could_not_fold_by_name(tmp_path):
    canon = get_pass("canonicalize").run(
        load_onnx(_export(_conv_bn_net(), tmp_path / "m.onnx", dynamo=False)), Context()
    )
    x, y = _x(8), np.zeros(8, np.int64)
    with pytest.raises(PassError) as e:
        get_pass("lower").run(canon, Context(data=Dataset(x, y, x, y), log=lambda *_: None, progress=False))
    msg = str(e.value)
    assert "'/bn3/BatchNormalization'" in msg and "folded" in msg and "/c1/Conv" not in msg
    assert "\n" not in msg


def _model(nodes, inits, in_shape, out_rank=4, opset=15):
    g = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * out_rank)],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _bn_stats(rng, c):
    return {
        "g": rng.normal(1, 0.5, c),
        "be": rng.normal(0, 0.5, c),
        "mu": rng.normal(0, 0.5, c),
        "var": rng.uniform(0.3, 3, c),
    }


def test_per_channel_add_fuses_into_the_conv_bias_then_batchnorm_folds(tmp_path):
    rng = np.random.default_rng(0)
    inits = {"w": rng.normal(size=(5, 3, 3, 3)), "cb": rng.normal(size=(5, 1, 1)), **_bn_stats(rng, 5)}
    onnx.save(
        _model(
            [
                helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
                helper.make_node("Add", ["c", "cb"], ["a"], name="add"),
                helper.make_node("BatchNormalization", ["a", "g", "be", "mu", "var"], ["y"], name="bn"),
            ],
            inits,
            (3, 6, 6),
        ),
        tmp_path / "m.onnx",
    )
    graph = load_onnx(tmp_path / "m.onnx")
    canon = get_pass("canonicalize").run(graph, Context())
    assert [n.op for n in canon.nodes] == ["conv2d"]
    assert canon.nodes[0].inputs[1:] == ["conv.weight", "add.bias"] and canon.outputs[0].name == "y"
    x = rng.normal(size=(4, 3, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(torch_exec.run(canon, x), torch_exec.run(graph, x), rtol=1e-5, atol=1e-5)


def test_batchnorm_not_after_a_lone_conv_or_dense_stays_explicit(tmp_path):
    rng = np.random.default_rng(1)
    # conv output read twice (bn and relu): folding would change what relu sees
    inits = {
        "w": rng.normal(size=(4, 3, 3, 3)),
        **_bn_stats(rng, 4),
        **{f"{k}2": v for k, v in _bn_stats(rng, 3).items()},
    }
    onnx.save(
        _model(
            [
                helper.make_node("BatchNormalization", ["x", "g2", "be2", "mu2", "var2"], ["x0"], name="bn_in"),
                helper.make_node("Conv", ["x0", "w"], ["c"], name="conv"),
                helper.make_node("Relu", ["c"], ["unused"], name="side"),
                helper.make_node("BatchNormalization", ["c", "g", "be", "mu", "var"], ["y"], name="bn"),
            ],
            inits,
            (3, 6, 6),
        ),
        tmp_path / "m.onnx",
    )
    graph = load_onnx(tmp_path / "m.onnx")
    canon = get_pass("canonicalize").run(graph, Context())
    assert [n.op for n in canon.nodes] == ["batchnorm", "conv2d", "relu", "batchnorm"]
    x = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(torch_exec.run(canon, x), torch_exec.run(graph, x), rtol=1e-6)


def test_a_bias_that_is_not_per_channel_is_not_fused_into_the_conv(tmp_path):
    rng = np.random.default_rng(2)
    onnx.save(
        _model(
            [
                helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                helper.make_node("Add", ["c", "b"], ["y"], name="add_w"),
            ],
            {"w": rng.normal(size=(5, 3, 3, 3)), "b": rng.normal(size=(4,))},
            (3, 6, 6),
        ),
        tmp_path / "m.onnx",
    )
    graph = load_onnx(tmp_path / "m.onnx")
    canon = get_pass("canonicalize").run(graph, Context())
    assert [n.op for n in canon.nodes] == ["conv2d", "bias_add"]  # along W: stays, lower refuses it
    x = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(torch_exec.run(canon, x), torch_exec.run(graph, x))


def test_a_batchnorm_after_a_depthwise_conv_folds_per_channel():
    """Weight [C, 1, kH, kW] times scale[c]: exact up to float rounding, the group kept."""
    from compiler.ir import Graph, Node, TensorSpec

    rng = np.random.default_rng(5)
    params = {
        "w": rng.normal(size=(4, 1, 3, 3)),
        "scale": rng.uniform(0.5, 2, 4),
        "shift": rng.normal(size=4),
    }
    window = {"kernel": [3, 3], "stride": [2, 2], "pads": [0, 0, 1, 1], "group": 4}
    graph = Graph(
        [TensorSpec("x", (4, 6, 6))],
        [TensorSpec("y", (4, 3, 3))],
        [
            Node("conv2d", "dw", ["x", "w"], ["c"], attrs=window),
            Node("batchnorm", "bn", ["c", "scale", "shift"], ["y"]),
        ],
        {k: v.astype(np.float32) for k, v in params.items()},
    )
    canon = get_pass("canonicalize").run(graph, Context())
    (dw,) = canon.nodes
    assert dw.attrs["group"] == 4 and dw.annotations["folded_batchnorm"] == "bn"
    np.testing.assert_allclose(canon.params["w"], params["w"] * params["scale"].reshape(4, 1, 1, 1), rtol=1e-6)
    x = rng.normal(size=(3, 4, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(torch_exec.run(canon, x), torch_exec.run(graph, x), rtol=1e-5, atol=1e-5)
