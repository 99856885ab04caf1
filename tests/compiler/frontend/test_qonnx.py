"""QONNX input (compiler/frontend/qonnx.py): Quant / BipolarQuant weights and activations, Trunc refused."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from benchmarks.exporter_corpus import qonnx_quant
from compiler import api
from compiler.frontend.onnx import FrontendError, load_onnx
from compiler.ir import Graph

QONNX = "qonnx.custom_op.general"
N_IN, N_HID, N_OUT = 12, 10, 3


def _const(name, value):
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _bipolar(name, x, scale):
    node = helper.make_node("BipolarQuant", [x, f"{name}.scale"], [f"{name}.out"], name=name, domain=QONNX)
    return node, [_const(f"{name}.scale", scale)]


def _mlp(path, weight_quant, act_bits=8, opset_domain=True):
    """x -> Quant(8-bit, 2**-4) -> Gemm(fc1, quantized W) -> Relu -> Quant -> Gemm(fc2, quantized W)."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.5, (N_HID, N_IN)).astype(np.float32)
    w2 = rng.normal(0, 0.5, (N_OUT, N_HID)).astype(np.float32)
    nodes, inits = [], [_const("w1", w1), _const("w2", w2), _const("b1", rng.normal(0, 0.1, N_HID))]
    inits.append(_const("b2", np.zeros(N_OUT)))
    for node, more in (
        qonnx_quant("q_in", "x", 2.0**-4, act_bits),
        weight_quant("q_w1", "w1"),
        weight_quant("q_w2", "w2"),
    ):
        nodes.append(node)
        inits += more
    nodes.append(helper.make_node("Gemm", ["q_in.out", "q_w1.out", "b1"], ["h"], name="fc1", transB=1))
    nodes.append(helper.make_node("Relu", ["h"], ["h_relu"], name="relu1"))
    q_act, more = qonnx_quant("q_act", "h_relu", 2.0**-4, act_bits)
    nodes.append(q_act)
    inits += more
    nodes.append(helper.make_node("Gemm", ["q_act.out", "q_w2.out", "b2"], ["y"], name="fc2", transB=1))
    graph = helper.make_graph(
        nodes,
        "qonnx_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, N_IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, N_OUT])],
        inits,
    )
    opsets = [helper.make_opsetid("", 13)] + ([helper.make_opsetid(QONNX, 1)] if opset_domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    onnx.save(model, path)
    return model


@pytest.fixture
def data_npz(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (96, N_IN)).astype(np.float32)
    y = (x[:, :N_OUT] @ np.ones(N_OUT)).astype(np.int64) % N_OUT
    path = tmp_path / "data.npz"
    np.savez(path, x_train=x[:64], y_train=y[:64], x_test=x[64:], y_test=y[64:])
    return path


def _compile(tmp_path, model, data):
    out = tmp_path / "out"
    report = api.compile(model, data, out, log=lambda *_: None, progress=False, synth_timeout=None)
    assert report["compiled"]["onnx_matches_golden"]["identical"]  # model.int.onnx == golden, all of x_test
    return out, report


def _pow2_4bit(name, x):
    return qonnx_quant(name, x, 2.0**-3, 4, narrow=1)


def _qonnx_ints(model, quant):
    """Integer weights of a QONNX Quant, computed by qonnx's own implementation."""
    qonnx_quant = pytest.importorskip("qonnx.custom_op.general.quant")
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    node = next(n for n in model.graph.node if n.name == quant)
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    x, scale, zp, bits = (inits[i] for i in node.input)
    q = qonnx_quant.quant(x, scale, zp, bits, a["signed"], a["narrow"], a["rounding_mode"].decode())
    return np.round(q / scale).astype(np.int64)


def test_pow2_weights_and_activations_are_kept_exactly(tmp_path, data_npz):
    model = _mlp(tmp_path / "m.onnx", _pow2_4bit)
    graph = load_onnx(tmp_path / "m.onnx")
    fc1 = next(n for n in graph.nodes if n.name == "fc1")
    assert fc1.annotations["weight_format"] == {"bits": 4, "frac": 3}
    assert graph.meta["qonnx"]["activations"] == {"x": {"bits": 8, "frac": 4}, "h_relu": {"bits": 8, "frac": 4}}
    out, report = _compile(tmp_path, tmp_path / "m.onnx", data_npz)
    compiled = Graph.load(out)
    for layer, quant in (("fc1", "q_w1"), ("fc2", "q_w2")):
        node = next(n for n in compiled.nodes if n.name == layer)
        assert node.attrs["weight_format"] == {"bits": 4, "frac": 3}
        assert np.array_equal(compiled.params[node.inputs[1]], _qonnx_ints(model, quant))
    assert compiled.meta["input_format"] == {"bits": 8, "frac": 4}
    requant = next(n for n in compiled.nodes if n.op == "requantize")
    assert requant.attrs["out_frac"] == 4 and requant.attrs["bits"] == 8 and requant.attrs["relu"]
    assert "re-quantized" not in (out / "report.md").read_text()


def test_without_opset_import_for_the_qonnx_domain(tmp_path):
    _mlp(tmp_path / "m.onnx", _pow2_4bit, opset_domain=False)  # as some Brevitas exports are written
    assert load_onnx(tmp_path / "m.onnx").meta["qonnx"]["weights"]["fc2"]["format"] == {"bits": 4, "frac": 3}


def test_bipolar_weights_map_to_a_2bit_grid(tmp_path, data_npz):
    _mlp(tmp_path / "m.onnx", lambda name, x: _bipolar(name, x, 2.0**-2))
    out, _ = _compile(tmp_path, tmp_path / "m.onnx", data_npz)
    compiled = Graph.load(out)
    fc1 = next(n for n in compiled.nodes if n.name == "fc1")
    assert fc1.attrs["weight_format"] == {"bits": 2, "frac": 2}
    w = compiled.params[fc1.inputs[1]]
    w_float = numpy_helper.to_array(next(t for t in onnx.load(tmp_path / "m.onnx").graph.initializer if t.name == "w1"))
    assert np.array_equal(w, np.where(w_float >= 0, 1, -1))


def test_non_pow2_scale_is_requantized_and_reported(tmp_path, data_npz):
    _mlp(tmp_path / "m.onnx", lambda name, x: qonnx_quant(name, x, 0.3, 4, narrow=1))
    graph = load_onnx(tmp_path / "m.onnx")
    changed = graph.meta["qonnx"]["requantized"]
    assert set(changed) == {"fc1", "fc2"}
    assert changed["fc1"]["format"]["bits"] == 4 and "power of two" in changed["fc1"]["why"]
    assert 0 < changed["fc1"]["max_abs_change"] < 0.3
    out, report = _compile(tmp_path, tmp_path / "m.onnx", data_npz)
    md = (out / "report.md").read_text()
    assert "re-quantized" in md and "`fc1`" in md
    assert report["model"]["qonnx"]["requantized"]["fc2"]["max_abs_change"] == changed["fc2"]["max_abs_change"]


def test_unsigned_and_narrow_grids(tmp_path):
    _mlp(tmp_path / "m.onnx", lambda name, x: qonnx_quant(name, x, 2.0**-4, 3, signed=0), act_bits=4)
    graph = load_onnx(tmp_path / "m.onnx")
    assert graph.meta["qonnx"]["weights"]["fc1"]["format"] == {"bits": 4, "frac": 4}  # [0, 7]: 4 signed bits
    assert graph.meta["qonnx"]["activations"]["h_relu"] == {"bits": 4, "frac": 4}
    w = graph.params[next(n for n in graph.nodes if n.name == "fc1").inputs[1]] * 16
    assert np.array_equal(w, np.round(w)) and w.min() >= 0 and w.max() <= 7


def test_unsigned_8bit_activation_is_calibrated(tmp_path):
    model = _mlp(tmp_path / "m.onnx", _pow2_4bit)
    q_act = next(n for n in model.graph.node if n.name == "q_act")
    next(a for a in q_act.attribute if a.name == "signed").i = 0
    onnx.save(model, tmp_path / "m.onnx")
    meta = load_onnx(tmp_path / "m.onnx").meta["qonnx"]
    assert "h_relu" not in meta["activations"] and "9 signed bits" in meta["calibrated"]["q_act"]


def test_trunc_and_bipolar_activations_are_refused_by_name(tmp_path):
    model = _mlp(tmp_path / "m.onnx", _pow2_4bit)
    model.graph.node.append(
        helper.make_node(
            "Trunc", ["y", "q_in.scale", "q_in.zp", "q_in.bits", "q_in.bits"], ["t"], name="tr", domain=QONNX
        )
    )
    model.graph.node.append(helper.make_node("BipolarQuant", ["t", "q_in.scale"], ["y2"], name="bq", domain=QONNX))
    onnx.save(model, tmp_path / "bad.onnx")
    with pytest.raises(FrontendError) as e:
        load_onnx(tmp_path / "bad.onnx")
    assert "'tr' (Trunc)" in str(e.value) and "'bq' (BipolarQuant)" in str(e.value)


def test_qonnx_reference_agrees(tmp_path):
    """The imported float graph computes what qonnx executes (weights are folded exactly)."""
    pytest.importorskip("qonnx")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    model = _mlp(tmp_path / "m.onnx", _pow2_4bit)
    x = np.random.default_rng(2).normal(0, 1, (8, N_IN)).astype(np.float32)
    for v in (model.graph.input[0], model.graph.output[0]):
        v.type.tensor_type.shape.dim[0].dim_value = len(x)  # qonnx executes static shapes
    ref = execute_onnx(ModelWrapper(model).transform(InferShapes()), {"x": x})["y"]
    graph = load_onnx(tmp_path / "m.onnx")
    # activation Quants are not in the float graph (lower applies them): compare on grid inputs
    x_grid = np.round(x * 16) / 16
    h = np.maximum(x_grid @ graph.params["fc1.weight"].T + graph.params["fc1.bias"], 0)
    h_q = np.clip(np.round(h * 16), -128, 127) / 16
    y = h_q @ graph.params["fc2.weight"].T + graph.params["fc2.bias"]
    assert np.allclose(y, ref, atol=1e-5)


@pytest.mark.slow
def test_simulated_bit_exact(tmp_path, data_npz):
    _mlp(tmp_path / "m.onnx", _pow2_4bit)
    out, _ = _compile(tmp_path, tmp_path / "m.onnx", data_npz)
    result = api.simulate(out, samples=16, log=lambda *_: None)
    assert result["mismatches"] == 0 and json.loads((out / "sim.json").read_text())["mismatches"] == 0
