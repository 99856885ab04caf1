"""benchmarks/mlperf_tiny.py: what mpc refuses lands in its row as one line; the table goes on."""

from pathlib import Path

from benchmarks import mlperf_tiny
from benchmarks.mlperf_models import Built
from compiler.errors import MpcError


def missing_model(tmp_path: Path) -> Built:
    return Built("kws", {"torchscript": tmp_path / "absent.onnx"}, tmp_path / "absent.npz", 0, {}, "", 0.0)


def test_a_refused_compile_is_one_line_in_its_row(tmp_path):
    result = mlperf_tiny.compile_variant(missing_model(tmp_path), "admm", tmp_path, epochs=1)
    assert "report" not in result and "absent" in result["failed"] and "\n" not in result["failed"]
    assert (tmp_path / "kws_admm.toml").read_text().startswith('passes = ["canonicalize", "admm", "lower"]')
    assert mlperf_tiny.build_cells(result) == f"refused: {result['failed']}"


def test_a_check_that_cannot_read_the_model_says_so(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    result = mlperf_tiny.check_model(bad)
    assert result["nodes"] == 0 and mlperf_tiny.refusal_summary(result) == result["failed"]


def test_errors_that_are_not_mpc_refusals_are_named_as_bugs():
    assert mlperf_tiny.one_line(MpcError("x.onnx: refused\n  here")) == "x.onnx: refused here"
    assert mlperf_tiny.one_line(KeyError("k")).startswith("KeyError: 'k' (a bug")


def test_recipes_ask_for_4_bit_80_percent_admm_and_block_circulant():
    admm = mlperf_tiny.VARIANTS["admm"].format(epochs=3)
    assert "global_sparsity = 0.8" in admm and "bits = 4" in admm and "admm_epochs = 3" in admm
    assert "block_size = 8" in mlperf_tiny.VARIANTS["circulant"].format(epochs=3)
    assert mlperf_tiny.VARIANTS["int8"] is None


def test_recipes_are_ones_mpc_accepts():
    import tomllib

    from compiler import api

    root = Path(__file__).resolve().parents[2]
    check = api.recipe_checker(root / "examples" / "digits_mlp.onnx")
    for variant, text in mlperf_tiny.VARIANTS.items():
        if text is not None:
            check(tomllib.loads(text.format(epochs=2)), target="xc7a35t", where=variant)
