"""magnitude_prune: the baseline ADMM is measured against (and a defense row in the audit).

- one_shot: prune each layer to its target by magnitude, then retrain with the mask fixed.
- gradual: Zhu & Gupta's cubic schedule (2017): over `steps` rounds the sparsity rises as
  s_t = s * (1 - (1 - t/steps)**3), pruning by magnitude and retraining between rounds; the
  same total number of retraining epochs as one_shot, so budgets match.

Weights stay float; `lower` (or `admm` after this pass) quantizes them.
"""
from __future__ import annotations

import numpy as np
import torch

from compiler.exec.train import TrainConfig, train
from compiler.ir import Graph
from compiler.passes.admm import project_sparse
from compiler.passes.base import Option, Pass, PassError, float_in, int_in, one_of, register


@register
class MagnitudePrune(Pass):
    name = "magnitude_prune"
    needs_data = True
    options = {
        "sparsity": Option(0.5, float_in(0.0, 1.0, hi_open=True), "fraction of weights pruned per layer",
                           per_layer=True),
        "structure": Option("irregular", one_of("irregular", "rows", "columns"), "what is pruned", per_layer=True),
        "schedule": Option("one_shot", one_of("one_shot", "gradual"), "prune once, or gradually (cubic)"),
        "epochs": Option(60, int_in(0, 100_000), "retraining epochs in total"),
        "steps": Option(6, int_in(1, 1000), "pruning rounds of the gradual schedule"),
        "lr": Option(3e-3, float_in(1e-7, 1.0), "Adam learning rate"),
        "batch_size": Option(64, int_in(1, 1 << 20), "minibatch size"),
    }

    def run(self, graph: Graph, ctx) -> Graph:
        if graph.is_integer:
            raise PassError("magnitude_prune: runs on float graphs; put it before lower")
        opts = ctx.options(self.name)
        goals = {n.inputs[1]: ctx.layer_options(self.name, n.name) for n in graph.weighted_nodes()}
        rounds = opts["steps"] if opts["schedule"] == "gradual" else 1
        g = graph.copy()  # passes never mutate their input
        for t in range(1, rounds + 1):
            fraction = 1 - (1 - t / rounds) ** 3
            for name, o in goals.items():
                g.params[name] = project_sparse(g.params[name], o["sparsity"] * fraction, o["structure"])
            g = self._retrain(g, ctx, opts, epochs=opts["epochs"] // rounds, seed=ctx.seed + t)
        for node in g.weighted_nodes():
            node.annotations["magnitude_prune"] = {"sparsity": round(float(np.mean(g.params[node.inputs[1]] == 0)), 6),
                                                   "schedule": opts["schedule"]}
        return g

    @staticmethod
    def _retrain(g: Graph, ctx, opts: dict, epochs: int, seed: int) -> Graph:
        g = g.copy()
        if epochs <= 0:
            return g
        masks = {n.inputs[1]: torch.from_numpy((g.params[n.inputs[1]] != 0).astype(np.float32))
                 for n in g.weighted_nodes()}

        def keep_pruned(module, step):
            for name, mask in masks.items():
                module.param(name).mul_(mask)

        config = TrainConfig(epochs=epochs, batch_size=opts["batch_size"], lr=opts["lr"])
        return train(g, ctx.data.x_train, ctx.data.y_train, config, seed=seed, after_step=keep_pruned,
                     progress=ctx.progress, desc="magnitude retrain")
