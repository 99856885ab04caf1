"""compiler/api.py, the Python API: compile writes a whole build whose integer graph is the one its
files describe, a failed compile leaves no OUT, and simulate checks the build it is given."""

import json

import numpy as np
import pytest

from compiler import api
from compiler.errors import MpcError
from compiler.exec import golden
from compiler.ir import Graph
from tests.conftest import EXAMPLES

QUIET = {"log": lambda *_: None, "progress": False, "synth_timeout": None}
MODEL, DATA = EXAMPLES / "digits_mlp.onnx", EXAMPLES / "digits.npz"


def test_compile_writes_a_build_whose_files_agree(tmp_path):
    out = tmp_path / "out"
    report = api.compile(MODEL, DATA, out, **QUIET)
    graph = Graph.load(out)
    data = np.load(DATA)
    classes = golden.run(graph, data["x_test"]).classes
    assert report["compiled"]["test_accuracy"] == pytest.approx(float(np.mean(classes == data["y_test"])))
    assert json.loads((out / "report.json").read_text())["compiled"] == report["compiled"]
    assert (out / "model.int.onnx").is_file() and (out / "rtl" / "design.json").is_file()
    assert sorted(p.name for p in (out / "checkpoints").iterdir())[0].startswith("00-import")


def test_a_failed_compile_leaves_no_out_and_raises_one_user_error(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('passes = ["canonicalize", "lower"]\n[lower]\nweight_bits = 99\n')
    out = tmp_path / "out"
    with pytest.raises(MpcError, match="weight_bits"):
        api.compile(MODEL, DATA, out, recipe=recipe, **QUIET)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.toml"]


def test_simulate_refuses_a_folder_that_is_not_a_build(tmp_path):
    with pytest.raises(MpcError):
        api.simulate(tmp_path, samples=1, log=lambda *_: None)
