"""privacy_admm: ADMM pruning whose objective carries the Min-Max privacy term (Wang, Zhang, Liu,
Chen, Xu, Sun, Ye, Lin, "Against Membership Inference Attack: Pruning is All You Need",
IJCAI 2021), so the sparse subnetwork is chosen for accuracy and membership privacy at once.

It is `admm` (passes/admm.py, ADMM-NN) with the adversarial-regularization game of `minmax`
(passes/minmax.py, Nasr et al. 2018) added to every training objective ADMM builds:

    ADMM phases:  CE(f) + lambda * log h(f(x), y) + sum_l rho/2 ||W_l - Z_l + U_l||^2
    retraining:   CE(f) + lambda * log h(f(x), y)     (masked weights; then biases only)

with the attack h trained `attack_steps` times before every classifier step to tell members
from a reference set D'. One game (one h, one optimizer) plays through all phases, so the
attack keeps what it learnt while the mask is chosen and retrained. Nothing here trains: the
loops are admm's `AdmmRunner` (given `extra_penalty=MinMaxGame.penalty`) and exec.train.

As in `minmax`, D' is a seeded `reference_fraction` of x_train held out of all ADMM training
(x_test is the audit's non-members and stays untouched; the held-out points were in the
original training set, so the audit still counts them as members). With `lambda_ = 0` the
pass is admm trained on the remaining members only: the control that separates the effect of
the game from that of the smaller training set.
"""

from __future__ import annotations

import numpy as np

from compiler.data import Dataset, is_regression
from compiler.ir import Graph
from compiler.passes.admm import Admm, AdmmRunner, layer_targets
from compiler.passes.base import PassError, register
from compiler.passes.minmax import MinMax, MinMaxGame, reference_split

GAME_OPTIONS = ("lambda_", "reference_fraction", "attack_steps", "attack_lr")


@register
class PrivacyAdmm(Admm):
    name = "privacy_admm"
    needs_data = True
    # admm's options (epochs, rho, lr, batch_size, ... also used by the game) plus the game's own
    options = {**Admm.options, **{k: MinMax.options[k] for k in GAME_OPTIONS}}

    def apply(self, graph: Graph, ctx) -> Graph:
        targets = layer_targets(graph, ctx, self.name)
        if not targets:
            raise PassError(
                f"{self.name}: no layer asks for pruning or quantization (set sparsity, global_sparsity "
                "or bits); for the Min-Max defense without compression use the minmax pass"
            )
        opts = ctx.options(self.name)
        x, y = ctx.data.x_train, ctx.data.y_train
        members, reference = reference_split(len(x), opts["reference_fraction"], ctx.seed)
        n_classes = int(np.prod(graph.outputs[0].shape))
        game = MinMaxGame(
            x[members], y[members], x[reference], y[reference], n_classes, opts, ctx.seed, is_regression(graph)
        )
        trained_on = Dataset(x[members], y[members], ctx.data.x_test, ctx.data.y_test, ctx.data.path)
        result = AdmmRunner(
            graph, ctx, opts, targets, extra_penalty=game.penalty, data=trained_on, pass_name=self.name
        ).compress()
        result.meta[self.name] = {
            **{k: opts[k] for k in GAME_OPTIONS},
            "reference_size": int(len(reference)),
            "trained_on": int(len(members)),
            "final_attack_loss": game.last_attack_loss,
        }
        ctx.log(
            f"      {self.name}: {len(members)} members, {len(reference)} reference points, "
            f"attack loss at the end {game.last_attack_loss:.3f} (log 2 = 0.693: the attack is blind)"
        )
        return result
