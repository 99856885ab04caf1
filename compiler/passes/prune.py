"""magnitude_prune: the baseline ADMM is measured against (and a defense row in the audit).

- one_shot: prune each layer to its target by magnitude, then retrain with the mask fixed.
- gradual: Zhu & Gupta's cubic schedule (2017): over `steps` rounds the sparsity rises as
  s_t = s * (1 - (1 - t/steps)**3), pruning by magnitude and retraining between rounds; the
  same total number of retraining epochs as one_shot, so budgets match.

Dense and conv2d layers alike, with admm's structures (irregular; rows = filters; columns =
channels) and the same rule for pruned whole outputs: their biases are held at zero, so that
`remove_dead` (passes/shrink.py) can delete them exactly at the end.

Weights stay float; `lower` (or `admm` after this pass) quantizes them.
"""

from __future__ import annotations

import numpy as np
import torch

from compiler.exec.train import TrainConfig, train
from compiler.ir import Graph
from compiler.passes.admm import STRUCTURES, layer_structure, project_sparse, pruned_bias_masks, warn_if_classes_pruned
from compiler.passes.base import Option, Pass, float_in, int_in, is_bool, one_of, register
from compiler.passes.shrink import remove_and_log


@register
class MagnitudePrune(Pass):
    name = "magnitude_prune"
    trains = True
    needs_data = True
    options = {
        "sparsity": Option(
            0.5, float_in(0.0, 1.0, hi_open=True), "fraction of weights pruned per layer", per_layer=True
        ),
        "structure": Option(
            "irregular",
            one_of(*STRUCTURES),
            "what is pruned: irregular; rows = filters (whole outputs); columns = channels (whole inputs)",
            per_layer=True,
        ),
        "schedule": Option("one_shot", one_of("one_shot", "gradual"), "prune once, or gradually (cubic)"),
        "epochs": Option(60, int_in(0, 100_000), "retraining epochs in total"),
        "steps": Option(6, int_in(1, 1000), "pruning rounds of the gradual schedule"),
        "lr": Option(3e-3, float_in(1e-7, 1.0), "Adam learning rate"),
        "batch_size": Option(64, int_in(1, 1 << 20), "minibatch size"),
        "remove_dead": Option(True, is_bool, "delete dead channels/neurons at the end (exact; docs/admm.md)"),
    }

    def apply(self, graph: Graph, ctx) -> Graph:
        opts = ctx.options(self.name)
        layers = graph.weighted_nodes(include_conv=True)
        goals = {n.inputs[1]: ctx.layer_options(self.name, n.name) for n in layers}
        for n in layers:  # a depthwise conv prunes whole inputs as whole filters (admm.layer_structure)
            goals[n.inputs[1]] = goals[n.inputs[1]] | {"structure": layer_structure(n, goals[n.inputs[1]]["structure"])}
        structures = {n.name: goals[n.inputs[1]]["structure"] for n in layers if goals[n.inputs[1]]["sparsity"] > 0}
        warn_if_classes_pruned(graph, ctx, structures, self.name)
        rounds = opts["steps"] if opts["schedule"] == "gradual" else 1
        g = graph.copy()  # passes never mutate their input
        for t in range(1, rounds + 1):
            fraction = 1 - (1 - t / rounds) ** 3
            for name, o in goals.items():
                g.params[name] = project_sparse(g.params[name], o["sparsity"] * fraction, o["structure"])
            for name, mask in pruned_bias_masks(g, structures).items():
                g.params[name] = g.params[name] * mask  # a pruned output is exactly zero
            g = self._retrain(g, ctx, opts, structures, epochs=opts["epochs"] // rounds, seed=ctx.seed + t)
        for node in g.weighted_nodes(include_conv=True):
            node.annotations["magnitude_prune"] = {
                "sparsity": round(float(np.mean(g.params[node.inputs[1]] == 0)), 6),
                "schedule": opts["schedule"],
            }
        return remove_and_log(g, ctx, self.name) if opts["remove_dead"] else g

    @staticmethod
    def _retrain(g: Graph, ctx, opts: dict, structures: dict[str, str], epochs: int, seed: int) -> Graph:
        g = g.copy()
        if epochs <= 0:
            return g
        masks = {n.inputs[1]: g.params[n.inputs[1]] != 0 for n in g.weighted_nodes(include_conv=True)}
        masks = {
            name: torch.from_numpy(m.astype(np.float32))
            for name, m in {**masks, **pruned_bias_masks(g, structures)}.items()
        }

        def keep_pruned(module, step):
            for name, mask in masks.items():
                module.param(name).mul_(mask)

        config = TrainConfig(epochs=epochs, batch_size=opts["batch_size"], lr=opts["lr"])
        return train(
            g,
            ctx.data.x_train,
            ctx.data.y_train,
            config,
            seed=seed,
            after_step=keep_pruned,
            progress=ctx.progress,
            desc="magnitude retrain",
        )
