"""Bad input gets one clear line and exit 2: no traceback, no half-written OUT."""

import subprocess
import sys

import numpy as np
import pytest

from compiler.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "compiler.cli", *map(str, args)], capture_output=True, text=True)


def assert_clean_failure(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert lines[0].startswith("mpc compile: error:") or lines[0].startswith("mpc simulate: error:")
    for f in fragments:
        assert f in proc.stderr


def test_help_explains_the_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "compile" in out and "simulate" in out and "bit for bit" in out


def test_not_an_onnx_file(tmp_path, digits_npz):
    bad = tmp_path / "model.onnx"
    bad.write_text("hello")
    proc = run_cli("compile", bad, "--data", digits_npz, "-o", tmp_path / "out")
    assert_clean_failure(proc, "not an ONNX model", str(bad))
    assert not (tmp_path / "out").exists()


def test_wrong_data_shape_and_missing_arrays(tmp_path, digits_model):
    np.savez(
        tmp_path / "bad_shape.npz",
        x_train=np.zeros((5, 64), np.float32),
        y_train=np.zeros(5, np.int64),
        x_test=np.zeros((5, 64), np.float32),
        y_test=np.zeros(5, np.int64),
    )
    proc = run_cli("compile", digits_model, "--data", tmp_path / "bad_shape.npz", "-o", tmp_path / "out")
    assert_clean_failure(proc, "x_train has shape (5, 64); the model expects (N, 8, 8)")
    np.savez(tmp_path / "missing.npz", x_train=np.zeros((5, 8, 8), np.float32))
    proc = run_cli("compile", digits_model, "--data", tmp_path / "missing.npz", "-o", tmp_path / "out")
    assert_clean_failure(proc, "missing array(s) y_train, x_test, y_test")
    assert not (tmp_path / "out").exists()


def test_labels_out_of_range(tmp_path, digits_model):
    x = np.zeros((4, 8, 8), np.float32)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.array([0, 1, 2, 11]), x_test=x, y_test=np.zeros(4, np.int64))
    assert_clean_failure(
        run_cli("compile", digits_model, "--data", tmp_path / "d.npz", "-o", tmp_path / "o"),
        "y_train has labels in [0, 11]; the model has 10 classes",
    )


def test_existing_out_is_refused_without_force(tmp_path, digits_model, digits_npz):
    (tmp_path / "out").mkdir()
    proc = run_cli("compile", digits_model, "--data", digits_npz, "-o", tmp_path / "out")
    assert_clean_failure(proc, "already exists (use --force")


def test_bad_recipe_and_data_less_flow(tmp_path, digits_model, digits_npz):
    recipe = tmp_path / "r.toml"
    recipe.write_text('passes = ["canonicalize", "admm", "lower"]\n[admm]\nbits = 12\n')
    assert_clean_failure(
        run_cli("compile", digits_model, "--data", digits_npz, "--recipe", recipe, "-o", tmp_path / "o"),
        "[admm] bits: must be an integer in 2..8",
    )
    recipe.write_text('[admm.layers."nope"]\nsparsity = 0.5\n')
    assert_clean_failure(
        run_cli("compile", digits_model, "--data", digits_npz, "--recipe", recipe, "-o", tmp_path / "o"),
        "no layer of that name",
    )
    assert_clean_failure(run_cli("compile", digits_model, "-o", tmp_path / "o"), "need training data: give --data")
    assert not (tmp_path / "o").exists()


def test_simulate_on_a_folder_that_is_not_a_build(tmp_path):
    assert_clean_failure(run_cli("simulate", tmp_path), "not a complete mpc build")


def test_a_recipe_table_for_a_pass_the_flow_does_not_run_is_refused(tmp_path, digits_model, digits_npz):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[admm]\nsparsity = 0.9\n")  # no `passes`: the default flow has no admm
    proc = run_cli("compile", digits_model, "--data", digits_npz, "--recipe", recipe, "-o", tmp_path / "out")
    assert_clean_failure(
        proc, "[admm] given, but the flow ['canonicalize', 'lower', 'plan'] does not run it", "add 'admm' to `passes`"
    )
    assert not (tmp_path / "out").exists()
    recipe.write_text('[lower]\nmultipliers = 8\n[plan]\nengine = "dense"\n')  # read by plan: fine
    ok = run_cli(
        "compile",
        digits_model,
        "--data",
        digits_npz,
        "--recipe",
        recipe,
        "-o",
        tmp_path / "out",
        "--no-synth",
        "--quiet",
    )
    assert ok.returncode == 0, ok.stderr
