"""circulant: block-circulant weights (CirCNN, Ding et al., MICRO 2017), trained in place.

Each chosen dense layer [n_out, n_in] becomes a grid of b x b circulant blocks, one length-b
vector per block (kernels/circulant_mac.py has the convention), so it stores n_in*n_out/b
weights and the hardware computes each block by FFT. Sizes that are not multiples of b are
zero-padded: padded inputs are zero and padded outputs are dropped.

1. Project the trained weight onto the nearest block-circulant matrix (least squares: the
   mean of each wrapped block diagonal, over the entries inside the layer).
2. Retrain with projected gradient descent: after every optimizer step each circulant weight
   is projected again, so the structure holds exactly throughout and at the end.

The output graph keeps each weight as its (exactly circulant) dense expansion, so every
executor runs it unchanged; the node carries `annotations["block_size"]` and
`annotations["circulant"]` (grid, padding, stored weights) for lower and the backends.
"""

from __future__ import annotations

import numpy as np
import torch

from compiler.exec.train import TrainConfig, train
from compiler.ir import Graph, Node
from compiler.passes.base import Option, Pass, PassError, float_in, int_in, register
from kernels.circulant_mac import block_grid, circulant_expand, circulant_project

DENSE = 1  # block size that keeps a layer dense


def _power_of_two(v) -> str | None:
    bad = int_in(1, 4096)(v)
    return bad or (None if v & (v - 1) == 0 else f"must be a power of two, got {v!r}")


@register
class Circulant(Pass):
    name = "circulant"
    trains = True
    needs_data = True
    options = {
        "block_size": Option(
            8,
            _power_of_two,
            "block size b, a power of two (1: keep the layer dense). Pass-wide it applies to "
            "every dense layer but the last; [circulant.layers.<node>] sets any layer",
            per_layer=True,
        ),
        "epochs": Option(120, int_in(0, 10_000), "retraining epochs in the circulant structure (0: project only)"),
        "lr": Option(1e-2, float_in(1e-7, 1.0), "Adam learning rate of the retraining"),
        "batch_size": Option(64, int_in(1, 1 << 20), "minibatch size of the retraining"),
    }

    def apply(self, graph: Graph, ctx) -> Graph:
        sizes = chosen_block_sizes(graph, ctx)
        if not sizes:
            ctx.log("      circulant: every layer keeps block size 1 (dense); nothing to do")
            return graph.copy()
        g = project_graph(graph, sizes)
        opts = ctx.options(self.name)
        if opts["epochs"] > 0:
            config = TrainConfig(epochs=opts["epochs"], batch_size=opts["batch_size"], lr=opts["lr"])
            g = train(
                g,
                ctx.data.x_train,
                ctx.data.y_train,
                config,
                seed=ctx.seed,
                after_step=_projector(g, sizes),
                progress=ctx.progress,
                desc="circulant",
            )
            g = project_graph(g, sizes)  # exact in float32, whatever the optimizer's rounding
        for node in g.weighted_nodes():
            if node.name in sizes:
                _annotate(node, g.params[node.inputs[1]].shape, sizes[node.name])
                ctx.log(f"      circulant: {node.name!r} {_summary(node.annotations['circulant'])}")
        return g


def chosen_block_sizes(graph: Graph, ctx) -> dict[str, int]:
    """{dense node name: b} for every layer made circulant; raises PassError on bad sizes."""
    dense = graph.weighted_nodes()
    per_layer = ctx.recipe.get("circulant", {}).get("layers", {})
    sizes = {}
    for node in dense:
        explicit = "block_size" in per_layer.get(node.name, {})
        if node is dense[-1] and not explicit:
            continue  # the classifier layer stays dense unless asked for by name
        b = ctx.layer_options("circulant", node.name)["block_size"]
        n_out, n_in = graph.params[node.inputs[1]].shape
        _check_block_size(node, b, n_out, n_in)
        if b != DENSE:
            sizes[node.name] = b
    return sizes


def _check_block_size(node: Node, b: int, n_out: int, n_in: int) -> None:
    if isinstance(b, bool) or not isinstance(b, int) or b < 1 or b & (b - 1):
        raise PassError(f"circulant: layer {node.name!r}: block_size must be a power of two, got {b!r}")
    if b > min(n_out, n_in):
        raise PassError(
            f"circulant: layer {node.name!r} ([{n_out}, {n_in}]): block_size {b} is larger than "
            f"the layer; a block must fit in both dimensions (at most {min(n_out, n_in)})"
        )
    for key in ("admm", "weight_format"):
        if b != DENSE and key in node.annotations:
            raise PassError(
                f"circulant: layer {node.name!r} was already compressed by admm ({key}); "
                "run circulant before admm, or give the layer block_size = 1"
            )


def project_graph(graph: Graph, sizes: dict[str, int]) -> Graph:
    """A copy whose chosen weights are replaced by their nearest block-circulant matrix."""
    g = graph.copy()
    for node in g.weighted_nodes():
        if node.name in sizes:
            w = g.params[node.inputs[1]]
            vectors = circulant_project(w, sizes[node.name])
            g.params[node.inputs[1]] = circulant_expand(vectors)[: w.shape[0], : w.shape[1]].astype(w.dtype)
    return g


def _projector(graph: Graph, sizes: dict[str, int]):
    """after_step hook: the same least-squares projection in torch (scatter-mean per diagonal)."""
    plans = []
    for node in graph.weighted_nodes():
        if node.name in sizes:
            n_out, n_in = graph.params[node.inputs[1]].shape
            b = sizes[node.name]
            p, q = block_grid(n_out, n_in, b)
            diagonal = torch.from_numpy(_diagonal_ids(n_out, n_in, b).ravel())
            count = torch.bincount(diagonal, minlength=p * q * b).clamp(min=1).to(torch.float32)
            plans.append((node.inputs[1], diagonal, count))

    def project(module, step):
        for weight, diagonal, count in plans:
            w = module.param(weight)
            means = torch.zeros(len(count)).index_add_(0, diagonal, w.reshape(-1)) / count
            w.copy_(means[diagonal].reshape(w.shape))

    return project


def _diagonal_ids(n_out: int, n_in: int, b: int) -> np.ndarray:
    """id[r, c]: which vector element (block i, j, offset (r - c) mod b) weight (r, c) is."""
    p, q = block_grid(n_out, n_in, b)
    r = np.arange(n_out)[:, None]
    c = np.arange(n_in)[None, :]
    return ((r // b) * q + c // b) * b + (r - c) % b


def _annotate(node: Node, shape: tuple[int, int], b: int) -> None:
    n_out, n_in = shape
    p, q = block_grid(n_out, n_in, b)
    node.annotations["block_size"] = b
    node.annotations["circulant"] = {
        "block_size": b,
        "grid": [p, q],
        "n_in": n_in,
        "n_out": n_out,
        "n_in_padded": q * b,
        "n_out_padded": p * b,
        "padded_inputs": q * b - n_in,
        "padded_outputs": p * b - n_out,
        "stored_weights": p * q * b,
        "dense_weights": n_in * n_out,
        "compression": round(n_in * n_out / (p * q * b), 3),
    }


def _summary(info: dict) -> str:
    pad = ""
    if info["padded_inputs"] or info["padded_outputs"]:
        pad = f", zero-padded to [{info['n_out_padded']}, {info['n_in_padded']}]"
    return (
        f"[{info['n_out']}, {info['n_in']}] b={info['block_size']}: {info['grid'][0]}x{info['grid'][1]} blocks, "
        f"{info['stored_weights']} stored weights ({info['compression']}x fewer){pad}"
    )
