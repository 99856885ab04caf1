"""LeNet-5 on MNIST through the whole flow (issue #7's done-when), on the real data in
../shared/data: a torch-exported LeNet-5 compiles, keeps integer accuracy within 1 point of
float on its test split, and simulates with 0 mismatches on 8 samples with Icarus; with ADMM
(filter pruning on the convolutions, irregular on the dense layers) it still simulates
bit-exact and needs fewer cycles per inference."""

from pathlib import Path

import numpy as np
import pytest

from compiler import api

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (SHARED / "mnist").exists(), reason=f"no MNIST under {SHARED}")]

ADMM = """passes = ["canonicalize", "admm", "lower"]
[admm]
sparsity = 0.9
structure = "irregular"
admm_epochs = 3
retrain_epochs = 3
[admm.layers."/0/Conv"]
sparsity = 0.5
structure = "filters"
[admm.layers."/3/Conv"]
sparsity = 0.5
structure = "filters"
"""


@pytest.fixture(scope="module")
def lenet5(tmp_path_factory):
    from benchmarks.datasets import MlpRecipe, load_mnist, make_lenet5, member_split, train_onnx_model

    work = tmp_path_factory.mktemp("lenet5")
    x, y = load_mnist(SHARED)
    data = member_split(x[:, None], y, 3000, 2000, seed=0)
    return train_onnx_model(make_lenet5, data, work, "lenet5", MlpRecipe(epochs=5, seed=0))


def _compile_and_simulate(model, data, out, recipe=None):
    report = api.compile(model, data, out, recipe=recipe, log=lambda *_: None, progress=False, synth_timeout=None)
    sim = api.simulate(out, samples=8, simulator="icarus", log=lambda *_: None)
    return report, sim


def test_lenet5_compiles_keeps_accuracy_and_simulates_bit_exact(lenet5, tmp_path):
    model, data = lenet5
    report, sim = _compile_and_simulate(model, data, tmp_path / "ptq")
    float_acc, int_acc = report["float"]["test_accuracy"], report["compiled"]["test_accuracy"]
    assert float_acc > 0.9 and abs(int_acc - float_acc) <= 0.01
    assert report["compiled"]["onnx_matches_golden"]["identical"]
    assert sim["samples"] == 8 and sim["mismatches"] == 0
    assert [layer["engine"] for layer in report["layers"]][:2] == ["conv", "conv"]
    assert report["layers"][0]["p_k"] > 1  # one input channel: kernel positions in parallel instead

    recipe = tmp_path / "admm.toml"
    recipe.write_text(ADMM)
    pruned, pruned_sim = _compile_and_simulate(model, data, tmp_path / "admm", recipe)
    assert pruned_sim["mismatches"] == 0
    convs = [layer for layer in pruned["layers"] if layer["engine"] == "conv"]
    assert convs[0]["shape"][0] <= 3 and convs[1]["shape"][0] <= 8  # half the filters are gone
    assert pruned_sim["cycles_per_inference"] < sim["cycles_per_inference"]
    assert (
        np.isfinite(pruned["model"]["compression_ratio"])
        and pruned["model"]["compression_ratio"] > report["model"]["compression_ratio"]
    )


CIRCULANT = """passes = ["canonicalize", "circulant", "lower"]
[circulant]
block_size = 4
"""


def test_lenet5_with_circulant_conv2_and_dense_layers_keeps_accuracy_and_simulates_bit_exact(lenet5, tmp_path):
    """Issue #19's done-when: conv2 and the hidden dense layers block-circulant (b = 4; conv1 has
    one input channel and the classifier stays dense), within 1 point of float, bit-exact in
    ONNX and in simulation, its ROM smaller than the dense build's."""
    model, data = lenet5
    recipe = tmp_path / "circulant.toml"
    recipe.write_text(CIRCULANT)
    report, sim = _compile_and_simulate(model, data, tmp_path / "circulant", recipe)
    layers = {layer["name"]: layer for layer in report["layers"]}
    circulant = [name for name, layer in layers.items() if layer.get("block_size", 1) == 4]
    assert circulant == ["/3/Conv", "/7/Gemm", "/9/Gemm"]
    # /7/Gemm reads the flattened 16x5x5 image: block-circulant in the stream's channel-last order
    assert [layers[n]["engine"] for n in circulant] == ["conv", "circulant", "circulant"]
    float_acc, int_acc = report["float"]["test_accuracy"], report["compiled"]["test_accuracy"]
    assert float_acc - int_acc <= 0.01
    assert report["compiled"]["onnx_matches_golden"]["identical"]
    assert sim["samples"] == 8 and sim["mismatches"] == 0
    assert layers["/3/Conv"]["stored_weights"] == 16 * 8 * 25 // 4  # C_in 6 padded to 8
