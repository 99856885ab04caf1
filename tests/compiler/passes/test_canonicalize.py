from compiler import passes  # noqa: F401
from compiler.exec import torch as torch_exec
from compiler.frontend.onnx import load_onnx
from compiler.passes.base import Context, get_pass


def test_matmul_add_fuses_into_dense_and_keeps_outputs(matmul_add_model, digits_data):
    graph = load_onnx(matmul_add_model)
    canon = get_pass("canonicalize").run(graph, Context())
    assert [n.op for n in canon.nodes] == ["flatten", "dense", "relu", "dense", "softmax"]
    assert all(len(n.inputs) == 3 for n in canon.weighted_nodes())  # x, weight, bias
    assert set(canon.params) == {p for n in canon.nodes for p in n.inputs if p in canon.params}
    x = digits_data.x_test[:50]
    assert abs(torch_exec.run(graph, x) - torch_exec.run(canon, x)).max() < 1e-6
    assert [n.op for n in graph.nodes].count("bias_add") == 2  # the input is untouched


def test_identity_and_dropout_are_dropped(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    g = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["a"], name="id"),
            helper.make_node("Gemm", ["a", "w"], ["b"], name="fc"),
            helper.make_node("Dropout", ["b"], ["y"], name="drop"),
        ],
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        [w],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    canon = get_pass("canonicalize").run(load_onnx(tmp_path / "m.onnx"), Context())
    assert [n.op for n in canon.nodes] == ["dense"]
    assert canon.nodes[0].inputs[0] == "x" and canon.outputs[0].name == canon.nodes[0].outputs[0]
