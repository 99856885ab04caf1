"""minmax: membership-privacy by adversarial regularization (Nasr, Shokri, Houmansadr, CCS 2018).

The classifier f and an inference attack h play

    min_f max_h   L_D(f) + lambda * G(f, h)
    G(f, h) = E_{(x,y) in D}[log h(f(x), y)] + E_{(x',y') in D'}[log(1 - h(f(x'), y'))]

D is the training set, D' a reference set from the same distribution that f never trains on.
Each classifier step first takes `attack_steps` Adam steps on h (maximizing G on a batch of D
and one of D'), then one step on f with cross-entropy + lambda * log h(f(x), y) on members:
f learns to make its outputs on members look like its outputs on unseen data.

Choices (docs/audit.md has the audit side):
- D' is a seeded `reference_fraction` of the build's x_train, held out of the retraining. The
  build's x_test stays untouched: it is the audit's non-members, and training on it (even only
  through h) would make the audit flatter than the truth. The held-out points were in the
  original training set, so the audit still counts them as members.
- Retraining starts from the graph's current weights (the pass sits anywhere before `lower`).
- h sees the classifier's log-probabilities (clamped at -30) and the one-hot label; Nasr et al.
  feed probabilities, which saturate at 1 for the confident outputs where members and
  non-members differ, so h (and the defense) would go blind exactly where the audit's loss and
  LiRA attacks look.
- A regression (graph.meta["task"]): f trains on the MSE (exec.train) and h sees each example's
  squared errors per output, log-scaled (`ErrorAttackModel`): what the audit's loss attacks see.
- The game's member term uses its own minibatch (drawn from D) through exec.train's `penalty`
  hook, so the training loop is exec.train's: an unbiased estimate of the same objective.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from compiler.data import is_regression
from compiler.exec.torch import GraphModule
from compiler.exec.train import TrainConfig, train
from compiler.ir import Graph
from compiler.passes.base import Option, Pass, float_in, int_in, register

LOG_PROB_FLOOR = -30.0


@register
class MinMax(Pass):
    name = "minmax"
    trains = True
    needs_data = True
    options = {
        "lambda_": Option(3.0, float_in(0.0, 1000.0), "weight of the attack's gain in the classifier's loss"),
        "epochs": Option(20, int_in(1, 10_000), "epochs of adversarial retraining"),
        "reference_fraction": Option(
            0.25, float_in(0.05, 0.9), "fraction of x_train held out as the reference set D' (never trained on)"
        ),
        "attack_steps": Option(1, int_in(1, 100), "attack-model steps per classifier step (Nasr et al.'s k)"),
        "lr": Option(1e-3, float_in(1e-7, 1.0), "classifier Adam learning rate"),
        "attack_lr": Option(1e-3, float_in(1e-7, 1.0), "attack-model Adam learning rate"),
        "batch_size": Option(64, int_in(1, 1 << 20), "minibatch size (classifier and attack)"),
    }

    def apply(self, graph: Graph, ctx) -> Graph:
        opts = ctx.options(self.name)
        members, reference = reference_split(len(ctx.data.x_train), opts["reference_fraction"], ctx.seed)
        x, y = ctx.data.x_train, ctx.data.y_train
        n_classes = int(np.prod(graph.outputs[0].shape))
        game = MinMaxGame(
            x[members], y[members], x[reference], y[reference], n_classes, opts, ctx.seed, is_regression(graph)
        )
        config = TrainConfig(epochs=opts["epochs"], batch_size=opts["batch_size"], lr=opts["lr"])
        trained = train(
            graph,
            x[members],
            y[members],
            config,
            seed=ctx.seed,
            penalty=game.penalty,
            progress=ctx.progress,
            desc="minmax",
        )
        trained.meta["minmax"] = {
            "lambda_": opts["lambda_"],
            "epochs": opts["epochs"],
            "reference_size": int(len(reference)),
            "trained_on": int(len(members)),
            "final_attack_loss": game.last_attack_loss,
        }
        ctx.log(
            f"      minmax: {len(members)} members, {len(reference)} reference points, "
            f"attack loss at the end {game.last_attack_loss:.3f} (log 2 = 0.693: the attack is blind)"
        )
        return trained


def reference_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(members, reference) indices of x_train, seeded, each sorted."""
    order = np.random.default_rng([seed, 0x5EED]).permutation(n)
    n_ref = min(max(1, int(round(fraction * n))), n - 1)
    return np.sort(order[n_ref:]), np.sort(order[:n_ref])


class AttackModel(torch.nn.Module):
    """h(f(x), y): the defender's inference attack, a small MLP over the clamped log-probability
    vector and the one-hot label; returns the logit of "member"."""

    def __init__(self, n_classes: int, hidden: int = 64):
        super().__init__()
        self.n_classes = n_classes
        self.net = torch.nn.Sequential(
            torch.nn.Linear(2 * n_classes, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden // 2),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden // 2, 1),
        )

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits, dim=-1).clamp(min=LOG_PROB_FLOOR) / -LOG_PROB_FLOOR
        return self.net(torch.cat([log_probs, F.one_hot(y, self.n_classes).float()], dim=-1)).squeeze(-1)


class ErrorAttackModel(torch.nn.Module):
    """h(f(x), y) for a regression: a small MLP over each output's squared error, log-scaled (a
    loss spans decades; clamped at LOG_PROB_FLOOR as the log-probabilities are)."""

    def __init__(self, n_outputs: int, hidden: int = 64):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_outputs, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden // 2),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden // 2, 1),
        )

    def forward(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        errors = torch.log((outputs.flatten(1) - y) ** 2 + 1e-12).clamp(min=LOG_PROB_FLOOR) / -LOG_PROB_FLOOR
        return self.net(errors).squeeze(-1)


class MinMaxGame:
    """The inner maximization and the classifier's privacy term, as an exec.train penalty.
    Reusable by any pass that trains through exec.train (e.g. privacy-aware ADMM)."""

    def __init__(
        self, x_members, y_members, x_reference, y_reference, n_classes: int, opts: dict, seed: int, regression=False
    ):
        """`regression`: y are float target rows and `n_classes` the outputs (ErrorAttackModel)."""
        as_tensor = lambda a, dtype: torch.from_numpy(np.asarray(a, dtype))
        y_type = np.float32 if regression else np.int64
        self.xm, self.ym = as_tensor(x_members, np.float32), as_tensor(y_members, y_type)
        self.xr, self.yr = as_tensor(x_reference, np.float32), as_tensor(y_reference, y_type)
        self.lam, self.steps, self.batch = opts["lambda_"], opts["attack_steps"], opts["batch_size"]
        game_seed = int(np.random.SeedSequence([seed, 0x6A4E]).generate_state(1)[0])
        self.gen = torch.Generator().manual_seed(game_seed)  # minibatches of the game
        with torch.random.fork_rng():  # h's initial weights
            torch.manual_seed(game_seed + 1)
            self.attack: torch.nn.Module = ErrorAttackModel(n_classes) if regression else AttackModel(n_classes)
        self.opt = torch.optim.Adam(self.attack.parameters(), lr=opts["attack_lr"])
        self.last_attack_loss = float("nan")

    def _batch(self, x, y):
        idx = torch.randint(len(x), (min(self.batch, len(x)),), generator=self.gen)
        return x[idx], y[idx]

    def _attack_step(self, module: GraphModule) -> None:
        """Maximize G: binary cross-entropy of h on a member batch (1) and a reference batch (0)."""
        (xm, ym), (xr, yr) = self._batch(self.xm, self.ym), self._batch(self.xr, self.yr)
        with torch.no_grad():
            out_m, out_r = module(xm), module(xr)
        self.opt.zero_grad()
        loss = (
            F.binary_cross_entropy_with_logits(self.attack(out_m, ym), torch.ones(len(ym)))
            + F.binary_cross_entropy_with_logits(self.attack(out_r, yr), torch.zeros(len(yr)))
        ) / 2
        loss.backward()
        self.opt.step()
        self.last_attack_loss = loss.item()  # -G / 2 on this batch: log 2 when h cannot tell

    def penalty(self, module: GraphModule, step: int) -> torch.Tensor:
        for _ in range(self.steps):
            self._attack_step(module)
        if self.lam == 0:
            return torch.zeros(())
        xm, ym = self._batch(self.xm, self.ym)
        for p in self.attack.parameters():
            p.requires_grad_(False)
        try:
            return self.lam * F.logsigmoid(self.attack(module(xm), ym)).mean()
        finally:
            for p in self.attack.parameters():
                p.requires_grad_(True)
