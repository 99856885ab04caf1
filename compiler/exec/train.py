"""Training through the torch executor: used by admm, circulant retraining and shadow models.

`train` runs minibatch SGD (Adam) on a float Graph and returns a new Graph with the trained
parameters. Hooks let a pass add a penalty to the loss (ADMM's rho/2 ||W - Z + U||^2) and
re-apply constraints after each step (masks, circulant structure). Training runs under
`fixed_threads()` (compiler/exec/torch.py): the same parameters whatever torch's thread count.

Options of `TrainConfig` that are off by default (plain cross-entropy at a constant rate on all
of x, every epoch, the last parameters returned), for passes that retrain a compressed model:

- `distill` (alpha) with `temperature` T: knowledge distillation from a teacher's logits on x
  (`teacher_logits` of the model before compression): the loss is
  alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * cross-entropy.
- `schedule`: the learning rate over the planned steps: "constant", "cosine" (from lr down to 0)
  or "onecycle" (a linear warm-up from lr / 25 over the first 30% of the steps, then cosine to 0).
- `validation_fraction`: a stratified, seeded slice of x (`holdout_split`) is held out and never
  trained on; after every epoch the model is scored on it (accuracy) and the parameters of the
  latest epoch whose score lies within the 95% interval of the best one (`keep_margin`) are
  returned (epoch 0, the starting point, included): a small slice's noise (1 row of 100 is a
  point) does not pull the choice away from the end of the schedule, a real loss (divergence,
  overfitting) does.
  The score is taken after the `after_step` hook, so a constrained model is scored as
  constrained. `patience` > 0 stops after that many epochs without one to keep.
`fit` returns the graph with what the held-out slice said (`TrainResult`).

A regression (graph.meta["task"], compiler/data.py) trains the same loop on the mean squared
error against float targets y [N, outputs]: distillation is then the MSE to the teacher's
outputs, the held-out slice is drawn at random (no classes to stratify) and scored by its MSE,
and an epoch is kept within two standard errors of the best MSE.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from compiler.data import is_regression
from compiler.exec.torch import GraphModule, fixed_threads, logits_module
from compiler.ir import Graph, binary_output

SCHEDULES = ("constant", "cosine", "onecycle")
ONECYCLE_WARMUP = 0.3  # share of the steps the one-cycle schedule warms up over
ONECYCLE_START = 1 / 25  # its first rate, relative to lr (torch's OneCycleLR default)


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "constant"  # one of SCHEDULES
    distill: float = 0.0  # alpha, the weight of the distillation term (needs teacher logits)
    temperature: float = 4.0  # T of the distillation
    validation_fraction: float = 0.0  # share of x held out to choose the best epoch (0: none)
    patience: int = 0  # with a held-out slice: epochs without one to keep before stopping (0: never)


@dataclass
class TrainResult:
    graph: Graph
    best_epoch: int  # the epoch whose parameters `graph` holds (0: the starting point)
    epochs_run: int
    heldout_accuracy: float | None = None  # at best_epoch (within keep_margin of the best); None without a slice
    heldout_rows: int = 0  # rows of x held out (never trained on)
    history: list[float] = field(default_factory=list)  # held-out accuracy (regression: MSE) after epochs 0, 1, ...
    heldout_mse: float | None = None  # a regression's held-out MSE at best_epoch (heldout_accuracy is then None)


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
    teacher: np.ndarray | None = None,
) -> Graph:
    """Train a copy of `graph` on (x, y) with cross-entropy on its logits; return the new graph.
    The hooks run inside the same one-thread block (their torch work is part of the result).
    `teacher`: class logits for every row of x (`teacher_logits`), needed when config.distill > 0."""
    return fit(graph, x, y, config, seed, penalty, after_step, progress, desc, teacher).graph


def fit(
    graph: Graph,
    x: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
    seed: int = 0,
    penalty: Penalty | None = None,
    after_step: AfterStep | None = None,
    progress: bool = False,
    desc: str = "train",
    teacher: np.ndarray | None = None,
) -> TrainResult:
    """`train`, returning what the held-out slice said as well."""
    _check_config(config, teacher, len(x))
    with fixed_threads():
        return _train(graph, x, y, config, seed, penalty, after_step, progress, desc, teacher)


def training_logits(kind: str | None):
    """Outputs -> logits over the classes for the cross-entropy: a binary classifier's one output
    (a probability p, or a logit z) becomes [0, z] (z = log(p / (1 - p))), i.e. binary cross-entropy."""
    if kind is None:
        return lambda out: out
    if kind == "probability":
        return lambda p: torch.cat([torch.zeros_like(p), torch.logit(p.clamp(1e-6, 1 - 1e-6))], dim=1)
    return lambda z: torch.cat([torch.zeros_like(z), z], dim=1)


def teacher_logits(graph: Graph, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """The class logits `train` compares a student's with (a binary classifier's output made two
    class logits, as for its cross-entropy): computed once, before the student changes."""
    module = logits_module(graph).eval()
    to_class_logits = training_logits(binary_output(graph))
    outs = []
    with torch.no_grad(), fixed_threads():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(np.array(x[i : i + batch], dtype=np.float32))
            outs.append(to_class_logits(module(xb)).numpy())
    return np.concatenate(outs).astype(np.float32)


def holdout_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(trained rows, held-out rows) of a label vector, both sorted: per class, round(fraction *
    count) rows drawn at random (seeded), at least one where the class has two rows or more and
    never all of a class. fraction 0: every row is trained on."""
    y = np.asarray(y)
    if fraction <= 0:
        return np.arange(len(y)), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if y.ndim > 1:  # a regression's target rows: no classes to stratify by
        k = min(max(int(round(fraction * len(y))), 1), len(y) - 1)
        heldout = np.sort(rng.permutation(len(y))[:k]).astype(np.int64)
        return np.setdiff1d(np.arange(len(y)), heldout), heldout
    held = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        k = min(max(int(round(fraction * len(rows))), 1), len(rows) - 1)
        held.append(rng.permutation(rows)[:k])
    heldout = np.sort(np.concatenate(held)).astype(np.int64)
    return np.setdiff1d(np.arange(len(y)), heldout), heldout


def lr_factor(schedule: str, step: int, total: int) -> float:
    """The learning rate of step `step` (0-based) of `total`, relative to lr."""
    if schedule == "constant" or total <= 1:
        return 1.0
    t = step / (total - 1)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    warm = ONECYCLE_WARMUP
    if t < warm:
        return ONECYCLE_START + (1 - ONECYCLE_START) * t / warm
    return 0.5 * (1 + math.cos(math.pi * (t - warm) / (1 - warm)))


def _check_config(config: TrainConfig, teacher: np.ndarray | None, n: int) -> None:
    if config.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {config.schedule!r}")
    if not 0 <= config.distill <= 1:
        raise ValueError(f"distill must be in [0, 1], got {config.distill!r}")
    if config.distill > 0 and teacher is None:
        raise ValueError("distill > 0 needs the teacher's logits (teacher_logits of the original model)")
    if teacher is not None and len(teacher) != n:
        raise ValueError(f"teacher logits for {len(teacher)} rows, x has {n}")
    if not config.temperature > 0:
        raise ValueError(f"temperature must be > 0, got {config.temperature!r}")
    if not 0 <= config.validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {config.validation_fraction!r}")


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
    teacher: np.ndarray | None,
) -> TrainResult:
    torch.manual_seed(seed)
    module = logits_module(graph).train()
    regression = is_regression(graph)
    to_class_logits = training_logits(binary_output(graph))
    opt = torch.optim.Adam(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    trained, heldout = holdout_split(y, config.validation_fraction, seed)
    xt = torch.from_numpy(np.array(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.float32 if regression else np.int64))
    if regression:  # target rows, compared with the flattened outputs
        yt = yt.reshape(len(yt), -1)
    x_val, y_val = xt[heldout], yt[heldout]
    xt, yt = xt[trained], yt[trained]
    alpha, temp = config.distill, config.temperature
    soft = torch.from_numpy(np.asarray(teacher, dtype=np.float32)[trained] / temp) if alpha > 0 else None
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-len(xt) // config.batch_size)
    total = config.epochs * steps_per_epoch
    step = 0

    def score() -> float:
        with torch.no_grad():
            if regression:  # higher is better, as for accuracy
                return -float(((module(x_val).flatten(1) - y_val) ** 2).mean())
            return int((to_class_logits(module(x_val)).argmax(1) == y_val).sum()) / len(y_val)  # k / n exactly

    def margin(best: float) -> float:
        if not regression:
            return keep_margin(best, len(heldout))
        with torch.no_grad():  # two standard errors of the held-out rows' mean squared error
            rows = ((module(x_val).flatten(1) - y_val) ** 2).mean(1).double()
        return 2 * float(rows.std(unbiased=False)) / math.sqrt(len(rows))

    top = kept = score() if len(heldout) else None  # the best held-out accuracy so far; the kept epoch's
    kept_params, best_epoch, history = None, 0, ([] if top is None else [-top if regression else top])
    top_margin = margin(top) if top is not None else 0.0
    epoch = 0
    for epoch in tqdm(range(1, config.epochs + 1), desc=desc, disable=not progress, leave=False):
        for idx in torch.randperm(len(xt), generator=gen).split(config.batch_size):
            for group in opt.param_groups:
                group["lr"] = config.lr * lr_factor(config.schedule, step, total)
            opt.zero_grad()
            if regression:
                loss = _regression_loss(module(xt[idx]).flatten(1), yt[idx], soft, idx, alpha, temp)
            else:
                loss = _classification_loss(to_class_logits(module(xt[idx])), yt[idx], soft, idx, alpha, temp)
            if penalty is not None:
                loss = loss + penalty(module, step)
            loss.backward()
            opt.step()
            if after_step is not None:
                with torch.no_grad():
                    after_step(module, step)
            step += 1
        if top is None:
            continue
        acc = score()
        history.append(-acc if regression else acc)
        if acc > top:
            top, top_margin = acc, margin(acc)
        if acc >= top - top_margin - 1e-12:
            kept, kept_params, best_epoch = acc, module.export_params(), epoch
        elif config.patience and epoch - best_epoch >= config.patience:
            break
    if top is None:
        return TrainResult(with_params(graph, module.export_params()), config.epochs, config.epochs)
    result = graph.copy() if kept_params is None else with_params(graph, kept_params)
    if regression and kept is not None:  # scored as -MSE, so that higher is better throughout
        return TrainResult(result, best_epoch, epoch, None, len(heldout), history, heldout_mse=-kept)
    return TrainResult(result, best_epoch, epoch, kept, history=history, heldout_rows=len(heldout))


def _classification_loss(logits, y, soft, idx, alpha: float, temp: float) -> torch.Tensor:
    """Cross-entropy; with a teacher, alpha * T^2 * KL(teacher || student at T) + (1 - alpha) * it."""
    loss = F.cross_entropy(logits, y)
    if soft is None:
        return loss
    kl = F.kl_div(
        F.log_softmax(logits / temp, dim=1), F.log_softmax(soft[idx], dim=1), log_target=True, reduction="batchmean"
    )
    return alpha * temp**2 * kl + (1 - alpha) * loss


def _regression_loss(out, y, soft, idx, alpha: float, temp: float) -> torch.Tensor:
    """Mean squared error; with a teacher, alpha * MSE to its outputs + (1 - alpha) * it (`soft`
    holds the teacher's outputs / T, hence the factor back)."""
    loss = F.mse_loss(out, y)
    if soft is None:
        return loss
    return alpha * F.mse_loss(out, soft[idx] * temp) + (1 - alpha) * loss


def keep_margin(accuracy: float, n: int) -> float:
    """How far below the best held-out accuracy (of n rows) an epoch may score and be kept: the
    half-width of the best's 95% Agresti-Coull interval, 2 * sqrt(p (1 - p) / (n + 4)) with
    p = (k + 2) / (n + 4) (two successes and two failures added, so that a perfect score on a
    small slice still has a width: 0.023 for 120 of 120)."""
    p = (accuracy * n + 2) / (n + 4)
    return 2 * math.sqrt(p * (1 - p) / (n + 4))


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
