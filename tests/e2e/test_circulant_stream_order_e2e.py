"""The digits CNN with its dense layer after the flattened [16, 2, 2] image block-circulant
(b = 4, in stream order): `mpc compile` checks model.int.onnx against golden on all of
x_test, and the Verilog (Icarus) matches golden bit for bit."""

import json

import pytest

from compiler import api
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow

RECIPE = """passes = ["canonicalize", "circulant", "lower"]
[circulant]
block_size = 1
epochs = 2
[circulant.layers."/7/Gemm"]
block_size = 4
"""


def test_a_circulant_layer_after_a_flattened_image_simulates_bit_exact(tmp_path, digits_npz):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "out"
    api.compile(
        EXAMPLES / "digits_cnn.onnx",
        digits_npz,
        out,
        recipe=recipe,
        log=lambda *_: None,
        progress=False,
        synth_timeout=None,
    )
    design = json.loads((out / "rtl" / "design.json").read_text())
    assert [e["engine"] for e in design["engines"]] == ["conv", "pool", "conv", "pool", "circulant"]
    assert design["engines"][-1]["input_chw"] is None
    result = api.simulate(out, samples=4, simulator="icarus", log=lambda *_: None)
    assert result["mismatches"] == 0 and result["error"] is None
