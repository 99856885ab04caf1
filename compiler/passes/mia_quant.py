"""mia_quant: weight quantization chosen for membership privacy (after Famili & Lao, "Deep Neural
Network Quantization Framework for Effective Defense against Membership Inference Attacks",
Sensors 23(18):7722, 2023).

The paper's premise: quantization is usually tuned for size and speed, yet it also changes how
much a model reveals about its training set, so a quantizer can be built whose first objective
is resistance to membership inference, with accuracy as the constraint. This pass does that
within mpc's integer contract (docs/fixed-point.md: one uniform, symmetric, power-of-two grid
per layer):

    x_train = members + reference set D' + validation slice V      (seeded, disjoint)
    float model F: trained on the members from fresh weights (init = "reinitialize")
    for each configuration (lambda, bits per layer) tried -- every lambda of `lambdas` with
    every candidate width for all layers alike, then one greedy sweep at the chosen lambda
    that changes one layer's width at a time:
        grids: weight_format(F's weights, bits) per layer
        quantization-aware training on the members, from F's starting weights:
            minimise  CE(member batch) + lambda * M(member batch, D' batch)
            every forward on the grids (straight-through estimator)
        measure on V: accuracy, and the membership signal (loss-threshold AUC of members
            against V; the mean loss gap beside it)
    keep the lowest signal (AUCs within `signal_tolerance` of it count as equal, then the fewest
    stored weight bits win) whose accuracy on V is at most `max_accuracy_drop` below F's.

V is never trained on nor optimised against: the budget and the signal are measured there.
x_test is never touched: it is the audit's non-members.

The membership term M (`membership_term`):
- "confidence_gap" (default): lambda * max(0, mean p_y(members) - mean p_y(D')) on one
  minibatch of each, D's side held constant. While members are predicted more confidently
  than unseen data, each member's confidence is pushed down; against cross-entropy's pull that
  settles at p_y = 1/lambda, so the term caps members' confidence (lambda <= 1: no effect)
  and, being bounded, cannot run the model away (a cross-entropy ascent toward D's loss, tried
  first, collapsed the Location model to chance at lambda 1.5 and 3).
- "adversarial": the Nasr et al. game of `minmax` (MinMaxGame): an attack model trained to
  tell members from D', whose gain on members is added to the loss.

Where this differs from the paper, and why (docs/audit.md has the long form):
- The stored copies of the paper that could be read while this was written hold its abstract
  and related work, not its method section (Sec. 3.3, Algorithm 1), so the objective above is
  this project's reading of the stated goal, not a transcription of the paper's equations.
- Grids are mpc's: uniform, symmetric, power-of-two steps per layer (`weight_format`), so
  `lower` keeps them exactly (node.annotations["weight_format"], as admm sets it) and the
  integer model computes what was trained. A learned non-uniform or arbitrary-scale quantizer
  would not be bit-exact on this hardware.
- Bit widths (and the term's weight) come from candidate lists, each configuration trained and
  measured, rather than being learned: (|lambdas| x |widths| + sweep + 1) trainings.
- Straight-through training runs through exec.train's `after_step` hook: a float shadow of each
  weight takes the optimizer's step and the parameter is snapped back onto its grid, so every
  forward and gradient is computed on grid weights (BinaryConnect's scheme).
- init = "reinitialize" trains from fresh weights on the members, because a model trained on
  all of x_train has memorised D' and V: against them no member looks like a member, the
  membership term has nothing to act on and the budget would compare training accuracies.
  The result is trained on 55% of x_train (defaults); the audit still counts all of x_train
  as members, so part of its lower AUC is the held-out rows (docs/audit.md separates the two).
  init = "current" starts from the graph's weights (for a model that never saw x_train).
- Weights that are exactly zero in the input stay zero (a pruned model stays pruned); biases
  train in float and `lower` quantizes them at the accumulator's finer scale, as after admm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import log_softmax
from sklearn.metrics import roc_auc_score

from compiler.exec import class_logits, classes_from_outputs, predict_logits
from compiler.exec.torch import GraphModule, fixed_threads
from compiler.exec.train import AfterStep, Penalty, TrainConfig, reinitialize, train, training_logits
from compiler.ir import FixedPoint, Graph, Node, binary_output
from compiler.ops.formats import weight_format
from compiler.passes.admm import project_quantized
from compiler.passes.base import Option, Pass, PassError, float_in, int_in, is_bool, one_of, register
from compiler.passes.base import classification_only as needs_classes
from compiler.passes.minmax import MinMaxGame

MEMBERSHIP_TERMS = ("confidence_gap", "adversarial")
MIN_BITS, MAX_BITS = 2, 8  # lower's weight_bits range
MAX_LAMBDA = 1000.0


def _bits_list(v) -> str | None:
    ok = (
        isinstance(v, list)
        and len(v) > 0
        and all(isinstance(b, int) and not isinstance(b, bool) and MIN_BITS <= b <= MAX_BITS for b in v)
        and len(set(v)) == len(v)
    )
    return None if ok else f"must be a non-empty list of distinct integers in {MIN_BITS}..{MAX_BITS}, got {v!r}"


def _lambda_list(v) -> str | None:
    ok = (
        isinstance(v, list)
        and len(v) > 0
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= MAX_LAMBDA for x in v)
        and len(set(v)) == len(v)
    )
    return None if ok else f"must be a non-empty list of distinct numbers in [0, {MAX_LAMBDA}], got {v!r}"


@register
class MiaQuant(Pass):
    name = "mia_quant"
    needs_data = True
    trains = True
    options = {
        "bits": Option(
            [2, 3, 4, 6, 8], _bits_list, "candidate weight bit widths (each is trained and measured)", per_layer=True
        ),
        "max_accuracy_drop": Option(
            0.05, float_in(0.0, 1.0), "largest accuracy loss against the float model, on the validation slice"
        ),
        "membership_term": Option(
            "confidence_gap", one_of(*MEMBERSHIP_TERMS), "the privacy term of the training objective"
        ),
        "lambdas": Option(
            [1.5, 3.0, 6.0], _lambda_list, "weights of the membership term tried with every width (0: none)"
        ),
        "init": Option(
            "reinitialize",
            one_of("reinitialize", "current"),
            "reinitialize: train from fresh weights on the members (the held-out slices are then unseen); "
            "current: start from the graph's weights",
        ),
        "epochs": Option(60, int_in(1, 10_000), "epochs of each training (the float model and every candidate)"),
        "lr": Option(1e-3, float_in(1e-7, 1.0), "Adam learning rate"),
        "batch_size": Option(64, int_in(1, 1 << 20), "minibatch size (training and the membership term)"),
        "reference_fraction": Option(
            0.25, float_in(0.05, 0.5), "fraction of x_train held out as the membership term's reference set D'"
        ),
        "validation_fraction": Option(
            0.2, float_in(0.05, 0.5), "fraction of x_train held out to measure the budget and the signal"
        ),
        "signal_tolerance": Option(
            0.01, float_in(0.0, 1.0), "AUCs this close to the lowest count as equal: the fewest stored bits win"
        ),
        "per_layer_search": Option(True, is_bool, "after the uniform widths, try each layer's other widths once"),
        "attack_steps": Option(1, int_in(1, 100), "adversarial term: attack-model steps per classifier step"),
        "attack_lr": Option(1e-3, float_in(1e-7, 1.0), "adversarial term: attack-model Adam learning rate"),
    }

    def apply(self, graph: Graph, ctx) -> Graph:
        needs_classes(graph, self.name, "its budget is a drop in class accuracy, its signal a class loss")
        opts = ctx.options(self.name)
        layers = quantizable_layers(graph, self.name)
        if opts["membership_term"] == "adversarial" and binary_output(graph) is not None:
            raise PassError(f"{self.name}: membership_term 'adversarial' needs a model with one output per class")
        candidates = {node.name: sorted(ctx.layer_options(self.name, node.name)["bits"]) for node in layers}
        split = split_train(len(ctx.data.x_train), opts["validation_fraction"], opts["reference_fraction"], ctx.seed)
        return BitSearch(graph, ctx, opts, split, layers, candidates).run()


def quantizable_layers(graph: Graph, pass_name: str) -> list[Node]:
    layers = graph.weighted_nodes(include_conv=True)
    if not layers:
        raise PassError(f"{pass_name}: the graph has no dense or conv2d layer to quantize")
    fixed = [n.name for n in layers if "weight_format" in n.annotations]
    if fixed:
        raise PassError(
            f"{pass_name}: layer(s) {', '.join(map(repr, fixed))} are already on a weight grid set by an "
            "earlier pass (admm with bits?); mia_quant chooses the grids itself: run it on the float model"
        )
    return layers


# ---- data ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """Indices into x_train, disjoint and sorted."""

    members: np.ndarray
    reference: np.ndarray
    validation: np.ndarray


def split_train(n: int, validation_fraction: float, reference_fraction: float, seed: int) -> Split:
    """Seeded three-way split of x_train: members, reference set D', validation slice V."""
    n_val = max(1, int(round(validation_fraction * n)))
    n_ref = max(1, int(round(reference_fraction * n)))
    if n - n_val - n_ref < 1:
        raise PassError(
            f"mia_quant: x_train has {n} rows; validation_fraction and reference_fraction hold out "
            f"{n_val} + {n_ref} and leave no members"
        )
    order = np.random.default_rng([seed, 0x4D1A]).permutation(n)
    return Split(
        members=np.sort(order[n_val + n_ref :]),
        reference=np.sort(order[n_val : n_val + n_ref]),
        validation=np.sort(order[:n_val]),
    )


# ---- measurements --------------------------------------------------------------------------
@dataclass(frozen=True)
class Measure:
    accuracy: float  # on V
    loss_auc: float  # loss-threshold AUC, members (positive) against V: 0.5 = no signal
    loss_gap: float  # mean loss on V minus mean loss on the members

    def to_dict(self) -> dict:
        return {k: round(v, 6) for k, v in self.__dict__.items()}


def example_losses(graph: Graph, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cross-entropy of each example in float64, predicted classes). One torch thread, as for
    training: the choice these figures make is part of the build."""
    with fixed_threads():
        outputs = predict_logits(graph, x)
    log_p = log_softmax(np.asarray(class_logits(graph, outputs), np.float64), axis=1)
    return -log_p[np.arange(len(y)), y], classes_from_outputs(graph, outputs)


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of a score where higher means positive (ties count half)."""
    labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    return float(roc_auc_score(labels, np.concatenate([positive, negative])))


def measure(graph: Graph, x: np.ndarray, y: np.ndarray, split: Split) -> Measure:
    member_loss, _ = example_losses(graph, x[split.members], y[split.members])
    val_loss, val_classes = example_losses(graph, x[split.validation], y[split.validation])
    return Measure(
        accuracy=float(np.mean(val_classes == y[split.validation])),
        loss_auc=auc(-member_loss, -val_loss),
        loss_gap=float(val_loss.mean() - member_loss.mean()),
    )


# ---- training on the grids -----------------------------------------------------------------
def zero_masks(graph: Graph, names: list[str]) -> dict[str, torch.Tensor]:
    """{weight: nonzero mask} for the weights holding exact zeros (a pruned layer), else none."""
    return {n: torch.from_numpy(graph.params[n] != 0) for n in names if not graph.params[n].all()}


def keep_zeros(masks: dict[str, torch.Tensor]) -> AfterStep:
    def after_step(module: GraphModule, step: int) -> None:
        for name, mask in masks.items():
            module.param(name).mul_(mask)

    return after_step


class GridShadow:
    """Straight-through training on fixed grids, as an exec.train hook. A float shadow of each
    weight takes the optimizer's step; the parameter is then snapped back onto its grid, so the
    forward pass and the gradient always see grid weights while small steps still accumulate."""

    def __init__(self, start: Graph, formats: dict[str, FixedPoint], masks: dict[str, torch.Tensor]):
        self.formats, self.masks = formats, masks
        self.shadow = {n: torch.from_numpy(start.params[n].astype(np.float32)).clone() for n in formats}
        self.on_grid = {n: self._snap(n, self.shadow[n]) for n in formats}

    def _snap(self, name: str, w: torch.Tensor) -> torch.Tensor:
        """admm's projection onto the grid (half to even, as lower), zeros kept zero."""
        mask = self.masks[name].numpy() if name in self.masks else 1.0
        return torch.from_numpy(project_quantized(w.numpy(), mask, self.formats[name]))

    def start(self, graph: Graph) -> Graph:
        g = graph.copy()
        for name, w in self.on_grid.items():
            g.params[name] = w.numpy().copy()
        return g

    def after_step(self, module: GraphModule, step: int) -> None:
        for name, fmt in self.formats.items():
            p = module.param(name)
            # the shadow stays within half a step of the grid's ends, so it can come back (BinaryConnect)
            lo, hi = (fmt.min_int - 0.5) * 2.0**-fmt.frac, (fmt.max_int + 0.5) * 2.0**-fmt.frac
            self.shadow[name].add_(p.detach() - self.on_grid[name]).clamp_(lo, hi)
            self.on_grid[name] = self._snap(name, self.shadow[name])
            p.copy_(self.on_grid[name])


class ConfidenceGapTerm:
    """lambda * max(0, mean p_y(member batch) - mean p_y(reference batch)), the reference side
    held constant: members' confidence is pushed down while it exceeds unseen data's."""

    def __init__(self, graph: Graph, members, reference, lam: float, batch: int, seed: int):
        as_tensors = lambda xy: (torch.from_numpy(np.asarray(xy[0], np.float32)), torch.from_numpy(xy[1]))
        self.members, self.reference = as_tensors(members), as_tensors(reference)
        self.lam, self.batch = lam, batch
        self.to_logits = training_logits(binary_output(graph))  # exec.train's own loss, for binary models too
        self.gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 0x6A9]).generate_state(1)[0]))

    def _confidence(self, module: GraphModule, xy: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = xy
        idx = torch.randint(len(x), (min(self.batch, len(x)),), generator=self.gen)
        log_p = F.log_softmax(self.to_logits(module(x[idx])), dim=1)
        return log_p.gather(1, y[idx][:, None]).exp().mean()

    def __call__(self, module: GraphModule, step: int) -> torch.Tensor:
        member = self._confidence(module, self.members)
        with torch.no_grad():
            reference = self._confidence(module, self.reference)
        return self.lam * torch.relu(member - reference)


def membership_penalty(graph: Graph, x, y, split: Split, opts: dict, lam: float, seed: int) -> Penalty:
    """A fresh term per training: every candidate sees the same minibatches (same seed)."""
    members = (x[split.members], np.asarray(y[split.members], np.int64))
    reference = (x[split.reference], np.asarray(y[split.reference], np.int64))
    if opts["membership_term"] == "adversarial":
        n_classes = int(np.prod(graph.outputs[0].shape))
        return MinMaxGame(*members, *reference, n_classes, {**opts, "lambda_": lam}, seed).penalty
    return ConfidenceGapTerm(graph, members, reference, lam, opts["batch_size"], seed)


# ---- the search ----------------------------------------------------------------------------
@dataclass
class Trial:
    lam: float
    bits: dict[str, int]
    trained: Measure  # after mia_quant's training on the grids
    plain: Measure  # the same grids by rounding the float model alone (lower's weight_bits)
    drop: float
    within_budget: bool
    graph: Graph = field(repr=False)
    formats: dict[str, FixedPoint] = field(repr=False)

    def to_dict(self) -> dict:
        return {
            "lambda_": self.lam,
            "bits": dict(self.bits),
            "accuracy": round(self.trained.accuracy, 6),
            "accuracy_drop": round(self.drop, 6),
            "within_budget": self.within_budget,
            "loss_auc": round(self.trained.loss_auc, 6),
            "loss_gap": round(self.trained.loss_gap, 6),
            "plain_quantization": self.plain.to_dict(),
        }


class BitSearch:
    """The float model, then one trial per (lambda, widths) configuration: uniform widths for
    every lambda, then a greedy per-layer sweep at the chosen lambda."""

    def __init__(self, graph: Graph, ctx, opts: dict, split: Split, layers: list[Node], candidates: dict):
        self.ctx, self.opts, self.split = ctx, opts, split
        self.layers, self.candidates = layers, candidates
        self.x, self.y = ctx.data.x_train, ctx.data.y_train
        self.masks = zero_masks(graph, [n.inputs[1] for n in layers])
        self.start = self._start(graph)
        self.float_graph = self._float_model()
        self.float_measure = measure(self.float_graph, self.x, self.y, split)
        self.trials: list[Trial] = []

    def _start(self, graph: Graph) -> Graph:
        """Where every training starts: fresh weights (pruned zeros kept) or the graph's own."""
        if self.opts["init"] == "current":
            return graph
        fresh = reinitialize(graph, self.ctx.seed)
        for name, mask in self.masks.items():
            fresh.params[name] = fresh.params[name] * mask.numpy()
        return fresh

    def _float_model(self) -> Graph:
        """The budget's reference and the source of every grid's scale."""
        if self.opts["init"] == "current":
            return self.start
        return self._train(self.start, keep_zeros(self.masks), None, "float")

    def _train(self, start: Graph, after_step: AfterStep, penalty: Penalty | None, desc: str) -> Graph:
        return train(
            start,
            self.x[self.split.members],
            self.y[self.split.members],
            TrainConfig(epochs=self.opts["epochs"], batch_size=self.opts["batch_size"], lr=self.opts["lr"]),
            seed=self.ctx.seed,
            penalty=penalty,
            after_step=after_step,
            progress=self.ctx.progress,
            desc=f"mia_quant {desc}",
        )

    def run(self) -> Graph:
        for lam in self.opts["lambdas"]:
            for width in sorted({b for widths in self.candidates.values() for b in widths}):
                self._try(lam, {name: nearest(widths, width) for name, widths in self.candidates.items()})
        best = self._best_of(self.trials)
        if self.opts["per_layer_search"]:
            best = self._sweep(best)
        return self._result(best)

    def _try(self, lam: float, bits: dict[str, int]) -> Trial:
        """Train one configuration on its grids (or recall it) and measure it."""
        for t in self.trials:
            if t.lam == lam and t.bits == bits:
                return t
        formats = {n.inputs[1]: weight_format(self.float_graph.params[n.inputs[1]], bits[n.name]) for n in self.layers}
        grid = GridShadow(self.start, formats, self.masks)
        penalty = membership_penalty(self.float_graph, self.x, self.y, self.split, self.opts, lam, self.ctx.seed)
        trained = self._train(grid.start(self.start), grid.after_step, penalty, describe(lam, bits))
        result = measure(trained, self.x, self.y, self.split)
        rounded = GridShadow(self.float_graph, formats, self.masks).start(self.float_graph)
        drop = self.float_measure.accuracy - result.accuracy
        trial = Trial(
            lam=lam,
            bits=bits,
            trained=result,
            plain=measure(rounded, self.x, self.y, self.split),
            drop=drop,
            within_budget=drop <= self.opts["max_accuracy_drop"] + 1e-9,  # a drop equal to the budget is in
            graph=trained,
            formats=formats,
        )
        self.trials.append(trial)
        self.ctx.log(
            f"      mia_quant: {describe(lam, bits)}: accuracy {result.accuracy:.3f} (drop {drop:+.3f}), "
            f"loss AUC {result.loss_auc:.3f} (rounding alone {trial.plain.loss_auc:.3f})"
        )
        return trial

    def _stored_bits(self, bits: dict[str, int]) -> int:
        return sum(bits[n.name] * self.float_graph.params[n.inputs[1]].size for n in self.layers)

    def _best_of(self, trials: list[Trial]) -> Trial:
        """The lowest membership signal within the budget; signals within `signal_tolerance` of
        it count as equal (V is small: such differences are noise), and the fewest stored bits win."""
        feasible = [t for t in trials if t.within_budget]
        if not feasible:
            raise PassError(self._budget_error())
        lowest = min(t.trained.loss_auc for t in feasible)
        close = [t for t in feasible if t.trained.loss_auc <= lowest + self.opts["signal_tolerance"]]
        return min(close, key=lambda t: (self._stored_bits(t.bits), t.trained.loss_auc))

    def _sweep(self, best: Trial) -> Trial:
        """One greedy pass over the layers: each of a layer's widths, the other layers held."""
        for node in self.layers:
            widths = [self._try(best.lam, {**best.bits, node.name: b}) for b in self.candidates[node.name]]
            best = self._best_of([best, *widths])
        return best

    def _budget_error(self) -> str:
        top = max(self.trials, key=lambda t: t.trained.accuracy)
        tried = "; ".join(f"{describe(t.lam, t.bits)}: {t.trained.accuracy:.3f}" for t in self.trials)
        return (
            f"mia_quant: no configuration meets max_accuracy_drop = {self.opts['max_accuracy_drop']} on the "
            f"validation slice ({len(self.split.validation)} rows of x_train, float model "
            f"{self.float_measure.accuracy:.3f}). Tried (bits of {', '.join(n.name for n in self.layers)}): "
            f"{tried}. Best accuracy {top.trained.accuracy:.3f} (drop {top.drop:.3f}, {describe(top.lam, top.bits)}). "
            "Raise max_accuracy_drop, offer wider bits, or add a smaller lambda to lambdas"
        )

    def _result(self, best: Trial) -> Graph:
        g = best.graph.copy()
        for node in g.weighted_nodes(include_conv=True):
            node.annotations["weight_format"] = best.formats[node.inputs[1]].to_dict()  # lower keeps it
            node.annotations["mia_quant"] = {"bits": best.bits[node.name]}
        g.meta["mia_quant"] = self._meta(best)
        self.ctx.log(
            f"      mia_quant: chose {describe(best.lam, best.bits)}: accuracy {best.trained.accuracy:.3f} "
            f"(float {self.float_measure.accuracy:.3f}), loss AUC {best.trained.loss_auc:.3f} "
            f"(rounding alone {best.plain.loss_auc:.3f}, float {self.float_measure.loss_auc:.3f})"
        )
        return g

    def _meta(self, best: Trial) -> dict:
        recorded = ("membership_term", "lambdas", "init", "epochs", "lr", "batch_size", "signal_tolerance")
        return {
            "bits": dict(best.bits),
            "lambda_": best.lam,
            "chosen": self.trials.index(best),
            "max_accuracy_drop": self.opts["max_accuracy_drop"],
            "float": self.float_measure.to_dict(),
            "signal": "loss-threshold AUC of members against the validation slice (loss_gap: mean loss difference)",
            "candidates": [t.to_dict() for t in self.trials],
            "candidate_bits": {name: list(widths) for name, widths in self.candidates.items()},
            **{k: self.opts[k] for k in recorded},
            "sizes": {
                "members": len(self.split.members),
                "reference": len(self.split.reference),
                "validation": len(self.split.validation),
            },
        }


def describe(lam: float, bits: dict[str, int]) -> str:
    return f"lambda {lam:g}, {'/'.join(map(str, bits.values()))} bits"


def nearest(widths: list[int], width: int) -> int:
    """The layer's candidate width closest to `width` (the wider on a tie)."""
    return min(widths, key=lambda b: (abs(b - width), -b))
