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

Gradients rank candidate bit flips (first order); every flip is then judged exactly.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from compiler.exec import golden
from compiler.ir import Graph, binary_output


def weighted_params(graph: Graph) -> list[str]:
    """The params of every weighted node the gradients are taken for (weights, biases, spectra)."""
    names = []
    for node in graph.nodes:
        if node.op in ("dense", "conv2d"):
            names += node.inputs[1:3]
        elif node.op == "circulant":
            names += node.inputs[2:5]
    return [n for n in dict.fromkeys(names) if n in graph.params]


def integer_gradients(graph: Graph, x_q: np.ndarray, y: np.ndarray, wrap: bool = True) -> tuple[float, dict]:
    """(mean cross-entropy, {param name: d loss / d param}) of an integer graph on integer inputs."""
    values: dict = {}
    golden.run_integer(graph, x_q, wrap=wrap, values=values)
    params = {n: torch.tensor(graph.params[n], dtype=torch.float64, requires_grad=True) for n in weighted_params(graph)}
    env = {graph.nodes[0].outputs[0]: torch.tensor(values[graph.nodes[0].outputs[0]], dtype=torch.float64)}
    loss = None
    for node in graph.nodes[1:]:
        x = env[node.inputs[0]]
        if node.op == "dequantize":
            loss = _loss(graph, x * 2.0 ** -node.attrs["frac"], y)
            break
        exact = torch.tensor(values[node.outputs[0]], dtype=torch.float64)
        stand_in = _STAND_IN[node.op](graph, node, x, params, values)
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


def _dense(graph, node, x, params, values):
    w = params.get(node.inputs[1])
    out = x @ (w if w is not None else torch.tensor(graph.params[node.inputs[1]], dtype=torch.float64)).T
    return out + params[node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] in params else out


def _circulant(graph, node, x, params, values):
    a = node.attrs["circulant"]
    b, p, q = a["block"], a["p"], a["q"]
    padded = F.pad(x, (0, q * b - x.shape[1]))
    x_spec = torch.fft.rfft(padded.reshape(len(x), q, b), dim=-1)  # [N, q, H]
    w_spec = torch.complex(params[node.inputs[3]], params[node.inputs[4]])  # [p, q, H]
    y = torch.fft.irfft(torch.einsum("nqk,pqk->npk", x_spec, w_spec), n=b, dim=-1)
    return y.reshape(len(x), p * b)[:, : a["n_out"]] * 2.0 ** -a["spectrum_frac"] + params[node.inputs[2]]


def _conv2d(graph, node, x, params, values):
    t, left, bottom, r = _pads(node.attrs["pads"])
    bias = params.get(node.inputs[2]) if len(node.inputs) > 2 else None
    return F.conv2d(F.pad(x, (left, r, t, bottom)), params[node.inputs[1]], bias, stride=node.attrs["stride"])


def _requantize(graph, node, x, params, values):
    a = node.attrs
    exact = values[node.outputs[0]]
    lo, hi = -(1 << (a["bits"] - 1)), (1 << (a["bits"] - 1)) - 1
    passes = (exact > (0 if a["relu"] else lo)) & (exact < hi)
    return x * 2.0 ** -a["shift"] * torch.as_tensor(passes, dtype=torch.float64)


def _table(graph, node, x, params, values):
    table = np.asarray(graph.params[node.inputs[1]], dtype=np.float64)
    slope = np.gradient(table) if len(table) > 1 else np.zeros_like(table)
    code = values[node.inputs[0]] + len(table) // 2  # the input code with its sign bit inverted
    return x * torch.as_tensor(slope[np.clip(code, 0, len(table) - 1)], dtype=torch.float64)


def _flatten(node, x):
    if node.attrs.get("order") == "hwc" and x.dim() == 4:  # channel-last, as golden.flatten
        x = x.permute(0, 2, 3, 1)
    return x.reshape(len(x), -1)


def _pads(pads) -> tuple[int, int, int, int]:
    return (pads,) * 4 if isinstance(pads, int) else tuple(int(p) for p in pads)  # type: ignore[return-value]


def _pool(node, x, reduce):
    a = node.attrs
    t, left, bottom, r = _pads(a["pads"])
    kernel = a["kernel"]
    return reduce(F.pad(x, (left, r, t, bottom)), kernel, a["stride"] or kernel)


_STAND_IN = {
    "flatten": lambda g, n, x, p, v: _flatten(n, x),
    "dense": _dense,
    "circulant": _circulant,
    "requantize": _requantize,
    "conv2d": _conv2d,
    "maxpool2d": lambda g, n, x, p, v: _pool(n, x, F.max_pool2d),
    "avgpool2d": lambda g, n, x, p, v: _pool(n, x, F.avg_pool2d),
    "global_avgpool": lambda g, n, x, p, v: x.mean(dim=(2, 3)),
    "table": _table,
}
