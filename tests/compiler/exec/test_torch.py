"""compiler/exec/torch.py: the float executor's logits drop a trailing softmax, batching does not
change them, and parameters written back by name reach the forward."""

import numpy as np
import pytest
import torch

from compiler.exec.torch import GraphModule, logits_module, predict_logits, run


def test_logits_are_the_output_before_a_trailing_softmax(float_graph, digits_data):
    x = digits_data.x_test[:32]
    logits = predict_logits(float_graph, x)
    output = run(float_graph, x)
    if float_graph.nodes[-1].op in ("softmax", "log_softmax"):
        assert not np.allclose(logits, output)
    assert np.array_equal(np.argmax(logits, 1), np.argmax(output, 1))


def test_batching_does_not_change_the_logits(float_graph, digits_data):
    x = digits_data.x_test[:50]
    # equal up to float32 summation order (BLAS splits a batch its own way)
    assert np.allclose(predict_logits(float_graph, x, batch=7), predict_logits(float_graph, x), rtol=1e-5, atol=1e-5)


def test_parameters_are_keyed_by_the_graphs_names(float_graph, digits_data):
    module = logits_module(float_graph)
    name = next(n.inputs[2] for n in reversed(float_graph.nodes) if n.op == "dense" and len(n.inputs) > 2)
    with torch.no_grad():
        module.param(name).add_(1.0)  # every logit of the last layer up by one
    x = torch.from_numpy(np.asarray(digits_data.x_test[:4], dtype=np.float32))
    shifted = module(x).detach().numpy()
    assert np.allclose(shifted - predict_logits(float_graph, x.numpy()), 1.0, atol=1e-5)
    assert np.allclose(module.export_params()[name], float_graph.params[name] + 1.0)


def test_an_integer_graph_is_refused(digits_lowered):
    _, graph = digits_lowered
    with pytest.raises(ValueError, match="float graphs"):
        GraphModule(graph)
