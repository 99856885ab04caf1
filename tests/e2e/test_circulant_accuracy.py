"""Issue #19's done-when on the MLP: block size 8 on the hidden layers of a 64-96-48-10 MLP
trained on the bundled digits split loses at most 0.5 point of test accuracy float -> integer
(median of three seeds) with the circulant pass's defaults, bit-exact in model.int.onnx and in
simulation. benchmarks/circulant_vs_admm.py prints the same builds beside ADMM."""

import statistics

import numpy as np
import pytest

from compiler import api
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow

RECIPE = 'passes = ["canonicalize", "circulant", "lower"]\n[circulant]\nblock_size = 8\n'


def _mlp(tmp_path, seed):
    from benchmarks.datasets import MlpRecipe, train_onnx_mlp

    with np.load(EXAMPLES / "digits.npz") as f:
        data = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    return train_onnx_mlp(data, tmp_path, f"mlp{seed}", MlpRecipe(hidden=(96, 48), epochs=60, seed=seed))


def test_b8_digits_mlp_loses_at_most_half_a_point_and_simulates_bit_exact(tmp_path):
    recipe = tmp_path / "circulant.toml"
    recipe.write_text(RECIPE)
    drops = []
    for seed in range(3):
        model, data = _mlp(tmp_path, seed)
        out = tmp_path / f"out{seed}"
        report = api.compile(
            model, data, out, recipe=recipe, seed=seed, log=lambda *_: None, progress=False, synth_timeout=None
        )
        assert [layer.get("block_size") for layer in report["layers"]] == [8, 8, 1]
        assert report["compiled"]["onnx_matches_golden"]["identical"]
        drops.append(report["float"]["test_accuracy"] - report["compiled"]["test_accuracy"])
        if seed == 0:
            sim = api.simulate(out, samples=8, log=lambda *_: None)
            assert sim["samples"] == 8 and sim["mismatches"] == 0
    assert statistics.median(drops) <= 0.005, drops
