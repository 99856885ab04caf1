"""report.json's layer entries for a build with block-circulant layers."""

import json

from compiler import api
from compiler.hw import circulant as hw_circulant
from tests.conftest import EXAMPLES


def test_circulant_layers_in_the_report(tmp_path, digits_npz, digits_data):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('passes = ["canonicalize", "circulant", "lower"]\n[circulant]\nblock_size = 8\nepochs = 2\n')
    report = api.compile(
        EXAMPLES / "digits_mlp.onnx",
        digits_npz,
        tmp_path / "out",
        recipe=recipe,
        log=lambda *_: None,
        progress=False,
        synth_timeout=None,
    )
    assert report == json.loads((tmp_path / "out" / "report.json").read_text())
    first, second, last = report["layers"]
    assert report["compiled"]["onnx_matches_golden"] == {"checked_samples": len(digits_data.x_test), "identical": True}
    for layer, (n_out, n_in) in ((first, (32, 64)), (second, (16, 32))):
        assert layer["engine"] == "circulant" and layer["block_size"] == 8 and layer["onnx_exact"] is True
        assert layer["stored_weights"] == n_out * n_in // 8
        assert (
            layer["multiplies"]
            == hw_circulant.circulant_multiplies(n_in, n_out, 8)
            < layer["dense_multiplies"]
            == n_out * n_in
        )
        assert layer["spectrum_words"] == (n_out // 8) * (n_in // 8) * 5
        assert layer["weight_bits"] == layer["spectrum_words"] * 32 + 4 * 36  # spectra + twiddles
        assert layer["rom_bits"] == layer["weight_bits"] + layer["bias_bits"]
        for split in ("calibration", "test"):
            err = layer["fft_error"][split]
            assert 0 <= err["max_abs"] <= err["bound"] and err["max_exact"] > 1000 * max(1, err["max_abs"])
        assert abs(layer["test_accuracy_exact_product"] - report["compiled"]["test_accuracy"]) < 0.02
    assert last["engine"] == "dense" and last["block_size"] == 1 and last["stored_weights"] == 160
    assert last["onnx_exact"] is True and "fft_error" not in last
    assert report["hardware"]["multipliers"] == first["multipliers"] + second["multipliers"] + last["multipliers"]
    assert first["multipliers"] % 3 == 0 and second["multipliers"] % 3 == 0  # complex multipliers, 3 real each
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"| `/1/Gemm` | 32x64 | circulant | {first['multipliers']} |" in md


def test_auto_block_sizes_and_their_trials_are_in_the_report(tmp_path, digits_npz):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        'passes = ["canonicalize", "circulant", "lower"]\n[circulant]\nblock_size = "auto"\nepochs = 2\n'
        "trial_epochs = 1\nmax_accuracy_drop = 100.0\n"
    )
    out = tmp_path / "out"
    report = api.compile(
        EXAMPLES / "digits_mlp.onnx",
        digits_npz,
        out,
        recipe=recipe,
        log=lambda *_: None,
        progress=False,
        synth_timeout=None,
    )
    circ = report["model"]["circulant"]
    trials = circ["auto"]["trials"]
    # a budget of 100 points accepts the first (largest) block size tried for each layer
    assert [(t["layer"], t["block_size"], t["accepted"]) for t in trials] == [
        ("/1/Gemm", 32, True),
        ("/3/Gemm", 16, True),
    ]
    assert circ["block_sizes"] == {"/1/Gemm": 32, "/3/Gemm": 16}
    assert [layer["block_size"] for layer in report["layers"]] == [32, 16, 1]
    md = (out / "report.md").read_text()
    assert "| `/1/Gemm` | 32 |" in md and '`block_size = "auto"`' in md and "Retraining kept epoch" in md
