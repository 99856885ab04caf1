"""1-D convolution and pooling (issue 13, part 3): torch Conv1d / MaxPool1d / AvgPool1d models
become the 2-D ops with H = 1 (kernel [1, k], pads [0, l, 0, r], a [C, L] input is [C, 1, L]).
They import, agree with onnxruntime in float, compile to a model.int.onnx that takes the model's
own [N, C, L] input and equals the golden executor, and simulate bit-exact."""

import json
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from compiler import api
from compiler.data import load_data
from compiler.exec import torch as torch_exec
from compiler.frontend.onnx import load_onnx

C, L = 3, 24

# name -> (conv kwargs, pool) ; pool None: conv -> relu -> flatten -> linear
MODELS = {
    "k3-pad1-maxpool2": (dict(kernel_size=3, padding=1), nn.MaxPool1d(2)),
    "k5-stride2-pad2-avgpool3-s2-p1": (dict(kernel_size=5, stride=2, padding=2), nn.AvgPool1d(3, stride=2, padding=1)),
    "k4-stride3-maxpool3-s1-p1": (dict(kernel_size=4, stride=3), nn.MaxPool1d(3, stride=1, padding=1)),
    "k3-pad2-avgpool2": (dict(kernel_size=3, padding=2), nn.AvgPool1d(2)),
    "k2-stride2-nopool": (dict(kernel_size=2, stride=2), None),
}


def _model(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    conv_kw, pool = MODELS[name]
    layers = [nn.Conv1d(C, 6, **conv_kw), nn.ReLU()]
    if pool is not None:
        layers.append(pool)
    layers.append(nn.Flatten())
    with torch.no_grad():
        features = nn.Sequential(*layers)(torch.zeros(1, C, L)).shape[1]
    return nn.Sequential(*layers, nn.Linear(features, 4)).eval()


def _export(model: nn.Module, path, dynamo: bool) -> None:
    x = torch.randn(2, C, L)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(
                model,
                (x,),
                str(path),
                dynamo=True,
                input_names=["x"],
                output_names=["y"],
                dynamic_shapes={"input": {0: torch.export.Dim("batch")}},
                verbose=False,
            )
        else:
            torch.onnx.export(
                model,
                (x,),
                str(path),
                dynamo=False,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            )


def _data(model: nn.Module, path, n_train: int = 256, n_test: int = 64):
    """Random signals labelled by the model itself (its float accuracy is 1)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n_train + n_test, C, L)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()
    np.savez(path, x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:])
    return x, y


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_conv1d_models_import_as_2d_ops_with_h1_and_match_onnxruntime(tmp_path, name, dynamo):
    model = _model(name)
    _export(model, tmp_path / "m.onnx", dynamo)
    graph = load_onnx(tmp_path / "m.onnx")
    assert graph.inputs[0].shape == (C, 1, L)
    assert graph.meta["source_input_shape"] == [C, L]
    conv = next(n for n in graph.nodes if n.op == "conv2d")
    kw = MODELS[name][0]
    k, s, p = kw["kernel_size"], kw.get("stride", 1), kw.get("padding", 0)
    assert conv.attrs == {"kernel": [1, k], "stride": [s, s], "pads": [0, p, 0, p]}
    assert graph.params[conv.inputs[1]].shape == (6, C, 1, k)
    for pool in (n for n in graph.nodes if n.op in ("maxpool2d", "avgpool2d")):
        assert pool.attrs["kernel"][0] == 1 and pool.attrs["pads"][0] == pool.attrs["pads"][2] == 0
    x = np.random.default_rng(2).normal(size=(5, C, L)).astype(np.float32)
    (expected,) = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = torch_exec.run(graph, x.reshape(5, C, 1, L))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_data_with_shape_n_c_l_fits_the_c_1_l_input(tmp_path):
    model = _model("k3-pad1-maxpool2")
    x, _ = _data(model, tmp_path / "d.npz")
    data = load_data(tmp_path / "d.npz", (C, 1, L), 4)
    assert data.x_train.shape == (256, C, 1, L)
    np.testing.assert_array_equal(data.x_train.reshape(256, C, L), x[:256])


def _compile(tmp_path, name: str):
    model = _model(name)
    _export(model, tmp_path / "m.onnx", dynamo=False)
    x, _ = _data(model, tmp_path / "d.npz")
    out = tmp_path / "out"
    report = api.compile(
        tmp_path / "m.onnx", tmp_path / "d.npz", out, log=lambda *_: None, progress=False, synth_timeout=None
    )
    return out, report, x


@pytest.mark.parametrize("name", sorted(MODELS))
def test_conv1d_models_compile_and_model_int_onnx_takes_n_c_l(tmp_path, name):
    out, report, x = _compile(tmp_path, name)
    check = report["compiled"]["onnx_matches_golden"]
    assert check["identical"] is True and check["checked_samples"] == 64
    assert report["compiled"]["test_accuracy"] >= 0.8  # labels are the float model's own classes
    session = ort.InferenceSession(str(out / "model.int.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [C, L]
    _, _, classes = session.run(None, {"x": x[-64:]})
    assert classes.shape == (64,)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_conv1d_design_simulates_bit_exact_in_the_estimated_cycles(tmp_path, name):
    """Measured (6 samples): 0 mismatches; latency / interval equal the estimate, e.g. 372 / 108
    cycles for k5-stride2-pad2-avgpool3-s2-p1, 515 / 144 for k3-pad1-maxpool2."""
    out, _, _ = _compile(tmp_path, name)
    design = json.loads((out / "rtl" / "design.json").read_text())
    assert design["input_shape"] == [C, 1, L]
    result = api.simulate(out, samples=6, log=lambda *_: None)
    assert result["mismatches"] == 0 and result["error"] is None
    assert result["cycles_per_inference"] == design["estimated_latency"]
    assert result["initiation_interval"] == design["estimated_interval"]


def test_a_wide_conv1d_layer_is_computed_in_int64_and_identical_to_golden(tmp_path):
    """Output channel 0 of the conv is dead (a huge negative bias; ReLU gives 0): its accumulator
    is wider than int32, so model.int.onnx sums ConvInteger over channel groups in int64."""
    from compiler.ir import Graph

    model = _model("k3-pad1-maxpool2")
    with torch.no_grad():
        model[0].bias[0] = -2e6
    _export(model, tmp_path / "m.onnx", dynamo=False)
    _data(model, tmp_path / "d.npz")
    out = tmp_path / "out"
    report = api.compile(
        tmp_path / "m.onnx", tmp_path / "d.npz", out, log=lambda *_: None, progress=False, synth_timeout=None
    )
    conv = next(n for n in Graph.load(out).nodes if n.op == "conv2d")
    assert 32 < conv.attrs["acc_bits"] <= 48
    assert report["compiled"]["onnx_matches_golden"]["identical"] is True


def test_hand_built_1d_conv_with_auto_pad_and_a_per_channel_add(tmp_path):
    """Conv (no bias, SAME_UPPER, stride 2) + Add of a [C, 1] constant, as some exporters write
    1-D layers: the add broadcasts per channel over [C, 1, L] exactly as over [C, L]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.normal(size=(5, C, 4)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.normal(size=(5, 1)).astype(np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", auto_pad="SAME_UPPER", strides=[2]),
        helper.make_node("Add", ["c", "b"], ["y"], name="add"),
    ]
    g = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", C, L])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5, L // 2])],
        [w, bias],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(model.SerializeToString())
    graph = load_onnx(onnx_path)
    assert graph.nodes[0].attrs == {"kernel": [1, 4], "stride": [2, 2], "pads": [0, 1, 0, 1]}
    x = rng.normal(size=(3, C, L)).astype(np.float32)
    (expected,) = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = torch_exec.run(graph, x.reshape(3, C, 1, L))
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-5, atol=1e-5)


def test_2d_layers_on_one_row_with_unequal_strides_compile(tmp_path):
    """A 2-D Conv / MaxPool over [N, C, 1, L] (1-D layers written as 2-D, e.g. after an
    Unsqueeze) with row stride != column stride: with one row, KH = 1 and no row padding the row
    stride changes nothing, so the import uses the column stride on both axes (the line-buffered
    engines step both alike) and the model compiles, identical to onnxruntime's float output."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, C, 1, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=4).astype(np.float32) * 0.1, "wb"),
        numpy_helper.from_array(rng.normal(size=(4 * 6, 3)).astype(np.float32), "fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "wb"], ["c"], name="conv", strides=[3, 2], pads=[0, 1, 0, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[1, 2], strides=[1, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "fc"], ["y"], name="fc"),
    ]
    g = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", C, 1, L])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        inits,
    )
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    graph = load_onnx(onnx_path)
    assert [n.attrs.get("stride") for n in graph.nodes if n.op in ("conv2d", "maxpool2d")] == [[2, 2], [2, 2]]
    x = rng.normal(size=(320, C, 1, L)).astype(np.float32)
    (expected,) = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(torch_exec.run(graph, x), expected, rtol=1e-5, atol=1e-5)
    y = expected.argmax(1)
    np.savez(tmp_path / "d.npz", x_train=x[:256], y_train=y[:256], x_test=x[256:], y_test=y[256:])
    report = api.compile(
        onnx_path, tmp_path / "d.npz", tmp_path / "out", log=lambda *_: None, progress=False, synth_timeout=None
    )
    assert report["compiled"]["onnx_matches_golden"]["identical"] is True
