"""admm: joint pruning and quantization by ADMM (ADMM-NN, Ren, Ye et al., ASPLOS 2019).

For every dense and conv2d layer W_l with a constraint set S_l (sparse, then sparse and quantized):

    minimise  loss(W) + sum_l rho/2 ||W_l - Z_l + U_l||^2
    every `update_every` steps:  Z_l <- proj_S_l(W_l + U_l);   U_l <- U_l + W_l - Z_l
    rho grows by `rho_growth` at each update (ADMM-NN's schedule: rho rises so W meets Z)

Phase 1 (prune): ADMM toward the sparse set, hard prune to proj_S(W), then retrain with the
mask fixed. Phase 2 (quantize, when `bits` is set): ADMM toward the set of masked weights on
the fixed-point grid Q(bits, f) (power-of-two scale, so `lower` keeps the levels exactly), hard
quantization, then a final retrain of the parameters that are still free (the biases: they
are quantized later at the accumulator's much finer scale).

The projections are exact: top-k magnitudes (irregular), top-k whole outputs (rows of a dense
weight, filters W[co] of a conv) or whole inputs (columns, input channels W[:, ci]) by L2 norm
(structured), nearest grid level with masked entries held at zero (quantized). A pruned output's
bias is held at zero too, so the output is exactly 0 and `remove_dead` (passes/shrink.py) can
delete it, with the next layer's inputs that read it, without changing the function.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import torch

from compiler.exec.train import Penalty, TrainConfig, train
from compiler.ir import FixedPoint, Graph, Node
from compiler.ops.formats import weight_format
from compiler.passes.base import Option, Pass, float_in, int_in, is_bool, one_of, register
from compiler.passes.shrink import remove_and_log

WHOLE_OUTPUTS = ("rows", "filters")  # dense rows / conv filters W[co]: same thing, either name
WHOLE_INPUTS = ("columns", "channels")  # dense columns / conv input channels W[:, ci]
STRUCTURES = ("irregular", *WHOLE_OUTPUTS, *WHOLE_INPUTS)


def layer_structure(node: Node, structure: str) -> str:
    """The structure as it applies to the layer: a depthwise conv's input channel c is its filter
    c (weight [C, 1, kH, kW]), so whole inputs are pruned as whole filters there."""
    depthwise = node.op == "conv2d" and node.attrs.get("group", 1) != 1
    return "filters" if depthwise and structure in WHOLE_INPUTS else structure


def _optional_bits(v):
    return None if v == 0 else int_in(2, 8)(v)


@register
class Admm(Pass):
    name = "admm"
    trains = True
    needs_data = True
    options = {
        "sparsity": Option(
            0.0, float_in(0.0, 1.0, hi_open=True), "fraction of weights pruned in each layer", per_layer=True
        ),
        "global_sparsity": Option(
            0.0,
            float_in(0.0, 1.0, hi_open=True),
            "one target over all layers, distributed by layer size (see docs/admm.md); "
            "used for layers without their own `sparsity`",
        ),
        "bits": Option(
            0, _optional_bits, "weight bits 2..8 after ADMM quantization (0: leave it to lower)", per_layer=True
        ),
        "structure": Option(
            "irregular",
            one_of(*STRUCTURES),
            "irregular (any weight); rows = filters (whole outputs: dense rows, conv filters); "
            "columns = channels (whole inputs: dense columns, conv input channels)",
            per_layer=True,
        ),
        "admm_epochs": Option(30, int_in(1, 10_000), "epochs of ADMM training per phase"),
        "retrain_epochs": Option(30, int_in(0, 10_000), "epochs of masked retraining after hard pruning"),
        "update_every": Option(0, int_in(0, 10**9), "steps between Z/U updates (0: once per epoch)"),
        "rho": Option(1e-2, float_in(1e-8, 1e4), "initial ADMM penalty"),
        "rho_growth": Option(1.2, float_in(1.0, 100.0), "rho multiplier at each Z/U update"),
        "lr": Option(3e-3, float_in(1e-7, 1.0), "Adam learning rate"),
        "batch_size": Option(64, int_in(1, 1 << 20), "minibatch size"),
        "remove_dead": Option(True, is_bool, "delete dead channels/neurons at the end (exact; docs/admm.md)"),
    }

    def apply(self, graph: Graph, ctx) -> Graph:
        targets = layer_targets(graph, ctx, self.name)
        if not targets:
            ctx.log(f"      {self.name}: no layer asks for pruning or quantization; nothing to do")
            return graph.copy()
        return AdmmRunner(graph, ctx, ctx.options(self.name), targets, pass_name=self.name).compress()


def warn_if_classes_pruned(graph: Graph, ctx, structures: dict[str, str], pass_name: str) -> None:
    """Pruning whole outputs of the last layer prunes classes: legal, but rarely meant (a
    pass-wide `structure = "filters"` reaches it too)."""
    layers = graph.weighted_nodes(include_conv=True)
    for node, structure in structures.items():
        if node == layers[-1].name and structure in WHOLE_OUTPUTS:
            ctx.log(
                f"      {pass_name}: warning: the last layer {node!r} prunes whole outputs "
                f"({structure}): that removes classes; give it its own structure or sparsity "
                f"in [{pass_name}.layers.{json.dumps(node)}]"
            )


@dataclass
class LayerTarget:
    node: str
    weight: str
    sparsity: float
    bits: int  # 0: no ADMM quantization
    structure: str


def layer_targets(graph: Graph, ctx, pass_name: str = "admm") -> dict[str, LayerTarget]:
    """Per-layer goals: the layer's own options, else the global sparsity spread by size.
    `pass_name` is whose recipe table is read (`admm`, or a pass built on it: `privacy_admm`).
    Dense and conv2d layers alike; the global target is spread over both by size."""
    layers = graph.weighted_nodes(include_conv=True)
    shares = distribute_global_sparsity(
        [graph.params[n.inputs[1]].size for n in layers], ctx.options(pass_name)["global_sparsity"]
    )
    pass_table = ctx.recipe.get(pass_name, {})
    layer_tables = pass_table.get("layers", {})
    targets = {}
    for node, global_share in zip(layers, shares):
        opts = ctx.layer_options(pass_name, node.name)
        explicit = "sparsity" in layer_tables.get(node.name, {}) or "sparsity" in pass_table
        sparsity = opts["sparsity"] if explicit else global_share
        if sparsity > 0 or opts["bits"]:
            targets[node.name] = LayerTarget(
                node.name,
                node.inputs[1],
                float(sparsity),
                int(opts["bits"] or 0),
                layer_structure(node, opts["structure"]),
            )
    return targets


def distribute_global_sparsity(sizes: list[int], target: float) -> list[float]:
    """Spread one sparsity target over layers: kept weights proportional to sqrt(layer size),
    so large layers (the most redundant, as ADMM-NN observes for FC layers) are pruned hardest,
    and the total kept fraction is exactly 1 - target (no layer keeps more than it has)."""
    if target <= 0:
        return [0.0] * len(sizes)
    sizes_arr = np.asarray(sizes, dtype=np.float64)
    budget = (1 - target) * sizes_arr.sum()
    keep = np.zeros_like(sizes_arr)
    free = np.ones(len(sizes), bool)
    while True:  # water-filling: layers that would keep everything are capped at their size
        share = np.sqrt(sizes_arr) * free
        keep_free = (budget - keep[~free].sum()) * share / share.sum()
        capped = free & (keep_free >= sizes_arr)
        if not capped.any():
            keep[free] = keep_free[free]
            break
        keep[capped] = sizes_arr[capped]
        free &= ~capped
    return [float(1 - k / s) for k, s in zip(keep, sizes_arr)]


# ---- projections ----------------------------------------------------------------------------
def project_sparse(w: np.ndarray, sparsity: float, structure: str) -> np.ndarray:
    """Euclidean projection onto {W : at most (1 - sparsity) of the weights / whole outputs /
    whole inputs nonzero}. W is a dense [n_out, n_in] or a conv [C_out, C_in, kH, kW] weight.
    At least one weight (slice) is kept: a layer with none left is a constant, and a first conv
    on a one-channel image would lose its only input to a pass-wide `channels`."""
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {', '.join(STRUCTURES)}, got {structure!r}")
    if sparsity <= 0:
        return w.copy()
    if structure == "irregular":
        keep = max(1, w.size - int(round(sparsity * w.size)))
        mask = np.zeros(w.size, bool)
        mask[np.argsort(-np.abs(w), axis=None, kind="stable")[:keep]] = True
        return w * mask.reshape(w.shape)
    axis = 0 if structure in WHOLE_OUTPUTS else 1  # the axis whose slices are kept or pruned whole
    norms = np.linalg.norm(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1), axis=1)
    keep = max(1, len(norms) - int(round(sparsity * len(norms))))
    chosen = np.zeros(len(norms), bool)
    chosen[np.argsort(-norms, kind="stable")[:keep]] = True
    return w * chosen.reshape([-1 if i == axis else 1 for i in range(w.ndim)])


def live_outputs(w: np.ndarray) -> np.ndarray:
    """Per output (dense row, conv filter): does any of its weights remain nonzero."""
    return np.asarray(w.reshape(w.shape[0], -1).any(axis=1))


def pruned_bias_masks(graph: Graph, layers: dict[str, str]) -> dict[str, np.ndarray]:
    """{bias name: mask} for the layers given as {node name: structure} that prune whole outputs:
    a pruned output's bias is held at zero, so the output is exactly zero (and removable)."""
    masks = {}
    for node in graph.weighted_nodes(include_conv=True):
        if layers.get(node.name) in WHOLE_OUTPUTS and len(node.inputs) > 2:
            masks[node.inputs[2]] = live_outputs(graph.params[node.inputs[1]])
    return masks


def project_quantized(w: np.ndarray, mask: np.ndarray | float, fmt: FixedPoint) -> np.ndarray:
    """Nearest point with masked-out weights at zero and the rest on Q(bits, frac)'s levels
    (`mask` 1.0: nothing masked)."""
    levels = np.clip(np.rint(w * 2.0**fmt.frac), fmt.min_int, fmt.max_int)
    return (levels * 2.0**-fmt.frac * mask).astype(w.dtype)


# ---- the ADMM loop --------------------------------------------------------------------------
class AdmmRunner:
    """The two ADMM phases and their retraining, all through exec.train.

    `extra_penalty` (an exec.train Penalty, e.g. minmax.MinMaxGame.penalty) is added to every
    training objective the runner builds: both ADMM phases (next to rho/2 ||W - Z + U||^2), the
    masked retraining and the bias retraining. `data` overrides ctx.data as the training set
    (its x_train/y_train are trained on), e.g. to hold a reference set out."""

    def __init__(
        self,
        graph: Graph,
        ctx,
        opts: dict,
        targets: dict[str, LayerTarget],
        extra_penalty: Penalty | None = None,
        data=None,
        pass_name: str = "admm",
    ):
        self.graph, self.ctx, self.opts, self.targets = graph, ctx, opts, targets
        self.data = ctx.data if data is None else data
        self.extra_penalty = extra_penalty
        self.formats: dict[str, FixedPoint] = {}
        self.pass_name = pass_name

    def compress(self) -> Graph:
        """Prune, then quantize where a layer asks for bits, annotate the result, and (option
        `remove_dead`) delete the channels pruning left dead."""
        warn_if_classes_pruned(self.graph, self.ctx, self._pruned_structures(), self.pass_name)
        pruned = self.prune()
        result = self.quantize(pruned) if any(t.bits for t in self.targets.values()) else pruned
        result = _annotate(result, self.targets, self.formats)
        return remove_and_log(result, self.ctx, self.pass_name) if self.opts["remove_dead"] else result

    def _config(self, epochs: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=self.opts["batch_size"], lr=self.opts["lr"])

    def prune(self) -> Graph:
        goals = {
            t.weight: (lambda w, t=t: project_sparse(w, t.sparsity, t.structure))
            for t in self.targets.values()
            if t.sparsity > 0
        }
        if not goals:
            return self.graph
        g = self._admm(self.graph, goals, masks=None, desc="admm prune")
        for name, project in goals.items():  # hard prune onto the sparse set
            g.params[name] = project(g.params[name]).astype(np.float32)
        for name, mask in self._bias_masks(g).items():  # pruned outputs' biases to zero, held there below
            g.params[name] = g.params[name] * mask
        masks = self._masks(g)
        if self.opts["retrain_epochs"]:
            g = train(
                g,
                self.data.x_train,
                self.data.y_train,
                self._config(self.opts["retrain_epochs"]),
                seed=self.ctx.seed + 1,
                penalty=self.extra_penalty,
                after_step=self._apply_masks(masks, {}),
                progress=self.ctx.progress,
                desc="masked retrain",
            )
        return g

    def quantize(self, g: Graph) -> Graph:
        masks = self._masks(g)
        goals = {}
        for t in self.targets.values():
            if t.bits:
                fmt = weight_format(g.params[t.weight], t.bits)
                self.formats[t.weight] = fmt
                goals[t.weight] = lambda w, m=masks[t.weight], f=fmt: project_quantized(w, m, f)
        g = self._admm(g, goals, masks=masks, desc="admm quantize")
        for name, project in goals.items():  # hard quantization onto the grid
            g.params[name] = project(g.params[name]).astype(np.float32)
        frozen = {name: g.params[name].copy() for name in goals}
        if self.opts["retrain_epochs"]:
            g = train(
                g,
                self.data.x_train,
                self.data.y_train,
                self._config(self.opts["retrain_epochs"]),
                seed=self.ctx.seed + 3,
                penalty=self.extra_penalty,
                after_step=self._apply_masks(masks, frozen),
                progress=self.ctx.progress,
                desc="retrain biases",
            )
        return g

    def _masks(self, g: Graph) -> dict[str, np.ndarray]:
        """Weights held at zero where they are zero; biases of pruned whole outputs too."""
        return {**{t.weight: (g.params[t.weight] != 0) for t in self.targets.values()}, **self._bias_masks(g)}

    def _bias_masks(self, g: Graph) -> dict[str, np.ndarray]:
        return pruned_bias_masks(g, self._pruned_structures())

    def _pruned_structures(self) -> dict[str, str]:
        return {t.node: t.structure for t in self.targets.values() if t.sparsity > 0}

    def _apply_masks(self, masks: dict, frozen: dict):
        """After each optimizer step: pruned weights (and biases) back to zero, quantized weights to
        their levels."""

        def after_step(module, step):
            for name, mask in masks.items():
                p = module.param(name)
                if name in frozen:
                    p.copy_(torch.from_numpy(frozen[name]))
                else:
                    p.mul_(torch.from_numpy(mask.astype(np.float32)))

        return after_step

    def _admm(self, g: Graph, goals: dict, masks: dict | None, desc: str) -> Graph:
        """ADMM iterations: train with the augmented-Lagrangian penalty, update Z and U."""
        z = {n: goals[n](g.params[n]) for n in goals}
        u = {n: np.zeros_like(g.params[n]) for n in goals}
        state = {"rho": self.opts["rho"]}
        steps_per_epoch = math.ceil(len(self.data.x_train) / self.opts["batch_size"])
        every = self.opts["update_every"] or steps_per_epoch
        targets = {n: torch.from_numpy((z[n] - u[n]).astype(np.float32)) for n in goals}

        def penalty(module, step):
            admm = sum(state["rho"] / 2 * ((module.param(n) - targets[n]) ** 2).sum() for n in goals)
            return admm if self.extra_penalty is None else admm + self.extra_penalty(module, step)

        def after_step(module, step):
            if masks is not None:
                for n, m in masks.items():
                    module.param(n).mul_(torch.from_numpy(m.astype(np.float32)))
            if (step + 1) % every == 0:
                for n in goals:
                    w = module.param(n).detach().numpy()
                    z[n] = goals[n](w + u[n])
                    u[n] = u[n] + w - z[n]
                    targets[n] = torch.from_numpy((z[n] - u[n]).astype(np.float32))
                state["rho"] *= self.opts["rho_growth"]

        return train(
            g,
            self.data.x_train,
            self.data.y_train,
            self._config(self.opts["admm_epochs"]),
            seed=self.ctx.seed,
            penalty=penalty,
            after_step=after_step,
            progress=self.ctx.progress,
            desc=desc,
        )


def _annotate(g: Graph, targets: dict[str, LayerTarget], formats: dict[str, FixedPoint]) -> Graph:
    """Per layer: target and reached sparsity (of the layer as pruned, before any channel
    removal) and, where ADMM quantized it, the weight grid."""
    g = g.copy()
    for node in g.weighted_nodes(include_conv=True):
        t = targets.get(node.name)
        if t is None:
            continue
        w = g.params[t.weight]
        node.annotations["admm"] = {
            "target_sparsity": t.sparsity,
            "structure": t.structure,
            "sparsity": round(float(np.mean(w == 0)), 6),
        }
        if t.weight in formats:  # lower keeps these levels exactly
            node.annotations["weight_format"] = formats[t.weight].to_dict()
    return g
