"""`mpc check`: every node's fate without data or compiling; exit 2 when anything is refused,
and the same nodes named as `mpc compile` refuses."""

import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from compiler.check import check


def _mpc(*args):
    return subprocess.run([sys.executable, "-m", "compiler.cli", *map(str, args)], capture_output=True, text=True)


def _unsupported_cnn(path):
    """A depthwise conv, a branch joined by a Concat along H (only channels join), and a Resize:
    all refused by name."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "dw"),
        numpy_helper.from_array(rng.normal(size=(4, 4, 1, 1)).astype(np.float32), "pw"),
        numpy_helper.from_array(np.array([1, 1, 1, 2], np.float32), "scales"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "dw"], ["a"], name="depthwise", group=4, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["a", "pw"], ["b"], name="pointwise"),
        helper.make_node("Relu", ["a"], ["c"], name="branch_relu"),
        helper.make_node("Concat", ["b", "c"], ["d"], name="join", axis=2),
        helper.make_node("Resize", ["d", "", "scales"], ["y"], name="upsample", mode="nearest"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 12, 12])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_a_supported_model_maps_every_node_to_its_hardware(digits_model):
    verdicts = {v.name: v for v in check(digits_model)}
    assert all(v.status in ("imported", "folded", "normalized") for v in verdicts.values())
    gemms = [v for v in verdicts.values() if v.op_type == "Gemm"]
    assert gemms and all("dense engine" in v.detail for v in gemms)
    proc = _mpc("check", digits_model)
    assert proc.returncode == 0 and "every node is supported" in proc.stdout


def test_refused_nodes_are_named_as_compile_names_them(tmp_path, digits_npz):
    model = _unsupported_cnn(tmp_path / "m.onnx")
    refused = {v.name for v in check(model) if v.status == "refused"}
    assert {"depthwise", "join", "upsample"} <= refused  # a join along H is refused (Concat)
    proc = _mpc("check", model)
    assert proc.returncode == 2 and "REFUSED" in proc.stdout and "Traceback" not in proc.stderr
    compiled = _mpc("compile", model, "--data", digits_npz, "-o", tmp_path / "out")
    assert compiled.returncode == 2
    for name in refused:
        assert repr(name) in compiled.stderr


def test_an_unreadable_model_is_one_line(tmp_path):
    bad = tmp_path / "m.onnx"
    bad.write_text("not a model")
    proc = _mpc("check", bad)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not an ONNX model" in proc.stderr
