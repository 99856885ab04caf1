"""Training through the torch executor: used by admm, circulant retraining and shadow models.

`train` runs minibatch SGD (Adam) on a float Graph and returns a new Graph with the trained
parameters. Hooks let a pass add a penalty to the loss (ADMM's rho/2 ||W - Z + U||^2) and
re-apply constraints after each step (masks, circulant structure). Training runs under
`fixed_threads()` (compiler/exec/torch.py): the same parameters whatever torch's thread count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from compiler.exec.torch import GraphModule, fixed_threads, logits_module
from compiler.ir import Graph, binary_output


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0


Penalty = Callable[[GraphModule, int], torch.Tensor]  # (module, step) -> extra loss
AfterStep = Callable[[GraphModule, int], None]  # (module, step) -> None, under no_grad


def train(
    graph: Graph,
    x: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
    seed: int = 0,
    penalty: Penalty | None = None,
    after_step: AfterStep | None = None,
    progress: bool = False,
    desc: str = "train",
) -> Graph:
    """Train a copy of `graph` on (x, y) with cross-entropy on its logits; return the new graph.
    The hooks run inside the same one-thread block (their torch work is part of the result)."""
    with fixed_threads():
        return _train(graph, x, y, config, seed, penalty, after_step, progress, desc)


def training_logits(kind: str | None):
    """Outputs -> logits over the classes for the cross-entropy: a binary classifier's one output
    (a probability p, or a logit z) becomes [0, z] (z = log(p / (1 - p))), i.e. binary cross-entropy."""
    if kind is None:
        return lambda out: out
    if kind == "probability":
        return lambda p: torch.cat([torch.zeros_like(p), torch.logit(p.clamp(1e-6, 1 - 1e-6))], dim=1)
    return lambda z: torch.cat([torch.zeros_like(z), z], dim=1)


def _train(
    graph: Graph,
    x: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
    seed: int,
    penalty: Penalty | None,
    after_step: AfterStep | None,
    progress: bool,
    desc: str,
) -> Graph:
    torch.manual_seed(seed)
    module = logits_module(graph).train()
    to_class_logits = training_logits(binary_output(graph))
    opt = torch.optim.Adam(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    xt = torch.from_numpy(np.array(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    gen = torch.Generator().manual_seed(seed)
    step = 0
    for _ in tqdm(range(config.epochs), desc=desc, disable=not progress, leave=False):
        for idx in torch.randperm(len(xt), generator=gen).split(config.batch_size):
            opt.zero_grad()
            loss = F.cross_entropy(to_class_logits(module(xt[idx])), yt[idx])
            if penalty is not None:
                loss = loss + penalty(module, step)
            loss.backward()
            opt.step()
            if after_step is not None:
                with torch.no_grad():
                    after_step(module, step)
            step += 1
    return with_params(graph, module.export_params())


def with_params(graph: Graph, params: dict[str, np.ndarray]) -> Graph:
    g = graph.copy()
    for name, value in params.items():
        if name in g.params:
            g.params[name] = value.astype(g.params[name].dtype)
    return g


def reinitialize(graph: Graph, seed: int) -> Graph:
    """Fresh weights of the same architecture (torch.nn.Linear's and Conv2d's default
    initialization): the starting point of shadow models. A batchnorm left explicit keeps its
    (folded, per-channel) scale and shift."""
    rng = torch.Generator().manual_seed(seed)
    g = graph.copy()
    for node in g.weighted_nodes(include_conv=True):
        w = torch.empty(g.params[node.inputs[1]].shape)
        torch.nn.init.kaiming_uniform_(w, a=5**0.5, generator=rng)
        g.params[node.inputs[1]] = w.numpy()
        if len(node.inputs) > 2:
            bound = 1 / w[0].numel() ** 0.5  # 1 / sqrt(fan_in): n_in, or C_in * kH * kW
            g.params[node.inputs[2]] = (torch.rand(w.shape[0], generator=rng) * 2 * bound - bound).numpy()
    return g
