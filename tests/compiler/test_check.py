"""`mpc check`: every node's fate without data or compiling; exit 2 when anything is refused,
and the same nodes named as `mpc compile` refuses."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.check import check


def _mpc(*args):
    return subprocess.run([sys.executable, "-m", "compiler.cli", *map(str, args)], capture_output=True, text=True)


def _unsupported_cnn(path):
    """A dilated depthwise conv, a branch joined by a Concat along H (only channels join), and a Resize:
    all refused by name."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "dw"),
        numpy_helper.from_array(rng.normal(size=(4, 4, 1, 1)).astype(np.float32), "pw"),
        numpy_helper.from_array(np.array([1, 1, 1, 2], np.float32), "scales"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "dw"], ["a"], name="depthwise", group=4, pads=[2, 2, 2, 2], dilations=[2, 2]),
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


def _grouped_model(path, group: int, strides=(1, 1), pool=None):
    """x [1, 4, 6, 6] -> Conv(group, 3x3, pads 1) -> pool (optional)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 4 // group, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="conv", group=group, pads=[1, 1, 1, 1], strides=strides)]
    if pool:
        nodes.append(helper.make_node(pool[0], ["a"], ["y"], name="pool", **pool[1]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info("y" if pool else "a", TensorProto.FLOAT, [None] * 4)],
        [w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_depthwise_and_grouped_convs_are_named_with_their_hardware(tmp_path):
    (dw,) = check(_grouped_model(tmp_path / "dw.onnx", 4))
    assert dw.status == "imported" and dw.detail == "conv2d: conv engine (depthwise)"
    (grouped,) = check(_grouped_model(tmp_path / "g2.onnx", 2))
    assert grouped.status == "imported" and "block-diagonal" in grouped.detail


def test_unequal_strides_are_refused_by_check_as_by_the_frontend_and_a_whole_plane_pool_is_global(tmp_path):
    from compiler.frontend.onnx import FrontendError, load_onnx

    uneven = _grouped_model(tmp_path / "s.onnx", 1, strides=(1, 2))
    (conv,) = check(uneven)
    assert conv.status == "refused" and "strides [1, 2] differ per axis" in conv.detail
    with pytest.raises(FrontendError) as e:
        load_onnx(uneven)
    assert conv.detail in str(e.value)
    whole = ("AveragePool", {"kernel_shape": [6, 6], "strides": [6, 3]})  # one window: the strides change nothing
    verdicts = {v.name: v for v in check(_grouped_model(tmp_path / "p.onnx", 1, pool=whole))}
    assert verdicts["pool"].status == "imported" and verdicts["pool"].detail.startswith("global_avgpool: pool engine")
    whole_max = ("MaxPool", {"kernel_shape": [6, 6], "strides": [6, 3]})  # a maxpool2d with equal strides
    graph = load_onnx(_grouped_model(tmp_path / "mx.onnx", 1, pool=whole_max))
    assert graph.nodes[-1].op == "maxpool2d" and graph.nodes[-1].attrs["stride"] == [3, 3]
