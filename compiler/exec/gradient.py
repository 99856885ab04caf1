"""Gradients of the loss with respect to an integer graph's stored integers (the bit-flip audit).

The forward values are the golden executor's, exactly (the graph as the hardware computes it);
each node's gradient is that of a float stand-in through the exact values (straight-through):

- dense, conv2d: the same product in float (a block-circulant conv2d too: the gradient is its
  expanded weights', which the conv engine's `stored().pullback` sums onto the vectors);
  circulant: the product of the stored spectra by
  float FFTs, times 2**-spectrum_frac (what the fixed-point FFT approximates);
- requantize: times 2**-shift, zero where the output saturated or the ReLU cut it;
- an activation table: its local slope at the input code; pools: torch's pools;
- dequantize: times 2**-frac, then the cross-entropy of the softmax against the labels.

Gradients rank candidate bit flips (first order); every flip is then judged exactly. Each
node's stand-in is its op's `stand_in`, the params it is taken for its op's `gradient_params`
(compiler/ops/): this module only walks the graph.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from compiler import ops
from compiler.exec import golden
from compiler.ir import Graph, binary_output


def weighted_params(graph: Graph) -> list[str]:
    """The params of every weighted node the gradients are taken for (weights, biases, spectra)."""
    names = []
    for node in graph.nodes:
        names += node.inputs[ops.get(node.op).gradient_params]
    return [n for n in dict.fromkeys(names) if n in graph.params]


def integer_gradients(graph: Graph, x_q: np.ndarray, y: np.ndarray, wrap: bool = True) -> tuple[float, dict]:
    """(mean cross-entropy, {param name: d loss / d param}) of an integer graph on integer inputs."""
    values: dict = {}
    golden.run_integer(graph, x_q, wrap=wrap, values=values)
    params = {n: torch.tensor(graph.params[n], dtype=torch.float64, requires_grad=True) for n in weighted_params(graph)}
    env = {graph.nodes[0].outputs[0]: torch.tensor(values[graph.nodes[0].outputs[0]], dtype=torch.float64)}
    loss = None
    for node in graph.nodes[1:]:
        op = ops.get(node.op)
        xs = [env[t] for t in ops.stream_inputs(graph, node)]
        stand_in = op.stand_in(graph, node, xs, params, values)
        if op.ends_graph:  # the output: its stand-in is the float logits
            loss = _loss(graph, stand_in, y)
            break
        exact = torch.tensor(values[node.outputs[0]], dtype=torch.float64)
        env[node.outputs[0]] = stand_in + (exact - stand_in).detach()
    if loss is None:
        raise ValueError("integer graph has no dequantize output node")
    loss.backward()
    grads = {n: (p.grad.numpy() if p.grad is not None else np.zeros(p.shape)) for n, p in params.items()}
    return float(loss.detach()), grads


def _loss(graph: Graph, logits: torch.Tensor, y: np.ndarray) -> torch.Tensor:
    target = torch.as_tensor(np.asarray(y), dtype=torch.long)
    if binary_output(graph) is not None:  # one output: [0, z] as class logits
        z = logits[:, 0]
        logits = torch.stack([torch.zeros_like(z), z], dim=1)
    return F.cross_entropy(logits, target)
