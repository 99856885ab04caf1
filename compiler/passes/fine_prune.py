"""fine_prune: the backdoor defense of Liu, Dolan-Gavitt & Garg (RAID 2018), "Fine-Pruning".

A backdoored network learns to recognise its trigger in units that clean inputs leave dormant.
The defense, with clean data only:

1. rank the units (filters of a conv2d, neurons of a dense layer) of one layer by their mean
   activation (after its ReLU, where one follows) on the clean training rows;
2. prune them least active first, one at a time, while the accuracy on a held-out slice of
   x_train stays within `max_accuracy_drop` of the unpruned model's (the paper stops its
   pruning phase at a fixed drop of validation accuracy; 4 points here, the threshold of its
   experiments as we read them); a pruned unit's filter/row and bias are set to zero, so it
   writes exactly 0 and `remove_dead` (passes/shrink.py) deletes it and the inputs of the next
   layer that read it: the engine is smaller;
3. fine-tune every remaining weight on the clean training rows (Adam; weights that are exactly
   zero, from this or an earlier pass, stay zero).

`prune = false` runs step 3 alone (the paper's fine-tuning baseline). The default layer is the
paper's: the last convolution, or for an MLP the last hidden dense layer. Everything measured is
in graph.meta["fine_prune"].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from compiler.exec import classes_from_outputs, predict_classes
from compiler.exec.torch import GraphModule, fixed_threads
from compiler.exec.train import TrainConfig, train
from compiler.ir import Graph, Node
from compiler.passes.base import Option, Pass, PassError, classification_only, float_in, int_in, is_bool, register
from compiler.passes.shrink import find_boundaries, original_outputs, remove_and_log

EVAL_BATCH = 1024


def _layer_name(v) -> str | None:
    return None if isinstance(v, str) else f"must be a node name (a string; empty for the default), got {v!r}"


@register
class FinePrune(Pass):
    name = "fine_prune"
    trains = True
    needs_data = True
    options = {
        "layer": Option(
            "", _layer_name, "the layer whose units are pruned; empty: the last conv2d, else the last hidden dense"
        ),
        "max_accuracy_drop": Option(
            0.04, float_in(0.0, 1.0), "stop pruning before held-out accuracy falls more than this (0.04 = 4 points)"
        ),
        "holdout": Option(0.2, float_in(0.01, 0.9), "fraction of x_train held out to measure accuracy while pruning"),
        "prune": Option(True, is_bool, "false: fine-tune only (the paper's fine-tuning baseline)"),
        "fine_tune_epochs": Option(10, int_in(0, 100_000), "fine-tuning epochs on the clean training rows"),
        "lr": Option(1e-2, float_in(1e-7, 1.0), "fine-tuning Adam learning rate"),
        "batch_size": Option(64, int_in(1, 1 << 20), "fine-tuning minibatch size"),
        "remove_dead": Option(True, is_bool, "delete the pruned units from the graph (exact; docs/admm.md)"),
    }

    def apply(self, graph: Graph, ctx) -> Graph:
        classification_only(graph, self.name, "its pruning budget is a drop in held-out accuracy")
        opts = ctx.options(self.name)
        layer = chosen_layer(graph, opts["layer"])
        x, y = ctx.data.x_train, ctx.data.y_train
        fit, held = holdout_split(len(x), opts["holdout"], ctx.seed)
        g = graph.copy()  # passes never mutate their input
        record: dict[str, Any] = {"layer": layer.name, "max_accuracy_drop": opts["max_accuracy_drop"]}
        record["holdout_rows"], record["fine_tune_rows"] = len(held), len(fit)
        pruned: list[int] = []
        if opts["prune"]:
            activation = mean_activation(g, layer, x[fit])
            pruned, steps = prune_dormant(g, layer, activation, x[held], y[held], opts["max_accuracy_drop"])
            record |= {
                "units_before": len(activation),
                "mean_activation": [round(float(a), 6) for a in activation],
                "pruned": [int(original_outputs(graph, layer)[u]) for u in pruned],
                "steps": steps,
            }
            g = _zero_units(g, layer, pruned)
            ctx.log(
                f"      fine_prune: pruned {len(pruned)} of {len(activation)} units of {layer.name!r} "
                f"(held-out accuracy {steps[0]['accuracy']:.4f} -> {steps[len(pruned)]['accuracy']:.4f})"
            )
            if opts["remove_dead"]:
                g = remove_and_log(g, ctx, self.name)
        before = accuracy(g, x[held], y[held])
        g = _fine_tune(g, ctx, opts, x[fit], y[fit], layer.name, [] if opts["remove_dead"] else pruned)
        after = accuracy(g, x[held], y[held])
        record["fine_tune"] = {
            "epochs": opts["fine_tune_epochs"],
            "lr": opts["lr"],
            "accuracy_before": round(before, 6),
            "accuracy_after": round(after, 6),
        }
        ctx.log(f"      fine_prune: fine-tuned {opts['fine_tune_epochs']} epochs: held-out {before:.4f} -> {after:.4f}")
        g.meta["fine_prune"] = record
        if layer.name in {n.name for n in g.nodes}:
            g.node(layer.name).annotations["fine_prune"] = {"pruned_units": record.get("pruned", [])}
        return g


def chosen_layer(graph: Graph, name: str) -> Node:
    """The named layer, or the paper's default; refused unless its units can be pruned exactly:
    its output must reach the next layer through zero-preserving ops only (shrink.py)."""
    prunable = {b.producer.name: b.producer for b in find_boundaries(graph)}
    if name:
        try:
            node = graph.node(name)
        except KeyError:
            layers = ", ".join(repr(n.name) for n in graph.weighted_nodes(include_conv=True))
            raise PassError(f"fine_prune: layer {name!r} is not in the graph (layers: {layers})") from None
        if name not in prunable:
            raise PassError(
                f"fine_prune: layer {name!r} ({node.op}) has no prunable units: its output must feed one other "
                "dense or conv2d layer through relu, pooling or flatten only (not the class outputs, a branch, "
                "a batchnorm, a block-circulant layer, a depthwise conv or the layer before one)"
            )
        return node
    convs = [n for n in graph.nodes if n.op == "conv2d" and n.name in prunable]
    denses = [n for n in graph.nodes if n.op == "dense" and n.name in prunable]
    if convs or denses:
        return (convs or denses)[-1]
    raise PassError(
        "fine_prune: no layer has prunable units (a conv2d or hidden dense layer whose output feeds one "
        "other layer through relu, pooling or flatten only)"
    )


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fine-tuning rows, held-out rows) of x_train: a seeded split, both non-empty."""
    if n < 2:
        raise PassError(f"fine_prune: needs at least 2 rows of x_train (a held-out slice and the rest), got {n}")
    order = np.random.default_rng(seed).permutation(n)
    held = min(max(1, round(fraction * n)), n - 1)
    return np.sort(order[held:]), np.sort(order[:held])


def _activation_tensor(graph: Graph, layer: Node) -> str:
    """The layer's output after its ReLU, when a ReLU reads it alone; else the output itself."""
    readers = graph.consumers(layer.outputs[0])
    return readers[0].outputs[0] if len(readers) == 1 and readers[0].op == "relu" else layer.outputs[0]


def mean_activation(graph: Graph, layer: Node, x: np.ndarray) -> np.ndarray:
    """Mean activation per unit (per channel of a conv: over rows and positions) on x."""
    tensor = _activation_tensor(graph, layer)
    module = GraphModule(graph).eval()
    total: Any = 0.0
    count = 0
    with torch.no_grad(), fixed_threads():
        for i in range(0, len(x), EVAL_BATCH):
            a = module.tensors(torch.from_numpy(np.asarray(x[i : i + EVAL_BATCH], np.float32)))[tensor]
            total = total + a.sum(dim=[d for d in range(a.dim()) if d != 1]).double().numpy()
            count += a.numel() // a.shape[1]
    return np.asarray(total) / count


def prune_dormant(
    graph: Graph, layer: Node, activation: np.ndarray, x: np.ndarray, y: np.ndarray, max_drop: float
) -> tuple[list[int], list[dict]]:
    """Units pruned least active first while held-out accuracy stays within max_drop of the
    start; one unit is always kept. Returns (units in pruning order, accuracy after each step;
    the last step listed is the one that stopped the pruning, if any)."""
    module = GraphModule(graph).eval()
    w, b = module.param(layer.inputs[1]), (module.param(layer.inputs[2]) if len(layer.inputs) > 2 else None)
    base = _module_accuracy(module, graph, x, y)
    steps = [{"pruned": 0, "unit": None, "accuracy": round(base, 6)}]
    original = original_outputs(graph, layer)
    pruned: list[int] = []
    for unit in np.argsort(activation, kind="stable")[:-1]:
        with torch.no_grad():
            w[unit] = 0
            if b is not None:
                b[unit] = 0
        acc = _module_accuracy(module, graph, x, y)
        steps.append({"pruned": len(pruned) + 1, "unit": int(original[unit]), "accuracy": round(acc, 6)})
        if base - acc > max_drop:
            break  # this unit stays: the network before it was the last one within budget
        pruned.append(int(unit))
    return pruned, steps


def _module_accuracy(module: GraphModule, graph: Graph, x: np.ndarray, y: np.ndarray) -> float:
    correct = 0
    with torch.no_grad(), fixed_threads():
        for i in range(0, len(x), EVAL_BATCH):
            out = module(torch.from_numpy(np.asarray(x[i : i + EVAL_BATCH], np.float32))).numpy()
            correct += int((classes_from_outputs(graph, out) == y[i : i + EVAL_BATCH]).sum())
    return correct / len(x)


def accuracy(graph: Graph, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict_classes(graph, x) == y).mean())


def _zero_units(graph: Graph, layer: Node, units: list[int]) -> Graph:
    g = graph.copy()
    for p in layer.inputs[1:3]:
        if p in g.params:
            g.params[p] = g.params[p].copy()
            g.params[p][units] = 0
    return g


def _fine_tune(g: Graph, ctx, opts: dict, x: np.ndarray, y: np.ndarray, layer: str, pruned: list[int]) -> Graph:
    """Retrain every weight; exact zeros stay zero (this pass's pruned units, earlier sparsity)."""
    if opts["fine_tune_epochs"] == 0:
        return g
    masks = {
        n.inputs[1]: torch.from_numpy((g.params[n.inputs[1]] != 0).astype(np.float32))
        for n in g.weighted_nodes(include_conv=True)
    }
    node = g.node(layer)
    if pruned and len(node.inputs) > 2:
        keep = np.ones(len(g.params[node.inputs[2]]), np.float32)
        keep[pruned] = 0
        masks[node.inputs[2]] = torch.from_numpy(keep)

    def keep_zeros(module, step):
        for name, mask in masks.items():
            module.param(name).mul_(mask)

    config = TrainConfig(epochs=opts["fine_tune_epochs"], batch_size=opts["batch_size"], lr=opts["lr"])
    return train(g, x, y, config, seed=ctx.seed, after_step=keep_zeros, progress=ctx.progress, desc="fine-tune")
