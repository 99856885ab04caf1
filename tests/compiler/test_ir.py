import numpy as np
import pytest

from compiler.ir import Graph, IRError, Node, TensorSpec


def test_integer_graph_round_trips_losslessly(tmp_path, digits_lowered):
    _, lowered = digits_lowered
    lowered.save(tmp_path)
    again = Graph.load(tmp_path)
    assert [n.__dict__ for n in again.nodes] == [n.__dict__ for n in lowered.nodes]
    assert again.meta == lowered.meta
    assert again.inputs == lowered.inputs and again.outputs == lowered.outputs
    assert list(again.params) == list(lowered.params)
    for k, v in lowered.params.items():
        assert again.params[k].dtype == v.dtype and np.array_equal(again.params[k], v)


def test_validate_rejects_use_before_definition():
    g = Graph([TensorSpec("x", (4,))], [TensorSpec("y", (2,))], [Node("relu", "r", ["z"], ["y"])])
    with pytest.raises(IRError, match="used before it is defined"):
        g.validate()


def test_validate_rejects_unknown_op():
    g = Graph([TensorSpec("x", (4,))], [TensorSpec("y", (4,))], [Node("conv7d", "c", ["x"], ["y"])])
    with pytest.raises(IRError, match="unknown op"):
        g.validate()


def test_load_reports_a_broken_checkpoint(tmp_path):
    (tmp_path / "graph.json").write_text("{not json")
    with pytest.raises(IRError, match="not a readable mpc graph checkpoint"):
        Graph.load(tmp_path)


def test_copy_is_deep(digits_lowered):
    _, lowered = digits_lowered
    c = lowered.copy()
    c.nodes[2].attrs["acc_bits"] = 99
    next(iter(c.params.values()))[...] = 0
    assert lowered.nodes[2].attrs["acc_bits"] != 99
    assert np.any(next(iter(lowered.params.values())) != 0)
