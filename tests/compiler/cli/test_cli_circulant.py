"""Bad circulant block sizes through `mpc compile`: one clear line, exit 2, no OUT."""

import pytest

from tests.compiler.cli.test_cli import assert_clean_failure, run_cli


@pytest.mark.parametrize(
    "table, message",
    [
        ("block_size = 6", "[circulant] block_size: must be a power of two, got 6"),
        (
            'block_size = 8\n[circulant.layers."/1/Gemm"]\nblock_size = 64',
            "circulant: layer '/1/Gemm' ([32, 64]): block_size 64 is larger than the layer; a block must fit in both "
            "dimensions (at most 32)",
        ),
    ],
)
def test_bad_block_size_is_one_clear_line(tmp_path, digits_model, digits_npz, table, message):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'passes = ["canonicalize", "circulant", "lower"]\n[circulant]\n{table}\n')
    proc = run_cli("compile", digits_model, "--data", digits_npz, "--recipe", recipe, "-o", tmp_path / "out")
    assert_clean_failure(proc, message)
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1, proc.stderr
    assert not (tmp_path / "out").exists()
