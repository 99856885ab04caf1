"""canonicalize: fuse dense + bias_add into one dense, drop identity/dropout nodes.

After it, a float graph holds only dense, relu, flatten and a trailing softmax/log_softmax.
(BatchNorm folding joins here when convolutions arrive.)
"""
from __future__ import annotations

from compiler.ir import Graph, Node
from compiler.passes.base import Pass, register


@register
class Canonicalize(Pass):
    name = "canonicalize"

    def run(self, graph: Graph, ctx) -> Graph:
        g = graph.copy()
        g = _drop_identities(g)
        g = _fuse_bias_adds(g)
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
        dense = g.producer(add.inputs[0])
        if dense is None or dense.op != "dense" or len(dense.inputs) != 2 or len(g.consumers(dense.outputs[0])) != 1:
            continue  # a lone bias add stays; lower reports it if it reaches there
        dense.inputs.append(add.inputs[1])
        dense.outputs = list(add.outputs)
        g.nodes.remove(add)
    return g


def _drop_unused_params(g: Graph) -> None:
    used = {t for n in g.nodes for t in n.inputs}
    for name in [p for p in g.params if p not in used]:
        del g.params[name]
