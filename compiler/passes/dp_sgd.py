"""dp_sgd: differentially private training (Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar,
Zhang, "Deep Learning with Differential Privacy", CCS 2016), with Opacus.

Each step draws a Poisson sample of x_train (every example independently with probability
q = batch_size / n), computes every example's gradient, clips each to L2 norm `max_grad_norm`,
sums them, adds Gaussian noise of standard deviation noise_multiplier * max_grad_norm and
divides by the expected batch size. The noise multiplier is the smallest one for which Opacus'
RDP accountant (the moments accountant's successor) proves (epsilon, delta)-DP after all steps;
the epsilon actually spent is read back from the accountant after training.

Choices (docs/audit.md, "Defense: the dp_sgd pass"):
- It trains on x_train only. x_test is the audit's non-members: training on it would make
  the audit flatter than the truth.
- `init = "reinitialize"` (default) starts from fresh weights (exec.train.reinitialize, seeded
  from ctx.seed), so the guarantee covers the whole model. `init = "current"` fine-tunes the
  graph's weights: epsilon then covers the fine-tuning only, since the starting weights already
  saw the data without any guarantee.
- `epsilon = inf` is the control of a benchmark sweep: the same procedure (Poisson sampling,
  per-example clipping) without noise. It has no guarantee; meta records epsilon as "inf".
- `delta` left out means 1/n (TOML has no null): the customary upper end; smaller is stronger.
- The optimizer is Adam on the privatized gradient (DP-Adam). Adam scales each coordinate by
  its running gradient magnitude, so one learning rate works across the noise levels that
  different epsilons bring, where DP-SGD's rate must be re-tuned per noise level; it is also the
  optimizer of the project's non-private training (exec.train), so lr means the same thing.
  Adam only post-processes the noised gradient: the guarantee is unchanged.
- Opacus computes per-example gradients module by module; the torch executor's GraphModule
  applies its parameters with functional ops, so no nn.Linear/Conv2d of it ever runs.
  `WholeGraphLayer` presents the whole graph to Opacus as one layer, whose per-example
  gradients Opacus' functorch sampler computes (vmap of grad): exact for any graph the
  executor runs, dense or convolutional.
- Deterministic: the sampler and the noise draw from generators seeded from ctx.seed (Opacus'
  secure_mode is off: its cryptographic generator cannot be seeded), under fixed_threads().
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.grad_sample import GradSampleModule
from opacus.optimizers import DPOptimizer
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from tqdm.auto import tqdm

from compiler.data import is_regression
from compiler.exec.torch import GraphModule, fixed_threads, logits_module
from compiler.exec.train import reinitialize, training_logits, with_params
from compiler.ir import Graph, binary_output
from compiler.passes.base import Option, Pass, PassError, float_in, int_in, one_of, register

ACCOUNTANT = "rdp"
MAX_EPSILON = 1e4  # a larger epsilon promises nothing; inf is the no-noise control


def _epsilon_check(v) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (0 < v <= MAX_EPSILON or v == math.inf)
    return None if ok else f"must be a number in (0, {MAX_EPSILON:g}] or inf (no noise), got {v!r}"


def _delta_check(v) -> str | None:
    ok = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1)
    return None if ok else f"must be a number in (0, 1) (leave it out for 1/n), got {v!r}"


def _positive_check(v) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf
    return None if ok else f"must be a number > 0, got {v!r}"


@dataclass(frozen=True)
class DpPlan:
    """What the accountant is told: the whole training, fixed before the first step."""

    target_epsilon: float
    delta: float
    max_grad_norm: float
    epochs: int
    batch_size: int
    lr: float
    n: int
    sample_rate: float
    steps: int
    noise_multiplier: float


@register
class DpSgd(Pass):
    name = "dp_sgd"
    needs_data = True
    trains = True
    options = {
        "epsilon": Option(4.0, _epsilon_check, "target epsilon of (epsilon, delta)-DP; inf: clipping without noise"),
        "delta": Option(None, _delta_check, "target delta (default: 1/n, n = training-set size)"),
        "max_grad_norm": Option(1.0, _positive_check, "per-example gradient clipping norm (L2, whole model)"),
        "epochs": Option(30, int_in(1, 10_000), "epochs (each of round(1 / sample_rate) Poisson-sampled steps)"),
        "lr": Option(3e-3, float_in(1e-7, 1.0), "DP-Adam learning rate"),
        "batch_size": Option(64, int_in(1, 1 << 20), "expected batch size: sample rate = batch_size / n"),
        "init": Option(
            "reinitialize",
            one_of("reinitialize", "current"),
            "reinitialize: fresh weights, epsilon covers the model; current: fine-tune, epsilon covers the fine-tuning",
        ),
    }

    def apply(self, graph: Graph, ctx) -> Graph:
        if not graph.params:
            raise PassError(f"{self.name}: the graph has no parameters to train")
        opts = ctx.options(self.name)
        x, y = ctx.data.x_train, ctx.data.y_train
        plan = plan_training(opts, len(x))
        init_seed, sample_seed, noise_seed = (
            int(s) for s in np.random.SeedSequence([ctx.seed, 0xD9]).generate_state(3)
        )
        start = reinitialize(graph, init_seed) if opts["init"] == "reinitialize" else graph
        with fixed_threads():
            params, spent = train_private(start, x, y, plan, sample_seed, noise_seed, ctx.progress)
        trained = with_params(graph, params)
        kept = kept_from_input(graph, start, opts["init"])
        trained.meta[self.name] = describe(plan, spent, opts["init"], kept)
        if kept:
            ctx.log(
                f"      dp_sgd: warning: reinitialize keeps {', '.join(kept)} (run canonicalize first to fold them): "
                "they start from data-trained values that the guarantee does not cover"
            )
        ctx.log(
            f"      dp_sgd: {plan.steps} steps on {plan.n} examples, noise multiplier {plan.noise_multiplier:.3f}, "
            f"epsilon spent {_shown(spent)} (target {_shown(plan.target_epsilon)}) at delta {plan.delta:.3g}"
        )
        return trained


def plan_training(opts: dict, n: int) -> DpPlan:
    sample_rate = min(1.0, opts["batch_size"] / n)
    steps = opts["epochs"] * max(1, round(1 / sample_rate))
    delta = opts["delta"] if opts["delta"] is not None else 1.0 / n
    return DpPlan(
        target_epsilon=float(opts["epsilon"]),
        delta=float(delta),
        max_grad_norm=float(opts["max_grad_norm"]),
        epochs=opts["epochs"],
        batch_size=opts["batch_size"],
        lr=float(opts["lr"]),
        n=n,
        sample_rate=sample_rate,
        steps=steps,
        noise_multiplier=noise_multiplier_for(float(opts["epsilon"]), float(delta), sample_rate, steps),
    )


def noise_multiplier_for(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The smallest noise multiplier whose `steps` sampled Gaussian steps are (epsilon, delta)-DP
    (within the accountant's search tolerance of 0.01, always on the safe side)."""
    if epsilon == math.inf:
        return 0.0
    try:
        with warnings.catch_warnings():
            # "optimal order is the largest/smallest alpha": the bound is then looser, still valid
            warnings.filterwarnings("ignore", message="Optimal order")
            return float(
                get_noise_multiplier(
                    target_epsilon=epsilon,
                    target_delta=delta,
                    sample_rate=sample_rate,
                    steps=steps,
                    accountant=ACCOUNTANT,
                )
            )
    except ValueError as e:
        raise PassError(
            f"dp_sgd: epsilon {epsilon:g} is too small: the {ACCOUNTANT} accountant finds no noise multiplier "
            f"that reaches it in {steps} steps at sample rate {sample_rate:.4g} and delta {delta:.3g} ({e}); "
            "raise epsilon or delta, or train fewer epochs"
        ) from None


class WholeGraphLayer(torch.nn.Module):
    """The whole graph as one Opacus layer. Opacus hooks the modules that hold parameters
    directly; GraphModule keeps its own in a ParameterDict whose forward never runs. This module
    holds the same Parameter objects directly (so the optimizer's updates land in the
    GraphModule) and evaluates the graph with them through torch.func.functional_call, which
    Opacus' functorch sampler can vmap per example."""

    graph_module: GraphModule

    def __init__(self, graph_module: GraphModule):
        super().__init__()
        self.inner_names: dict[str, str] = {}
        for i, (name, param) in enumerate(graph_module.named_parameters()):
            self.register_parameter(f"w{i}", param)
            self.inner_names[f"w{i}"] = name
        # a plain attribute, not a submodule: Opacus must see one layer, with all the parameters
        object.__setattr__(self, "graph_module", graph_module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = {inner: getattr(self, own) for own, inner in self.inner_names.items()}
        return torch.func.functional_call(self.graph_module, params, (x,))


def train_private(
    graph: Graph, x: np.ndarray, y: np.ndarray, plan: DpPlan, sample_seed: int, noise_seed: int, progress: bool
) -> tuple[dict[str, np.ndarray], float]:
    """DP-Adam from the graph's weights; (trained parameters, epsilon spent)."""
    module = logits_module(graph).train()
    layer = WholeGraphLayer(module)
    per_example = GradSampleModule(layer, batch_first=True, loss_reduction="mean", force_functorch=True)
    optimizer = DPOptimizer(
        torch.optim.Adam(layer.parameters(), lr=plan.lr),
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=plan.max_grad_norm,
        expected_batch_size=plan.sample_rate * plan.n,
        loss_reduction="mean",
        generator=torch.Generator().manual_seed(noise_seed),
        secure_mode=False,
    )
    accountant = RDPAccountant()
    optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=plan.sample_rate))
    batches = UniformWithReplacementSampler(
        num_samples=plan.n,
        sample_rate=plan.sample_rate,
        generator=torch.Generator().manual_seed(sample_seed),
        steps=plan.steps,
    )
    to_class_logits = training_logits(binary_output(graph))
    regression = is_regression(graph)  # MSE on float targets: each row's loss is its mean squared error
    xt = torch.from_numpy(np.array(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.float32 if regression else np.int64))
    yt = yt.reshape(len(yt), -1) if regression else yt
    with warnings.catch_warnings():
        # the input needs no gradient, so torch says the layer's backward hook sees outputs only:
        # the output gradient is all Opacus reads
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for idx in tqdm(batches, desc="dp_sgd", disable=not progress, leave=False):
            optimizer.zero_grad()
            if idx:
                out = per_example(xt[idx])
                loss = (
                    F.mse_loss(out.flatten(1), yt[idx])
                    if regression
                    else F.cross_entropy(to_class_logits(out), yt[idx])
                )
                loss.backward()
            else:  # an empty Poisson sample is still a step: noise only, and the accountant counts it
                for p in layer.parameters():
                    p.grad_sample = torch.zeros((0, *p.shape))  # type: ignore[attr-defined]  # Opacus' field
            optimizer.step()
    per_example.remove_hooks()
    return module.export_params(), spent_epsilon(accountant, plan)


def spent_epsilon(accountant: RDPAccountant, plan: DpPlan) -> float:
    if plan.noise_multiplier == 0:
        return math.inf
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order")
        return float(accountant.get_epsilon(delta=plan.delta))


def kept_from_input(graph: Graph, start: Graph, init: str) -> list[str]:
    """Parameters that reinitialize leaves as they were (an explicit bias_add or batchnorm of a
    graph that was not canonicalized): they start from data-trained values, outside the guarantee."""
    if init != "reinitialize":
        return []
    return [name for name in graph.params if np.array_equal(graph.params[name], start.params[name])]


def _shown(epsilon: float) -> str:
    return "inf" if epsilon == math.inf else f"{epsilon:.3f}"


def _json_epsilon(epsilon: float) -> float | str:
    """JSON has no infinity: an unbounded epsilon is written "inf"."""
    return "inf" if epsilon == math.inf else epsilon


def describe(plan: DpPlan, spent: float, init: str, kept: list[str]) -> dict:
    """graph.meta["dp_sgd"]: the guarantee and the training it covers."""
    return {
        "epsilon": _json_epsilon(spent),
        "target_epsilon": _json_epsilon(plan.target_epsilon),
        "delta": plan.delta,
        "noise_multiplier": plan.noise_multiplier,
        "max_grad_norm": plan.max_grad_norm,
        "epochs": plan.epochs,
        "lr": plan.lr,
        "batch_size": plan.batch_size,
        "sample_rate": plan.sample_rate,
        "steps": plan.steps,
        "init": init,
        "covers": "the whole model" if init == "reinitialize" else "the fine-tuning only (the start saw the data)",
        "accountant": ACCOUNTANT,
        "trained_on": plan.n,
        **({"kept_from_input": kept} if kept else {}),
    }
