"""The whole flow as a user runs it: compile, then simulate the Verilog bit-exact (Icarus)."""
import json

import numpy as np
import onnxruntime as ort
import pytest

from compiler import api
from compiler.exec import golden
from compiler.ir import Graph
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow


def _compile(tmp_path, model, digits_npz, recipe_text=None):
    recipe = None
    tmp_path.mkdir(parents=True, exist_ok=True)
    if recipe_text:
        recipe = tmp_path / "recipe.toml"
        recipe.write_text(recipe_text)
    out = tmp_path / "out"
    report = api.compile(model, digits_npz, out, recipe=recipe, log=lambda *_: None, progress=False,
                         synth_timeout=None)  # synthesis has its own tests (tests/compiler/report)
    return out, report


@pytest.mark.parametrize("model", ["digits_mlp.onnx", "digits_matmul_add.onnx"])
def test_compile_and_simulate_bit_exact(tmp_path, model, digits_npz, digits_data):
    out, report = _compile(tmp_path, EXAMPLES / model, digits_npz)
    for name in ["graph.json", "params.npz", "model.int.onnx", "report.json", "report.md", "rtl/mpc_top.v",
                 "rtl/files.f", "checkpoints/00-import/graph.json", "checkpoints/02-lower/graph.json"]:
        assert (out / name).exists(), name
    assert report["compiled"]["test_accuracy"] >= report["float"]["test_accuracy"] - 0.01
    assert [p["name"] for p in report["passes"]] == ["canonicalize", "lower"]
    # the integer ONNX gives identical integers on all of x_test
    graph = Graph.load(out)
    session = ort.InferenceSession(str(out / "model.int.onnx"))
    _, logits_q, classes = session.run(None, {graph.inputs[0].name: digits_data.x_test})
    ref = golden.run(graph, digits_data.x_test)
    assert np.array_equal(logits_q, ref.logits_q) and np.array_equal(classes, ref.classes)
    result = api.simulate(out, samples=24, log=lambda *_: None)
    assert result["mismatches"] == 0 and result["samples"] == 24
    assert json.loads((out / "sim.json").read_text())["mismatches"] == 0
    assert json.loads((out / "report.json").read_text())["hardware"]["cycles_per_inference"] == result["cycles_per_inference"]


def test_admm_sparse_design_is_bit_exact_and_needs_a_quarter_of_the_cycles(tmp_path, digits_npz):
    """Issue 3: at the same multiplier count the sparse design needs <= 1/4 of the dense one's
    cycles; both are bit-exact, and the cost model predicts the simulated latency exactly."""
    layers = "".join(f'[lower.layers."{n}"]\nmultipliers = 2\n' for n in ("/1/Gemm", "/3/Gemm", "/5/Gemm"))
    recipe = ('passes = ["canonicalize", "admm", "lower"]\n[admm]\nsparsity = 0.9\nbits = 4\n'
              'admm_epochs = 4\nretrain_epochs = 2\n' + layers)
    out, report = _compile(tmp_path / "sparse", EXAMPLES / "digits_mlp.onnx", digits_npz, recipe)
    assert {layer["engine"] for layer in report["layers"]} == {"sparse"}
    sparse = api.simulate(out, samples=16, log=lambda *_: None)
    dense_out, _ = _compile(tmp_path / "dense", EXAMPLES / "digits_mlp.onnx", digits_npz,
                            recipe + '[lower]\nengine = "dense"\n')
    dense = api.simulate(dense_out, samples=16, log=lambda *_: None)
    assert sparse["mismatches"] == 0 and dense["mismatches"] == 0
    assert sparse["cycles_per_inference"] * 4 <= dense["cycles_per_inference"]
    for build, sim in ((out, sparse), (dense_out, dense)):
        design = json.loads((build / "rtl" / "design.json").read_text())
        assert sim["cycles_per_inference"] == design["estimated_latency"]
        assert sim["initiation_interval"] == design["estimated_interval"]


def test_mlp_exported_by_torch_dynamo_compiles_and_simulates_bit_exact(tmp_path, digits_npz, digits_data):
    """Today's default torch exporter (dynamo: Reshape + Gemm, opset 18+), trained here."""
    import sys

    import torch
    sys.path.insert(0, str(EXAMPLES))
    from make_example import train_mlp
    data = {"x_train": digits_data.x_train, "y_train": digits_data.y_train}
    model = train_mlp(data, (40,), seed=3, epochs=40)
    torch.onnx.export(model, (torch.zeros(1, 8, 8),), str(tmp_path / "dynamo.onnx"), dynamo=True,
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    out, report = _compile(tmp_path, tmp_path / "dynamo.onnx", digits_npz)
    assert report["compiled"]["test_accuracy"] >= report["float"]["test_accuracy"] - 0.01
    assert api.simulate(out, samples=16, log=lambda *_: None)["mismatches"] == 0
