"""compiler/exec/golden.py: the integer executor's entry points agree with each other and with
the node-by-node steps, and it refuses what it cannot run."""

import numpy as np
import pytest

from compiler import ops
from compiler.exec import golden
from compiler.exec.golden import wrap_signed


def test_run_is_run_integer_on_the_hosts_quantized_input(digits_lowered, digits_data):
    _, graph = digits_lowered
    x = digits_data.x_test[:64]
    a = golden.run(graph, x)
    b = golden.run_integer(graph, golden.quantize_input(graph, x))
    assert np.array_equal(a.logits_q, b.logits_q) and np.array_equal(a.classes, b.classes)
    assert np.array_equal(a.classes, np.argmax(a.logits_q, axis=1))  # ties to the lowest index
    assert np.allclose(a.logits, a.logits_q * 2.0 ** -graph.nodes[-1].attrs["frac"])


def test_recorded_values_chain_node_by_node_through_the_registry(digits_lowered, digits_data):
    _, graph = digits_lowered
    values, record = {}, {}
    x_q = golden.quantize_input(graph, digits_data.x_test[:16])
    golden.run_integer(graph, x_q, record=record, values=values)
    for node in graph.nodes[1:-1]:
        xs = [values[t] for t in ops.stream_inputs(graph, node)]
        assert np.array_equal(ops.get(node.op).golden(graph, node, xs), values[node.outputs[0]]), node.name
    layers = [n.name for n in graph.nodes if ops.get(n.op).layer]
    assert sorted(record) == sorted(layers)


def test_wrap_signed_is_what_a_register_of_that_width_holds():
    v = np.array([127, 128, -129, 255, -256, 5])
    assert wrap_signed(v, 8).tolist() == [127, -128, 127, -1, 0, 5]


def test_a_float_graph_is_refused(digits_lowered, digits_data):
    float_graph, _ = digits_lowered
    with pytest.raises(ValueError, match="integer graphs"):
        golden.run(float_graph, digits_data.x_test[:2])
