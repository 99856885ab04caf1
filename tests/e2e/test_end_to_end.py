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
    report = api.compile(
        model, digits_npz, out, recipe=recipe, log=lambda *_: None, progress=False, synth_timeout=None
    )  # synthesis has its own tests (tests/compiler/report)
    return out, report


@pytest.mark.parametrize("model", ["digits_mlp.onnx", "digits_matmul_add.onnx"])
def test_compile_and_simulate_bit_exact(tmp_path, model, digits_npz, digits_data):
    out, report = _compile(tmp_path, EXAMPLES / model, digits_npz)
    for name in [
        "graph.json",
        "params.npz",
        "model.int.onnx",
        "report.json",
        "report.md",
        "rtl/mpc_top.v",
        "rtl/files.f",
        "checkpoints/00-import/graph.json",
        "checkpoints/02-lower/graph.json",
    ]:
        assert (out / name).exists(), name
    assert report["compiled"]["test_accuracy"] >= report["float"]["test_accuracy"] - 0.01
    assert [p["name"] for p in report["passes"]] == ["canonicalize", "lower", "plan"]  # plan: issue 11
    # the integer ONNX gives identical integers on all of x_test
    graph = Graph.load(out)
    session = ort.InferenceSession(str(out / "model.int.onnx"))
    _, logits_q, classes = session.run(None, {graph.inputs[0].name: digits_data.x_test})
    ref = golden.run(graph, digits_data.x_test)
    assert np.array_equal(logits_q, ref.logits_q) and np.array_equal(classes, ref.classes)
    result = api.simulate(out, samples=24, log=lambda *_: None)
    assert result["mismatches"] == 0 and result["samples"] == 24
    assert json.loads((out / "sim.json").read_text())["mismatches"] == 0
    assert (
        json.loads((out / "report.json").read_text())["hardware"]["cycles_per_inference"]
        == result["cycles_per_inference"]
    )


def test_admm_sparse_design_is_bit_exact_and_needs_a_quarter_of_the_cycles(tmp_path, digits_npz):
    """Issue 3: at the same multiplier count the sparse design needs <= 1/4 of the dense one's
    cycles; both are bit-exact, and the cost model predicts the simulated latency exactly."""
    layers = "".join(f'[lower.layers."{n}"]\nmultipliers = 2\n' for n in ("/1/Gemm", "/3/Gemm", "/5/Gemm"))
    recipe = (
        'passes = ["canonicalize", "admm", "lower"]\n[admm]\nsparsity = 0.9\nbits = 4\n'
        "admm_epochs = 4\nretrain_epochs = 2\n" + layers
    )
    out, report = _compile(tmp_path / "sparse", EXAMPLES / "digits_mlp.onnx", digits_npz, recipe)
    assert {layer["engine"] for layer in report["layers"]} == {"sparse"}
    sparse = api.simulate(out, samples=16, log=lambda *_: None)
    dense_out, _ = _compile(
        tmp_path / "dense", EXAMPLES / "digits_mlp.onnx", digits_npz, recipe + '[lower]\nengine = "dense"\n'
    )
    dense = api.simulate(dense_out, samples=16, log=lambda *_: None)
    assert sparse["mismatches"] == 0 and dense["mismatches"] == 0
    assert sparse["cycles_per_inference"] * 4 <= dense["cycles_per_inference"]
    for build, sim in ((out, sparse), (dense_out, dense)):
        design = json.loads((build / "rtl" / "design.json").read_text())
        assert sim["cycles_per_inference"] == design["estimated_latency"]
        assert sim["initiation_interval"] == design["estimated_interval"]


def test_issue_3_recipe_as_written_meets_every_target(tmp_path, digits_npz):
    """Issue 3, done when, with its recipe verbatim on the 64-128-64-10 MLP: every layer >= 0.89
    sparse (against the original layer: neurons left dead by pruning are removed exactly),
    integer accuracy within 1.5 points of float, compression_ratio >= 40 (indices counted;
    measured 42.0), and 0 mismatches in simulation."""
    recipe = 'passes = ["canonicalize", "admm", "lower"]\n[admm]\nsparsity = 0.9\nbits = 4\nstructure = "irregular"\n'
    out, report = _compile(tmp_path, EXAMPLES / "digits_mlp_wide.onnx", digits_npz, recipe)
    assert all(layer["sparsity"] >= 0.89 for layer in report["layers"])
    assert report["compiled"]["test_accuracy"] >= report["float"]["test_accuracy"] - 0.015
    assert report["model"]["compression_ratio"] >= 40
    assert api.simulate(out, samples=16, log=lambda *_: None)["mismatches"] == 0


def test_mlp_exported_by_torch_dynamo_compiles_and_simulates_bit_exact(tmp_path, digits_npz, digits_data):
    """Today's default torch exporter (dynamo: Reshape + Gemm, opset 18+), trained here."""
    import sys

    import torch

    sys.path.insert(0, str(EXAMPLES))
    from make_example import train_mlp

    data = {"x_train": digits_data.x_train, "y_train": digits_data.y_train}
    model = train_mlp(data, (40,), seed=3, epochs=40)
    torch.onnx.export(
        model,
        (torch.zeros(1, 8, 8),),
        str(tmp_path / "dynamo.onnx"),
        dynamo=True,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
    )
    out, report = _compile(tmp_path, tmp_path / "dynamo.onnx", digits_npz)
    assert report["compiled"]["test_accuracy"] >= report["float"]["test_accuracy"] - 0.01
    assert api.simulate(out, samples=16, log=lambda *_: None)["mismatches"] == 0


def test_circulant_mlp_meets_issue_4_bit_exact_and_cycle_exact(tmp_path, digits_npz, digits_data):
    """Issue 4, done when: canonicalize, circulant (block_size = 8: every dense layer but the last),
    lower keeps integer test accuracy within 2 points of float (measured: 0.9499 -> 0.9321), stores
    n*m/8 weight values for those layers, and the Verilog simulates with 0 mismatches; the cost
    model predicts the simulated latency (370) and initiation interval exactly (the FFT engines
    planned at [plan] multipliers = 16, issue 19)."""
    recipe = 'passes = ["canonicalize", "circulant", "lower"]\n[circulant]\nblock_size = 8\n'
    out, report = _compile(tmp_path, EXAMPLES / "digits_mlp.onnx", digits_npz, recipe)
    layers = json.loads((out / "report.json").read_text())["layers"]
    assert [layer["engine"] for layer in layers] == ["circulant", "circulant", "dense"]
    for layer in layers[:2]:
        n_out, n_in = layer["shape"]
        assert layer["block_size"] == 8 and layer["stored_weights"] == n_out * n_in // 8
        assert layer["onnx_exact"] and layer["fft_error"]["test"]["max_abs"] <= layer["fft_error"]["test"]["bound"]
    assert report["compiled"]["test_accuracy"] >= report["float"]["test_accuracy"] - 0.02
    graph = Graph.load(out)
    session = ort.InferenceSession(str(out / "model.int.onnx"))
    _, logits_q, classes = session.run(None, {graph.inputs[0].name: digits_data.x_test})
    ref = golden.run(graph, digits_data.x_test)
    assert np.array_equal(logits_q, ref.logits_q) and np.array_equal(classes, ref.classes)
    result = api.simulate(out, samples=16, log=lambda *_: None)
    assert result["mismatches"] == 0 and result["samples"] == 16
    design = json.loads((out / "rtl" / "design.json").read_text())
    assert "circulant_mac.v" in design["sources"]
    assert result["cycles_per_inference"] == design["estimated_latency"] == 370
    assert result["initiation_interval"] == design["estimated_interval"] == 116


@pytest.mark.parametrize(
    "circulant, lower, cycles",
    [
        # dense -> circulant -> dense: the circulant stage loads over the dense layer's 32 outputs
        ('block_size = 1\n[circulant.layers."/3/Gemm"]\nblock_size = 8\n', "", (377, 168)),
        # b = 16 -> b = 2 -> dense: the second engine is the slowest stage only through its loading
        ('block_size = 2\n[circulant.layers."/1/Gemm"]\nblock_size = 16\n', "", (514, 168)),
        # every layer, the last one padded (10 of 12 rows) and raw; negative spectral shift
        (
            'block_size = 4\n[circulant.layers."/5/Gemm"]\nblock_size = 4\n',
            "[lower]\nspectrum_bits = 10\nfft_guard = 3\nifft_guard = 6\n",
            (607, 224),
        ),
    ],
)
def test_circulant_pipelines_are_bit_exact_and_cycle_exact(tmp_path, digits_npz, circulant, lower, cycles):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f'passes = ["canonicalize", "circulant", "lower"]\n[circulant]\nepochs = 2\n{circulant}{lower}')
    out = tmp_path / "out"
    api.compile(
        EXAMPLES / "digits_mlp.onnx",
        digits_npz,
        out,
        recipe=recipe,
        log=lambda *_: None,
        progress=False,
        synth_timeout=None,
    )
    result = api.simulate(out, samples=12, log=lambda *_: None)
    design = json.loads((out / "rtl" / "design.json").read_text())
    assert result["mismatches"] == 0
    assert (
        (result["cycles_per_inference"], result["initiation_interval"])
        == (design["estimated_latency"], design["estimated_interval"])
        == cycles
    )


def test_cli_compile_and_simulate_with_relative_paths(tmp_path, digits_npz, monkeypatch):
    """As `make demo` runs it: relative OUT, from the shell."""
    import shutil
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    shutil.copy(EXAMPLES / "digits_mlp.onnx", "m.onnx")
    shutil.copy(digits_npz, "d.npz")
    run = [sys.executable, "-m", "compiler.cli"]
    done = subprocess.run(
        run + ["compile", "m.onnx", "--data", "d.npz", "-o", "build/x", "--no-synth", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(run + ["simulate", "build/x", "--samples", "4"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "0 mismatches" in done.stdout
