"""A hostile user's inputs: malformed ONNX models, data files and recipes. Each one gets exactly
one line on stderr naming the file, node or field, exit status 2, no traceback, and nothing
written (OUT not created, nothing else beside it)."""

from __future__ import annotations

import contextlib
import io
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.cli import main

ROOT = Path(__file__).resolve().parents[2]
DIGITS_MLP = ROOT / "examples" / "digits_mlp.onnx"
DIGITS_NPZ = ROOT / "examples" / "digits.npz"


# numpy's RuntimeWarnings (overflow in a cast) would print a second line: here they fail the test
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


@dataclass
class Run:
    returncode: int
    stderr: str


def run_cli(*args) -> Run:
    """The CLI in this process (fast: torch is imported once); an exception escapes and fails."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in args])
    return Run(rc, err.getvalue())


def run_cli_subprocess(*args) -> subprocess.CompletedProcess:
    """The real `python -m compiler.cli`: everything it writes to stderr, warnings included."""
    return subprocess.run(
        [sys.executable, "-m", "compiler.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def assert_one_line_error(proc, command: str, *fragments: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"mpc {command}: error:"), proc.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def compile_fails(tmp_path: Path, model, data, *fragments: str, recipe=None) -> str:
    before = tree(tmp_path)
    args = ["compile", model, "--data", data, "-o", tmp_path / "out", "--no-synth", "--quiet"]
    if recipe is not None:
        args += ["--recipe", recipe]
    line = assert_one_line_error(run_cli(*args), "compile", *fragments)
    assert not (tmp_path / "out").exists()
    assert tree(tmp_path) == before, tree(tmp_path) - before
    return line


# ---- models ------------------------------------------------------------------------------------
def mlp_model(path: Path, w: np.ndarray, b: np.ndarray, bias_as_constant: bool = False, hidden=None) -> Path:
    """Flatten -> Gemm 'fc' (weight 'W', bias 'B' or a Constant node 'bias_const') [-> Relu -> Gemm 'fc2']."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat")]
    inits = [numpy_helper.from_array(w.astype(np.float32), "W")]
    if bias_as_constant:
        value = numpy_helper.from_array(b.astype(np.float32), "Bv")
        nodes.append(helper.make_node("Constant", [], ["B"], name="bias_const", value=value))
    else:
        inits.append(numpy_helper.from_array(b.astype(np.float32), "B"))
    if hidden is None:
        nodes.append(helper.make_node("Gemm", ["f", "W", "B"], ["y"], name="fc", transB=1))
    else:
        inits.append(numpy_helper.from_array(hidden.astype(np.float32), "W2"))
        nodes += [
            helper.make_node("Gemm", ["f", "W", "B"], ["h"], name="fc", transB=1),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("Gemm", ["r", "W2"], ["y"], name="fc2", transB=1),
        ]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def weights(n_out=10, n_in=64, scale=0.1):
    return np.random.default_rng(0).normal(size=(n_out, n_in)) * scale


def test_good_model_of_this_corpus_compiles(tmp_path):
    """The corpus' base model is sound: each case below damages one thing."""
    model = mlp_model(tmp_path / "m.onnx", weights(), np.zeros(10))
    proc = run_cli("compile", model, "--data", DIGITS_NPZ, "-o", tmp_path / "out", "--no-synth", "--quiet")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "damage, fragments",
    [
        ("nan_weight", ["initializer 'W' contains NaN or Inf"]),
        ("inf_bias", ["initializer 'B' contains NaN or Inf"]),
        ("inf_constant", ["node 'bias_const' (Constant)", "NaN or Inf"]),
        ("nan_constant", ["node 'bias_const' (Constant)", "NaN or Inf"]),
        ("huge_weights", ["lower: layer 'fc'", "largest weight", "must lie in"]),
        ("tiny_weights", ["lower: layer 'fc'", "largest weight", "must lie in"]),
        ("huge_bias", ["lower: layer 'fc'", "largest bias", "48-bit accumulator"]),
        ("huge_hidden_layer", ["lower: layer 'fc'", "largest weight"]),
    ],
)
def test_bad_numbers_in_the_model(tmp_path, damage, fragments):
    w, b = weights(), np.zeros(10)
    kwargs = {}
    if damage == "nan_weight":
        w[3, 5] = np.nan
    elif damage == "inf_bias":
        b[2] = np.inf
    elif damage in ("inf_constant", "nan_constant"):
        b[2] = np.inf if damage == "inf_constant" else np.nan
        kwargs["bias_as_constant"] = True
    elif damage == "huge_weights":
        w = w * 1e37
    elif damage == "tiny_weights":
        w = w * 1e-40
    elif damage == "huge_bias":
        b = b + 1e30
    elif damage == "huge_hidden_layer":
        w, b, kwargs["hidden"] = weights(16) * 1e36, np.zeros(16), weights(10, 16)
    model = mlp_model(tmp_path / "m.onnx", w, b, **kwargs)
    line = compile_fails(tmp_path, model, DIGITS_NPZ, *fragments)
    assert "m.onnx" in line or "lower:" in line


def external_model(folder: Path, location: str, offset: int = 0, length: int | None = None) -> Path:
    """digits_mlp-shaped model whose weight 'W' lives in external data at `location`."""
    model = mlp_model(folder / "m.onnx", weights(), np.zeros(10))
    m = onnx.load(str(model))
    tensor = next(t for t in m.graph.initializer if t.name == "W")
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entries = {"location": location, "offset": str(offset)}
    if length is not None:
        entries["length"] = str(length)
    for k, v in entries.items():
        e = tensor.external_data.add()
        e.key, e.value = k, v
    onnx.save(m, str(model))
    return model


def test_external_data_inside_the_folder_is_read(tmp_path):
    w = weights().astype(np.float32)
    (tmp_path / "w.bin").write_bytes(b"\0" * 16 + w.tobytes())
    model = external_model(tmp_path, "w.bin", offset=16, length=w.nbytes)
    from compiler.frontend.onnx import load_onnx

    graph = load_onnx(model)
    np.testing.assert_array_equal(graph.params["fc.weight"], w)


@pytest.mark.parametrize(
    "case, fragments",
    [
        ("length_beyond_file", ["tensor 'W'", "lies outside 'w.bin'"]),
        ("absurd_length", ["tensor 'W'", "lies outside 'w.bin'"]),
        ("offset_beyond_file", ["tensor 'W'", "lies outside 'w.bin'"]),
        ("negative_offset", ["tensor 'W'", "lies outside 'w.bin'"]),
        ("wrong_length", ["tensor 'W'", "holds 100 bytes", "needs 2560"]),
        ("not_a_number", ["tensor 'W'", "not integers"]),
        ("missing_file", ["tensor 'W'", "'nope.bin' is missing"]),
        ("parent_folder", ["tensor 'W'", "outside the model's folder", "refusing"]),
        ("absolute_path", ["tensor 'W'", "outside the model's folder", "refusing"]),
        ("symlink_out", ["tensor 'W'", "outside the model's folder", "refusing"]),
    ],
)
def test_bad_external_data(tmp_path, case, fragments):
    folder = tmp_path / "model"
    folder.mkdir()
    w = weights().astype(np.float32)
    (folder / "w.bin").write_bytes(w.tobytes())
    secret = tmp_path / "secret.bin"
    secret.write_bytes(w.tobytes())
    location, offset, length = "w.bin", 0, w.nbytes
    if case == "length_beyond_file":
        length = w.nbytes + 1
    elif case == "absurd_length":
        length = 2**62
    elif case == "offset_beyond_file":
        offset = 10**9
    elif case == "negative_offset":
        offset = -8
    elif case == "wrong_length":
        length = 100
    elif case == "missing_file":
        location = "nope.bin"
    elif case == "parent_folder":
        location = "../secret.bin"
    elif case == "absolute_path":
        location = str(secret)
    elif case == "symlink_out":
        (folder / "link.bin").symlink_to(secret)
        location = "link.bin"
    model = external_model(folder, location, offset, length)
    if case == "not_a_number":
        m = onnx.load(str(model), load_external_data=False)
        next(t for t in m.graph.initializer if t.name == "W").external_data[1].value = "ten"
        onnx.save(m, str(model))
    compile_fails(tmp_path, model, DIGITS_NPZ, str(model), *fragments)


# ---- data --------------------------------------------------------------------------------------
def digits_arrays(n=None) -> dict:
    with np.load(DIGITS_NPZ) as d:
        return {k: d[k][:n] if n else d[k] for k in d.files}


@pytest.mark.parametrize(
    "case, fragments",
    [
        ("one_row", ["x_train has 1 row", "at least 2"]),
        ("one_test_row", ["x_test has 1 row", "at least 2"]),
        ("empty", ["x_train is empty"]),
        ("nan_in_x", ["x_train contains NaN or Inf"]),
        ("beyond_float32", ["x_test contains NaN or Inf"]),
        ("wrong_shape", ["x_train has shape (4, 3, 5)", "(N, 8, 8)"]),
        ("scalar_x", ["x_train is a scalar"]),
        ("string_x", ["x_train has dtype <U1", "numeric"]),
        ("labels_2d", ["y_train has shape (4, 1)"]),
        ("labels_out_of_range", ["y_test has labels in [0, 99]", "10 classes"]),
        ("float_labels_huge", ["y_train has labels in", "10 classes"]),
        ("float_labels_nan", ["y_train has dtype float64", "integer class labels"]),
        ("pickled_object_array", ["x_train is unreadable", "allow_pickle=False"]),
        ("pickle_file", ["not a readable .npz file", "pickled"]),
        ("truncated", ["not a readable .npz file"]),
        ("not_an_npz", ["not a readable .npz file"]),
        ("single_npy", ["a single .npy array"]),
        ("missing_arrays", ["missing array(s) y_train, x_test, y_test"]),
    ],
)
def test_bad_data(tmp_path, case, fragments):
    path = tmp_path / "d.npz"
    a = digits_arrays(4)
    if case == "one_row":
        a["x_train"], a["y_train"] = a["x_train"][:1], a["y_train"][:1]
    elif case == "one_test_row":
        a["x_test"], a["y_test"] = a["x_test"][:1], a["y_test"][:1]
    elif case == "empty":
        a["x_train"], a["y_train"] = a["x_train"][:0], a["y_train"][:0]
    elif case == "nan_in_x":
        a["x_train"][1, 2, 3] = np.nan
    elif case == "beyond_float32":
        a["x_test"] = a["x_test"].astype(np.float64)
        a["x_test"][0, 0, 0] = 1e300
    elif case == "wrong_shape":
        a["x_train"] = np.zeros((4, 3, 5), np.float32)
    elif case == "scalar_x":
        a["x_train"] = np.float32(3)
    elif case == "string_x":
        a["x_train"] = np.full((4, 8, 8), "a")
    elif case == "labels_2d":
        a["y_train"] = a["y_train"].reshape(4, 1)
    elif case == "labels_out_of_range":
        a["y_test"] = np.array([0, 1, 2, 99])
    elif case == "float_labels_huge":
        a["y_train"] = np.array([0.0, 1.0, 2.0, 1e300])
    elif case == "float_labels_nan":
        a["y_train"] = np.array([0.0, 1.0, 2.0, np.nan])
    if case == "pickled_object_array":
        a["x_train"] = np.array([object()] * 4)
        np.savez(path, **a, allow_pickle=True)
    elif case == "pickle_file":
        path.write_bytes(pickle.dumps(a))
    elif case == "truncated":
        np.savez(path, **a)
        path.write_bytes(path.read_bytes()[:300])
    elif case == "not_an_npz":
        path.write_text("x_train,y_train\n1,2\n")
    elif case == "single_npy":
        with open(path, "wb") as f:
            np.save(f, a["x_train"])
    elif case == "missing_arrays":
        np.savez(path, x_train=a["x_train"])
    else:
        np.savez(path, **a)
    compile_fails(tmp_path, DIGITS_MLP, path, str(path), *fragments)


# ---- recipes -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, fragments",
    [
        ("passes = 5\n", ["`passes` must be a non-empty list"]),
        ('passes = "lower"\n', ["`passes` must be a non-empty list"]),
        ("passes = [1, 2]\n", ["`passes` must be a non-empty list"]),
        ("lower = 3\n", ["lower: must be a table ([lower])"]),
        ("[lower]\nlayers = 4\n", ["[lower.layers] must be a table of layer tables"]),
        ('[lower.layers]\n"/1/Gemm" = 3\n', ['[lower.layers."/1/Gemm"]: must be a table of options']),
        ('[lower.layers."/1/Gemm"]\nweight_bits = "x"\n', ['[lower.layers."/1/Gemm"] weight_bits: must be an integer']),
        ('[lower.layers."/1/Gemm"]\nweight_bits = [1, {a = 2}]\n', ["weight_bits: must be an integer"]),
        ("[lower]\nweight_bits = 3.5\n", ["[lower] weight_bits: must be an integer in 2..8"]),
        ("[lower]\ncalibration_samples = true\n", ["[lower] calibration_samples"]),
        ("[plan]\nmultipliers = {a = 1}\n", ["[plan] multipliers"]),
        ('[lower]\n"a\\nb" = 1\n', ['[lower] "a\\nb": unknown option']),
        ("[lower]\nweight_bits = 99\nactivation_bits = 0\n", ["2 problems", "weight_bits", "activation_bits"]),
        ("[lower\n", ["not valid TOML"]),
        ("x = " + "[" * 2000 + "]" * 2000 + "\n", ["not valid TOML"]),
    ],
)
def test_bad_recipe(tmp_path, text, fragments):
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    compile_fails(tmp_path, DIGITS_MLP, DIGITS_NPZ, str(recipe), *fragments, recipe=recipe)


def test_recipe_that_is_not_text(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_bytes(b"\xff\xfe\x00garbage")
    compile_fails(tmp_path, DIGITS_MLP, DIGITS_NPZ, str(recipe), "not valid TOML", recipe=recipe)


@pytest.mark.parametrize("case", ["inf_constant", "huge_bias", "absurd_external_length"])
def test_real_cli_prints_one_line_and_no_warning(tmp_path, case):
    """Through `python -m compiler.cli`: nothing but the one line on stderr (no numpy warning)."""
    w, b = weights(), np.zeros(10)
    if case == "inf_constant":
        b[0] = np.inf
        model = mlp_model(tmp_path / "m.onnx", w, b, bias_as_constant=True)
    elif case == "huge_bias":
        model = mlp_model(tmp_path / "m.onnx", w, b + 1e30)
    else:
        (tmp_path / "w.bin").write_bytes(w.astype(np.float32).tobytes())
        model = external_model(tmp_path, "w.bin", length=2**62)
    before = tree(tmp_path)
    proc = run_cli_subprocess("compile", model, "--data", DIGITS_NPZ, "-o", tmp_path / "out", "--no-synth")
    assert_one_line_error(proc, "compile")
    assert tree(tmp_path) == before


def test_gemm_bias_that_does_not_broadcast(tmp_path):
    model = mlp_model(tmp_path / "m.onnx", weights(16), np.zeros(10), hidden=weights(10, 16))
    compile_fails(tmp_path, model, DIGITS_NPZ, "node 'fc' (Gemm): bias C has shape [10]; need (16,)")
