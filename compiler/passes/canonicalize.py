"""canonicalize: drop identity/dropout nodes, fuse dense (or conv2d) + bias_add into one layer,
fold an inference-form batchnorm into the dense or conv2d layer before it.

After it, an MLP's float graph holds only dense, relu, flatten and a trailing softmax/log_softmax;
a CNN's also conv2d, maxpool2d, avgpool2d and global_avgpool. Folding is exact up to float
rounding: batchnorm is y = x * scale[c] + shift[c] (docs/ir.md), so after W x + b it is
(scale[c] * W[c]) x + (scale[c] * b[c] + shift[c]). A batchnorm that does not directly follow a
dense or conv2d layer whose output nothing else reads (one after a relu or a pooling, or first in
the graph) stays an explicit node: the torch executor runs it, and `lower` refuses it by name.
(Folding a batchnorm into the layer *after* it is not done: with zero padding it is not exact.)

A relu right after a maxpool2d moves before it (relu and max commute: max(relu(x)) =
relu(max(x)) elementwise over each window), so that a conv's activation function always
directly follows it, which is what `lower` and the conv engine's output stage expect.
"""

from __future__ import annotations

import numpy as np

from compiler.ir import Graph
from compiler.passes.base import Pass, register


@register
class Canonicalize(Pass):
    name = "canonicalize"

    def apply(self, graph: Graph, ctx) -> Graph:
        g = graph.copy()
        g = _drop_identities(g)
        g = _fuse_bias_adds(g)
        g = _fold_batchnorms(g)
        g = _relu_before_maxpool(g)
        _drop_unused_params(g)
        return g


def _rename_input(g: Graph, old: str, new: str) -> None:
    for n in g.nodes:
        n.inputs = [new if t == old else t for t in n.inputs]
    for t in g.outputs:
        if t.name == old:
            t.name = new


def _drop_identities(g: Graph) -> Graph:
    for n in [n for n in g.nodes if n.op == "identity"]:
        g.nodes.remove(n)
        _rename_input(g, n.outputs[0], n.inputs[0])
    return g


def _fuse_bias_adds(g: Graph) -> Graph:
    for add in [n for n in g.nodes if n.op == "bias_add"]:
        layer = g.producer(add.inputs[0])
        if (
            layer is None
            or layer.op not in ("dense", "conv2d")
            or len(layer.inputs) != 2
            or len(g.consumers(layer.outputs[0])) != 1
        ):
            continue  # a lone bias add stays; lower reports it if it reaches there
        if layer.op == "conv2d":  # a per-channel [C, 1, 1] (or scalar) bias becomes the conv's [C_out] bias
            n_out, b = g.params[layer.inputs[1]].shape[0], g.params[add.inputs[1]]
            if not (b.size == 1 or b.shape == (n_out, 1, 1)) or len(g.consumers(add.inputs[1])) != 1:
                continue  # e.g. a bias along W: it stays a bias_add
            g.params[add.inputs[1]] = np.broadcast_to(b.reshape(-1), (n_out,)).copy()
        layer.inputs.append(add.inputs[1])
        layer.outputs = list(add.outputs)
        g.nodes.remove(add)
    return g


def _fold_batchnorms(g: Graph) -> Graph:
    graph_outputs = {t.name for t in g.outputs}
    for bn in [n for n in g.nodes if n.op == "batchnorm"]:
        layer = g.producer(bn.inputs[0])
        if (
            layer is None
            or layer.op not in ("dense", "conv2d")
            or len(g.consumers(layer.outputs[0])) != 1
            or layer.outputs[0] in graph_outputs
        ):
            continue
        w_name = layer.inputs[1]
        w = g.params[w_name].astype(np.float64)
        scale = g.params[bn.inputs[1]].astype(np.float64).reshape(-1)
        shift = g.params[bn.inputs[2]].astype(np.float64).reshape(-1)
        if scale.size not in (1, w.shape[0]) or shift.size not in (1, w.shape[0]):
            continue
        own = [layer.inputs[2]] if len(layer.inputs) > 2 else []
        if any(len(g.consumers(p)) != 1 for p in [w_name, *own]):
            continue  # a parameter shared with another node is never rewritten in place
        bias = g.params[own[0]].astype(np.float64).reshape(-1) if own else np.zeros(1)
        scale = np.broadcast_to(scale, (w.shape[0],))
        g.params[w_name] = (w * scale.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
        b_name = own[0] if own else _fresh_param(g, f"{layer.name}.bias")
        g.params[b_name] = np.broadcast_to(bias * scale + shift, (w.shape[0],)).astype(np.float32)
        if not own:
            layer.inputs.append(b_name)
        layer.outputs = list(bn.outputs)
        layer.annotations["folded_batchnorm"] = bn.name
        g.nodes.remove(bn)
    return g


def _relu_before_maxpool(g: Graph) -> Graph:
    """maxpool -> relu becomes relu -> maxpool (same values; tensor names keep their order)."""
    for relu in [n for n in g.nodes if n.op == "relu"]:
        pool = g.producer(relu.inputs[0])
        if pool is None or pool.op != "maxpool2d" or len(g.consumers(pool.outputs[0])) != 1:
            continue
        x, pooled, out = pool.inputs[0], pool.outputs[0], relu.outputs[0]
        relu.inputs, relu.outputs = [x], [pooled]
        pool.inputs, pool.outputs = [pooled], [out]
        i, j = g.nodes.index(pool), g.nodes.index(relu)
        g.nodes[i], g.nodes[j] = relu, pool
    return g


def _fresh_param(g: Graph, name: str) -> str:
    tensors = set(g.params) | {t for n in g.nodes for t in n.inputs + n.outputs} | {t.name for t in g.inputs}
    candidate, i = name, 1
    while candidate in tensors:
        candidate, i = f"{name}.{i}", i + 1
    return candidate


def _drop_unused_params(g: Graph) -> None:
    used = {t for n in g.nodes for t in n.inputs}
    for name in [p for p in g.params if p not in used]:
        del g.params[name]
