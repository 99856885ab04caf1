"""compiler/exec/gradient.py: the gradient of the loss with respect to the last layer's stored
bias is exact (that layer is linear in it): mean(softmax - one-hot) * 2**-frac."""

import numpy as np

from compiler.exec import golden
from compiler.exec.gradient import integer_gradients, weighted_params


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_the_last_bias_gradient_is_exact(digits_lowered, digits_data):
    _, graph = digits_lowered
    x_q = golden.quantize_input(graph, digits_data.x_test[:40])
    y = digits_data.y_test[:40]
    loss, grads = integer_gradients(graph, x_q, y)
    out = golden.run_integer(graph, x_q)
    p = _softmax(out.logits.astype(np.float64))
    expected_loss = -np.mean(np.log(p[np.arange(len(y)), y]))
    assert np.isclose(loss, expected_loss, rtol=1e-6)
    last = next(n for n in reversed(graph.nodes) if n.op == "dense")
    onehot = np.eye(p.shape[1])[y]
    expected = (p - onehot).mean(axis=0) * 2.0 ** -graph.nodes[-1].attrs["frac"]
    assert np.allclose(grads[last.inputs[2]], expected, rtol=1e-6, atol=1e-12)


def test_every_weighted_param_gets_a_finite_gradient(digits_lowered, digits_data):
    _, graph = digits_lowered
    x_q = golden.quantize_input(graph, digits_data.x_test[:20])
    _, grads = integer_gradients(graph, x_q, digits_data.y_test[:20])
    assert set(grads) == set(weighted_params(graph))
    for name, g in grads.items():
        assert g.shape == graph.params[name].shape and np.all(np.isfinite(g)), name
