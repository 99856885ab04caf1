"""circulant: block-circulant weights (CirCNN, Ding et al., MICRO 2017), trained in place.

Each chosen dense layer [n_out, n_in] becomes a grid of b x b circulant blocks, one length-b
vector per block (kernels/circulant_mac.py has the convention), so it stores n_in*n_out/b
weights and the hardware computes each block by FFT. Sizes that are not multiples of b are
zero-padded: padded inputs are zero and padded outputs dropped. A conv layer (groups = 1,
weight [C_out, C_in, kh, kw]) becomes block-circulant in its channels: for every kernel
position (ky, kx), W[:, :, ky, kx] is such a matrix [C_out, C_in] (CirCNN's conv layers). A
dense layer reading a flattened multi-channel image is made block-circulant in the order the
hardware streams that image (channel-last, compiler/hw/dense.py stream_weight_matrix), so the
FFT engine can take it; lower then flattens channel-last for it (docs/fixed-point.md "flatten").
`prune_blocks` also zeroes the weakest share of each layer's blocks and holds them at zero.

1. Project the trained weight onto the nearest block-circulant matrix (least squares: the
   mean of each wrapped block diagonal, over the entries inside the layer; per kernel position
   for a conv).
2. Retrain with projected gradient descent: after every optimizer step each circulant weight
   is projected again, so the structure holds exactly throughout and at the end. By default
   the retraining distills the input model (its logits on x_train, temperature T, mixed with
   the labels), follows a cosine learning-rate decay, holds out a stratified slice of x_train
   (never trained on) and keeps the epoch that scores best on it (compiler/exec/train.py).

`block_size = "auto"` chooses per layer: layers by decreasing weight count, each given the
largest block size whose retraining (`trial_epochs`) keeps the held-out accuracy within
`max_accuracy_drop` points of the input model's, with the choices before it fixed;
graph.meta["circulant"]["auto"]["trials"] records every trial.

The output graph keeps each weight as its (exactly circulant) dense expansion, so every
executor runs it unchanged; the node carries `annotations["block_size"]` and
`annotations["circulant"]` (grid, padding, stored weights; `kernel` [kh, kw] for a conv) for
lower and the backends; graph.meta["circulant"] has the block sizes and what the held-out slice
said.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from compiler.exec.train import SCHEDULES, TrainConfig, fit, holdout_split, teacher_logits
from compiler.ir import Graph, Node
from compiler.passes.base import Option, Pass, PassError, float_in, int_in, one_of, register
from kernels.circulant_conv import conv_circulant_expand, conv_circulant_project
from kernels.circulant_mac import block_grid, circulant_expand, circulant_project
from kernels.stream_order import stream_order, stream_reorders, stream_weight_matrix, unstream

DENSE = 1  # block size that keeps a layer dense
AUTO = "auto"  # block size chosen per layer by the held-out accuracy


def _power_of_two(v) -> str | None:
    bad = int_in(1, 4096)(v)
    return bad or (None if v & (v - 1) == 0 else f"must be a power of two, got {v!r}")


def _block_size(v) -> str | None:
    if isinstance(v, str):
        return None if v == AUTO else f'must be a power of two or "auto", got {v!r}'
    return _power_of_two(v)


@register
class Circulant(Pass):
    name = "circulant"
    trains = True
    needs_data = True
    options = {
        "block_size": Option(
            8,
            _block_size,
            'block size b, a power of two (1: keep the layer dense), or "auto" (per layer, the '
            "largest b within max_accuracy_drop). Pass-wide it applies to every dense layer but the "
            "last and to every conv (groups = 1) whose channels fit b; [circulant.layers.<node>] "
            "sets any layer",
            per_layer=True,
        ),
        "epochs": Option(120, int_in(0, 10_000), "retraining epochs in the circulant structure (0: project only)"),
        "lr": Option(2e-2, float_in(1e-7, 1.0), "Adam learning rate of the retraining (its peak with a schedule)"),
        "batch_size": Option(64, int_in(1, 1 << 20), "minibatch size of the retraining"),
        "schedule": Option(
            "cosine",
            one_of(*SCHEDULES),
            'learning rate over the retraining: "constant", "cosine" (decay to 0) or "onecycle" '
            "(warm-up over 30% of the steps, then cosine decay)",
        ),
        "distill": Option(
            0.9,
            float_in(0.0, 1.0),
            "weight alpha of knowledge distillation from the input model: loss = alpha * T^2 * "
            "KL(teacher || student at temperature T) + (1 - alpha) * cross-entropy (0: labels only)",
        ),
        "temperature": Option(4.0, float_in(0.1, 100.0), "distillation temperature T (softens both logits)"),
        "validation_fraction": Option(
            0.1,
            float_in(0.0, 0.5),
            "share of x_train held out (stratified by class, seeded, never trained on) to keep the "
            'retraining\'s best epoch and to judge block_size = "auto" (0: train on all, keep the last)',
        ),
        "patience": Option(
            0,
            int_in(0, 10_000),
            "stop the retraining after this many epochs without a better held-out score (0: run every epoch)",
        ),
        "max_accuracy_drop": Option(
            0.5,
            float_in(0.0, 100.0),
            'block_size = "auto": the held-out accuracy a layer\'s block size may cost, in points '
            "(percent) below the input model's",
        ),
        "prune_blocks": Option(
            0.0,
            float_in(0.0, 0.95),
            "share of a layer's b x b blocks pruned whole (the smallest by the norm of their weights, "
            "chosen after the projection and held at zero through the retraining): circulant and "
            "structured pruning together",
            per_layer=True,
        ),
        "trial_epochs": Option(
            40,
            int_in(0, 10_000),
            'block_size = "auto": retraining epochs of each trial block size (the final retraining runs `epochs`)',
        ),
    }

    def apply(self, graph: Graph, ctx) -> Graph:
        sizes = chosen_block_sizes(graph, ctx)
        if not sizes:
            ctx.log("      circulant: every layer keeps block size 1 (dense); nothing to do")
            return graph.copy()
        opts = ctx.options(self.name)
        config = TrainConfig(
            epochs=opts["epochs"],
            batch_size=opts["batch_size"],
            lr=opts["lr"],
            schedule=opts["schedule"],
            distill=opts["distill"],
            temperature=opts["temperature"],
            validation_fraction=opts["validation_fraction"],
            patience=opts["patience"],
        )
        auto = [name for name, b in sizes.items() if b == AUTO]
        if auto and config.validation_fraction == 0:
            raise PassError(
                f'circulant: block_size = "auto" (layer {auto[0]!r}) is judged on a held-out slice; '
                "give validation_fraction > 0"
            )
        teacher = None
        if config.distill > 0 and (config.epochs > 0 or (auto and opts["trial_epochs"] > 0)):
            teacher = teacher_logits(graph, ctx.data.x_train)
        record: dict = {}
        fixed = {name: b for name, b in sizes.items() if isinstance(b, int)}
        if auto:
            fixed, record["auto"] = choose_auto(graph, ctx, fixed, auto, config, opts, teacher)
        if not fixed:
            ctx.log("      circulant: every layer keeps block size 1 (dense); nothing to do")
            g = graph.copy()
            g.meta["circulant"] = {"block_sizes": {}} | record
            return g
        prune = {name: ctx.layer_options(self.name, name)["prune_blocks"] for name in fixed}
        g, training = retrain(graph, ctx, fixed, config, teacher, "circulant", prune)
        if "heldout_accuracy" in training:
            training["heldout_accuracy"] = round(training["heldout_accuracy"], 6)
        g.meta["circulant"] = {"block_sizes": dict(fixed), "training": training} | record
        images = stream_images(g)
        for node in g.weighted_nodes(include_conv=True):
            if node.name in fixed:
                annotate(node, g.params[node.inputs[1]].shape, fixed[node.name])
                chw = images.get(node.name)
                if chw is not None:  # block-circulant in the order the hardware streams its inputs
                    node.annotations["circulant"]["input_chw"] = chw
                if prune[node.name] > 0:
                    node.annotations["circulant"]["pruned_blocks"] = zero_blocks(
                        stream_weight_matrix(g.params[node.inputs[1]], chw), fixed[node.name]
                    )
                ctx.log(f"      circulant: {node.name!r} {_summary(node.annotations['circulant'])}")
        if training.get("heldout_accuracy") is not None:
            ctx.log(
                f"      circulant: kept epoch {training['best_epoch']} of {training['epochs_run']}: held-out "
                f"accuracy {training['heldout_accuracy']:.4f} on {training['heldout_rows']} rows"
            )
        return g


def retrain(
    graph: Graph, ctx, sizes: dict[str, int], config: TrainConfig, teacher, desc: str, prune: dict | None = None
) -> tuple[Graph, dict]:
    """Project `sizes`' layers, prune the `prune` share of each one's blocks, retrain in the
    structure, project again (exact in float32, whatever the optimizer's rounding); return the
    graph and what the held-out slice said."""
    g = project_graph(graph, sizes)
    masks = block_masks(g, sizes, prune or {})
    g = apply_masks(g, masks)
    if config.epochs == 0:
        return g, {"epochs_run": 0}
    projector = _projector(g, sizes)

    def after_step(module, step):
        projector(module, step)
        for weight, mask in masks.items():
            module.param(weight).mul_(torch.from_numpy(mask))

    result = fit(
        g,
        ctx.data.x_train,
        ctx.data.y_train,
        config,
        seed=ctx.seed,
        after_step=after_step,
        progress=ctx.progress,
        desc=desc,
        teacher=teacher,
    )
    training: dict = {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run}
    if result.heldout_accuracy is not None:
        training |= {"heldout_accuracy": result.heldout_accuracy, "heldout_rows": result.heldout_rows}
    return apply_masks(project_graph(result.graph, sizes), masks), training


def block_masks(graph: Graph, sizes: dict[str, int], prune: dict[str, float]) -> dict[str, np.ndarray]:
    """{weight name: 0/1 mask} keeping all but the `prune[layer]` share of a layer's blocks (of its
    padded p x q grid, rounded to the nearest count): those with the smallest sum of squared
    weights. A conv's block (i, j) spans its kernel positions; a dense layer that reads a
    flattened image has its blocks in stream order (stream_images)."""
    masks = {}
    images = stream_images(graph) if any(v > 0 for v in prune.values()) else {}
    for node in graph.weighted_nodes(include_conv=True):
        share = prune.get(node.name, 0.0)
        if node.name not in sizes or share <= 0:
            continue
        w = graph.params[node.inputs[1]]
        block = _graph_order(_block_ids(w.shape, sizes[node.name]), images.get(node.name))
        p, q = block_grid(*_matrix_shape(w.shape), sizes[node.name])
        energy = np.bincount(block.ravel(), weights=np.square(w, dtype=np.float64).ravel(), minlength=p * q)
        pruned = np.argsort(energy, kind="stable")[: round(share * p * q)]
        masks[node.inputs[1]] = (~np.isin(block, pruned)).astype(w.dtype)
    return masks


def apply_masks(graph: Graph, masks: dict[str, np.ndarray]) -> Graph:
    for weight, mask in masks.items():
        graph.params[weight] = graph.params[weight] * mask
    return graph


def zero_blocks(w: np.ndarray, b: int) -> int:
    """How many of the layer's b x b blocks (of its padded grid) hold only zeros."""
    p, q = block_grid(*_matrix_shape(w.shape), b)
    nonzero = np.bincount(_block_ids(w.shape, b).ravel(), weights=(w != 0).ravel(), minlength=p * q)
    return int(np.count_nonzero(nonzero == 0))


def _block_ids(shape: tuple[int, ...], b: int) -> np.ndarray:
    """id[r, c(, ky, kx)]: the block (i * q + j) weight (r, c) belongs to."""
    n_out, n_in = _matrix_shape(shape)
    q = block_grid(n_out, n_in, b)[1]
    ids = (np.arange(n_out)[:, None] // b) * q + np.arange(n_in)[None, :] // b
    return np.broadcast_to(ids.reshape(ids.shape + (1,) * (len(shape) - 2)), shape)


def choose_auto(
    graph: Graph, ctx, fixed: dict[str, int], auto: list[str], config: TrainConfig, opts: dict, teacher
) -> tuple[dict[str, int], dict]:
    """Greedy per-layer block sizes: the "auto" layers by decreasing weight count, each given the
    largest power of two (fitting it) whose trial retraining keeps the held-out accuracy within
    max_accuracy_drop points of the input model's, the earlier choices (and explicit sizes)
    fixed and the later auto layers dense; b = 1 if none does. Returns the sizes of every
    circulant layer and the record of the trials."""
    x, y = ctx.data.x_train, ctx.data.y_train
    heldout = holdout_split(y, config.validation_fraction, ctx.seed)[1]
    reference = float((teacher_logits(graph, x[heldout]).argmax(1) == y[heldout]).mean())
    budget = opts["max_accuracy_drop"]
    trial_config = replace(config, epochs=opts["trial_epochs"])
    nodes = {n.name: n for n in graph.weighted_nodes(include_conv=True)}
    order = sorted(auto, key=lambda name: -graph.params[nodes[name].inputs[1]].size)  # stable: graph order on ties
    chosen = dict(fixed)
    trials = []
    for name in order:
        n_out, n_in = _matrix_shape(graph.params[nodes[name].inputs[1]].shape)
        b = 1 << (min(n_out, n_in).bit_length() - 1)  # the largest power of two that fits
        while b > DENSE:
            trial = chosen | {name: b}
            _, training = retrain(graph, ctx, trial, trial_config, teacher, f"circulant auto {name} b={b}")
            if "heldout_accuracy" in training:
                acc = training["heldout_accuracy"]
            else:  # trial_epochs = 0: the projection alone
                acc = float((teacher_logits(project_graph(graph, trial), x[heldout]).argmax(1) == y[heldout]).mean())
            accepted = 100 * (reference - acc) <= budget + 1e-9  # both exact fractions of the same rows
            trials.append({"layer": name, "block_size": b, "heldout_accuracy": round(acc, 6), "accepted": accepted})
            ctx.log(
                f"      circulant auto: {name!r} b={b}: held-out accuracy {acc:.4f} (input model {reference:.4f}), "
                f"{'accepted' if accepted else 'over budget'}"
            )
            if accepted:
                chosen[name] = b
                break
            b //= 2
        if b == DENSE:
            ctx.log(f"      circulant auto: {name!r} stays dense (no block size within {budget} points)")
    record = {
        "max_accuracy_drop": budget,
        "reference_accuracy": round(reference, 6),
        "heldout_rows": len(heldout),
        "trial_epochs": opts["trial_epochs"],
        "trials": trials,
    }
    return chosen, record


def chosen_block_sizes(graph: Graph, ctx) -> dict[str, int | str]:
    """{layer name: b, or "auto"} for every layer made circulant (dense layers and groups = 1
    convs); raises PassError on bad sizes, naming the layer."""
    dense = graph.weighted_nodes()
    sizes: dict[str, int | str] = {}
    for node in graph.weighted_nodes(include_conv=True):
        explicit = "block_size" in ctx.layer_given("circulant", node.name)
        b = ctx.layer_options("circulant", node.name)["block_size"]
        n_out, n_in = _matrix_shape(graph.params[node.inputs[1]].shape)
        if node.op == "conv2d":
            groups = node.attrs.get("group", node.attrs.get("groups", 1))  # the IR's attr is `group`
            if b != DENSE and groups != 1:
                if explicit:
                    raise PassError(
                        f"circulant: layer {node.name!r} is a grouped convolution (groups={groups}); only "
                        "groups = 1 convs can be block-circulant: give it block_size = 1"
                    )
                ctx.log(f"      circulant: {node.name!r} stays dense (grouped convolution, groups={groups})")
                continue
            smallest = b if isinstance(b, int) else 2  # "auto" tries 2 first
            if not explicit and b != DENSE and min(n_out, n_in) < smallest:
                ctx.log(
                    f"      circulant: {node.name!r} ([C_out, C_in] = [{n_out}, {n_in}]) stays dense: "
                    f"block size {b} does not fit its channels"
                )
                continue
        elif node is dense[-1] and not explicit:
            continue  # the classifier layer stays dense unless asked for by name
        _check_block_size(node, b, n_out, n_in)
        if b != DENSE:
            sizes[node.name] = b
    return sizes


def _matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """(n_out, n_in) of a dense weight, (C_out, C_in) of a conv weight [C_out, C_in, kh, kw]."""
    return int(shape[0]), int(shape[1])


def _check_block_size(node: Node, b, n_out: int, n_in: int) -> None:
    dims = "[C_out, C_in] = " if node.op == "conv2d" else ""
    if b != AUTO:
        if isinstance(b, bool) or not isinstance(b, int) or b < 1 or b & (b - 1):
            raise PassError(f"circulant: layer {node.name!r}: block_size must be a power of two, got {b!r}")
        if b > min(n_out, n_in):
            raise PassError(
                f"circulant: layer {node.name!r} ({dims}[{n_out}, {n_in}]): block_size {b} is larger than "
                f"the layer; a block must fit in both dimensions (at most {min(n_out, n_in)})"
            )
    for key in ("admm", "weight_format"):
        if b != DENSE and key in node.annotations:
            raise PassError(
                f"circulant: layer {node.name!r} was already compressed by admm ({key}); "
                "run circulant before admm, or give the layer block_size = 1"
            )


def project_weight(w: np.ndarray, b: int) -> np.ndarray:
    """The nearest (least squares) block-circulant weight of the same shape and dtype: a dense
    [n_out, n_in] matrix, or a conv [C_out, C_in, kh, kw] projected per kernel position (the
    positions share no weight, so the least-squares problem splits per position)."""
    if w.ndim == 2:
        return circulant_expand(circulant_project(w, b))[: w.shape[0], : w.shape[1]].astype(w.dtype)
    return conv_circulant_expand(conv_circulant_project(w, b), *w.shape[:2]).astype(w.dtype)


def project_graph(graph: Graph, sizes: dict[str, int]) -> Graph:
    """A copy whose chosen weights are replaced by their nearest block-circulant matrix (in
    stream order for a dense layer that reads a flattened image: stream_images)."""
    g = graph.copy()
    images = stream_images(g) if sizes else {}
    for node in g.weighted_nodes(include_conv=True):
        if node.name in sizes:
            w, chw = g.params[node.inputs[1]], images.get(node.name)
            if chw is None:
                g.params[node.inputs[1]] = project_weight(w, sizes[node.name])
            else:  # project the stream-order matrix, store it back in the graph's column order
                w_s = project_weight(stream_weight_matrix(w, chw), sizes[node.name])
                g.params[node.inputs[1]] = unstream(w_s, stream_order(w.shape, chw))
    return g


def stream_images(graph: Graph) -> dict[str, list[int]]:
    """{dense layer: [C, H, W]} for each dense layer of a float graph that reads a flattened
    image the hardware streams in another order than the graph's row-major C*H*W (channel-last,
    compiler.hw.dense.stream_reorders): its block-circulant structure is defined on its
    stream-order matrix stream_weight_matrix(W, [C, H, W]), on which `lower` builds its FFT
    layer (the same rule as lower's: a flatten of a [C, H, W] tensor, the next dense layer)."""
    if not any(n.op == "flatten" for n in graph.nodes):
        return {}
    from compiler.exec import torch as torch_exec  # the tensor shapes, from one zero row

    shapes = torch_exec.intermediates(graph, np.zeros((1, *graph.inputs[0].shape), np.float32))
    images: dict[str, list[int]] = {}
    chw_of: dict[str, list[int] | None] = {}  # tensor -> the [C, H, W] it is a flattened image of
    for node in graph.nodes:  # per tensor, as lower keeps it: right on a branching graph too
        chw = chw_of.get(node.inputs[0]) if node.inputs else None
        if node.op == "flatten":
            shape = [int(d) for d in shapes[node.inputs[0]].shape[1:]]
            chw = shape if len(shape) == 3 else None
        elif node.op == "dense":
            if chw is not None and stream_reorders(chw):
                images[node.name] = chw
            chw = None
        chw_of[node.outputs[0]] = chw
    return images


def _graph_order(ids: np.ndarray, chw: list[int] | None) -> np.ndarray:
    """Ids computed on a layer's stream-order matrix, moved to the graph's column order."""
    return ids if chw is None else unstream(ids, stream_order(ids.shape, chw))


def _projector(graph: Graph, sizes: dict[str, int]):
    """after_step hook: the same least-squares projection in torch (scatter-mean per diagonal;
    a conv's kernel positions each have their own diagonals)."""
    plans = []
    images = stream_images(graph) if sizes else {}
    for node in graph.weighted_nodes(include_conv=True):
        if node.name in sizes:
            shape = graph.params[node.inputs[1]].shape
            n_out, n_in = _matrix_shape(shape)
            ids = _graph_order(_diagonal_ids(n_out, n_in, sizes[node.name]), images.get(node.name))
            if len(shape) == 4:
                positions = shape[2] * shape[3]
                ids = ids[:, :, None, None] * positions + np.arange(positions).reshape(1, 1, *shape[2:])
            diagonal = torch.from_numpy(ids.ravel())
            count = torch.bincount(diagonal).clamp(min=1).to(torch.float32)
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


def annotate(node: Node, shape: tuple[int, ...], b: int) -> None:
    """The node's `block_size` and `circulant` annotations, as lower and the backends read them."""
    n_out, n_in = _matrix_shape(shape)
    positions = int(np.prod(shape[2:], dtype=np.int64))  # kh * kw for a conv, 1 for dense
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
        "stored_weights": p * q * b * positions,
        "dense_weights": n_in * n_out * positions,
        "compression": round(n_in * n_out / (p * q * b), 3),
    }
    if len(shape) == 4:
        node.annotations["circulant"]["kernel"] = [int(shape[2]), int(shape[3])]


def _summary(info: dict) -> str:
    pad = ""
    if info["padded_inputs"] or info["padded_outputs"]:
        pad = f", zero-padded to [{info['n_out_padded']}, {info['n_in_padded']}]"
    kernel = f" x {info['kernel'][0]}x{info['kernel'][1]} kernel positions" if "kernel" in info else ""
    return (
        f"[{info['n_out']}, {info['n_in']}] b={info['block_size']}: {info['grid'][0]}x{info['grid'][1]} blocks"
        f"{kernel}, {info['stored_weights']} stored weights ({info['compression']}x fewer){pad}"
    )
