"""Activations as lookup tables, end to end: small torch models with each activation exported to
ONNX, trained briefly on the digits, compiled; model.int.onnx identical to golden, the 8-bit
integer model agreeing with the float model's class, and the Verilog simulated bit-exact."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from compiler import api
from compiler.exec import golden
from compiler.exec import torch as torch_exec
from compiler.frontend.onnx import load_onnx
from compiler.ir import Graph
from tests.conftest import EXAMPLES

ACTIVATIONS = {
    "sigmoid": torch.nn.Sigmoid,
    "tanh": torch.nn.Tanh,
    "leaky_relu": lambda: torch.nn.LeakyReLU(0.1),
    "prelu": lambda: torch.nn.PReLU(1, init=0.2),
    "elu": torch.nn.ELU,
    "selu": torch.nn.SELU,
    "hard_sigmoid": torch.nn.Hardsigmoid,
    "hard_swish": torch.nn.Hardswish,
    "relu6": torch.nn.ReLU6,
    "hardtanh": torch.nn.Hardtanh,
}
AGREEMENT = 0.98


def _mlp(act) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), act(), torch.nn.Linear(32, 10))


def _cnn(act) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        act(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(36, 10),
    )


def _train(model: torch.nn.Module, data, epochs: int = 60) -> torch.nn.Module:
    torch.manual_seed(0)
    x = torch.from_numpy(data.x_train)
    if isinstance(model[0], torch.nn.Conv2d):
        x = x.unsqueeze(1)
    y = torch.from_numpy(data.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def _export(model, shape, path) -> None:
    torch.onnx.export(model, torch.zeros(1, *shape), str(path), dynamo=False, input_names=["x"], output_names=["y"])


def _build(tmp_path, name, make, data, npz, cnn=False):
    torch.manual_seed(0)
    model = _train(_cnn(make) if cnn else _mlp(make), data)
    shape = (1, 8, 8) if cnn else (8, 8)
    onnx_path = tmp_path / f"{name}.onnx"
    _export(model, shape, onnx_path)
    if cnn:  # the CNN takes [N, 1, 8, 8]: write the data in that shape
        npz = tmp_path / "digits_1x8x8.npz"
        np.savez(npz, **{k: (v[:, None] if k.startswith("x") else v) for k, v in np.load(data_path()).items()})
    out = tmp_path / "out"
    api.compile(onnx_path, npz, out, log=lambda *_: None, progress=False, synth_timeout=None)
    return onnx_path, out


def data_path():
    return EXAMPLES / "digits.npz"


def _check(onnx_path, out, x_test) -> float:
    """model.int.onnx == golden on all of x_test; returns the integer model's agreement with the
    float model's class."""
    graph = Graph.load(out)
    session = ort.InferenceSession(str(out / "model.int.onnx"))
    _, logits_q, classes = session.run(None, {graph.inputs[0].name: x_test})
    ref = golden.run(graph, x_test)
    assert np.array_equal(logits_q, ref.logits_q) and np.array_equal(classes, ref.classes)
    float_classes = np.argmax(torch_exec.predict_logits(load_onnx(onnx_path), x_test), axis=-1)
    return float(np.mean(ref.classes == float_classes))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_mlp_activation_compiles_and_agrees(name, tmp_path, digits_data, digits_npz):
    onnx_path, out = _build(tmp_path, name, ACTIVATIONS[name], digits_data, digits_npz)
    graph = Graph.load(out)
    assert any(n.op == "table" for n in graph.nodes)
    agreement = _check(onnx_path, out, digits_data.x_test)
    print(f"{name}: agreement {agreement:.4f}")
    assert agreement >= AGREEMENT, f"{name}: integer model agrees with float on {agreement:.2%}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tanh", "hard_swish"])
def test_cnn_activation_compiles_and_agrees(name, tmp_path, digits_data, digits_npz):
    onnx_path, out = _build(tmp_path, name, ACTIVATIONS[name], digits_data, digits_npz, cnn=True)
    x_test = digits_data.x_test[:, None]
    agreement = _check(onnx_path, out, x_test)
    print(f"cnn {name}: agreement {agreement:.4f}")
    assert agreement >= AGREEMENT


@pytest.mark.slow
@pytest.mark.parametrize("name,cnn", [("sigmoid", False), ("hard_swish", True)])
def test_activation_design_simulates_bit_exact(name, cnn, tmp_path, digits_data, digits_npz):
    _, out = _build(tmp_path, name, ACTIVATIONS[name], digits_data, digits_npz, cnn=cnn)
    result = api.simulate(out, samples=16, log=lambda *_: None)
    assert result["mismatches"] == 0 and result["samples"] == 16
    design = json.loads((out / "rtl" / "design.json").read_text())
    assert result["cycles_per_inference"] == design["estimated_latency"]  # the edge-by-edge model


def test_per_channel_prelu_is_refused(tmp_path, digits_data, digits_npz):
    """One table per activation: a PRelu with several different slopes is refused by name."""
    model = _mlp(lambda: torch.nn.PReLU(32))
    with torch.no_grad():
        model[2].weight.copy_(torch.linspace(0.1, 0.3, 32))
    onnx_path = tmp_path / "prelu32.onnx"
    _export(model.eval(), (8, 8), onnx_path)
    with pytest.raises(Exception, match="different slopes"):
        api.compile(onnx_path, digits_npz, tmp_path / "out", log=lambda *_: None, progress=False, synth_timeout=None)
