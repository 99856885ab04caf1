"""Shadow models: the attacker's re-enactment of the target's training procedure.

Each shadow is the target's own float architecture with fresh weights (`exec.train.reinitialize`)
trained by the torch executor (`exec.train.train`) on half of the attacker's pool. Shadows come
in complementary pairs (shadow 2j trains on one random half, 2j+1 on the other), so every pool
point is IN exactly K/2 shadows and OUT of the other K/2 (for odd K the last shadow draws its own
half). Everything is seeded from one integer: same seed, same shadows, same numbers.

An adaptive audit (replay.py) then puts each shadow through the build's own passes and keeps
its outputs at every replayed checkpoint: `ShadowSet.replayed[stage]` is the shadow set as
built to that stage, so a target is attacked with shadows built exactly like it.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from compiler.audit.replay import Replay, replay, weight_sparsity
from compiler.data import is_regression, row_errors
from compiler.exec import class_logits, predict_logits
from compiler.exec.train import TrainConfig, reinitialize, train
from compiler.ir import Graph


@dataclass
class ShadowSet:
    logits: np.ndarray  # [K, n_pool, classes]: each shadow's logits on every pool point
    is_in: np.ndarray  # [K, n_pool] bool: the point was in that shadow's training set
    train_accuracy: list[float]  # per shadow, on its IN points (a regression: its MSE there)
    test_accuracy: list[float]  # per shadow, on its OUT points (a regression: its MSE there)
    config: TrainConfig
    seconds: float
    weight_sparsity: list[float] = field(default_factory=list)  # per shadow
    # adaptive audits: per replayed checkpoint ("03-lower"), the shadows as built to it
    replayed: dict[str, ShadowSet] = field(default_factory=dict)
    # the plain shadows themselves: a recipe is replayed on them (and on the same ones for every
    # build of one model and data that shares them through the audit's shadow cache)
    models: list[Graph] = field(default_factory=list, repr=False)
    score: str = "accuracy"  # what train_/test_accuracy hold: "accuracy", or a regression's "mse"

    @property
    def count(self) -> int:
        return len(self.logits)

    def training(self) -> dict:
        return {
            "train_size": int(self.is_in[0].sum()) if self.count else 0,
            "epochs": self.config.epochs,
            "lr": self.config.lr,
            "batch_size": self.config.batch_size,
            "weight_decay": self.config.weight_decay,
            "optimizer": f"Adam, {'MSE' if self.score == 'mse' else 'cross-entropy'} (exec.train)",
        }

    def summary(self) -> dict:
        """What the shadows became: compare with the target's train/test accuracy."""
        summary: dict[str, Any] = {
            "count": self.count,
            f"mean_train_{self.score}": round(float(np.mean(self.train_accuracy)), 6),
            f"mean_test_{self.score}": round(float(np.mean(self.test_accuracy)), 6),
            "mean_weight_sparsity": round(float(np.mean(self.weight_sparsity)), 6) if self.weight_sparsity else None,
        }
        if self.replayed:
            summary["replayed"] = {stage: shadows.summary() for stage, shadows in self.replayed.items()}
        return summary


def derived_seed(seed: int, *stream: int) -> int:
    """An independent 32-bit seed per purpose (design, shadow k) derived from the audit seed."""
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])


def membership_design(n_pool: int, count: int, seed: int) -> np.ndarray:
    """[count, n_pool] bool: complementary random halves, pair by pair."""
    rng = np.random.default_rng(derived_seed(seed, 1))
    half = n_pool // 2
    rows: list[np.ndarray] = []
    while len(rows) < count:
        chosen = np.zeros(n_pool, bool)
        chosen[rng.permutation(n_pool)[:half]] = True
        rows.append(chosen)
        if len(rows) < count and n_pool % 2 == 0:
            rows.append(~chosen)
    return np.array(rows[:count])


@contextmanager
def single_threaded():
    """One torch/BLAS/OpenMP thread: small models train several times faster that way than with
    threads that spin against each other (measured: 5 s vs 37 s per digits shadow on a busy
    2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def train_shadows(
    architecture: Graph,
    x_pool: np.ndarray,
    y_pool: np.ndarray,
    count: int,
    config: TrainConfig,
    seed: int,
    progress: bool = True,
    workers: int | None = 1,
    address: str | None = None,
) -> ShadowSet:
    """K shadows; with `workers` > 1 or a Ray `address`, each is a Ray task (compiler/parallel.py):
    shadow k's seeds derive from (seed, k) alone, so the numbers are those of the sequential run.
    An adaptive audit then puts them through the build's passes (replay_shadows)."""
    if count < 1:
        raise ValueError(f"train_shadows: count must be at least 1, got {count}")
    start = time.perf_counter()
    is_in = membership_design(len(x_pool), count, seed)
    calls = [(is_in[k], config, seed, k) for k in range(count)]
    done = _tasks(train_shadow, calls, (architecture, x_pool, y_pool), "shadow models", progress, workers, address)
    plain = _shadow_set([run for _, run in done], is_in, config, time.perf_counter() - start)
    plain.models = [model for model, _ in done]
    return plain


def replay_shadows(
    plain: ShadowSet,
    x_pool: np.ndarray,
    y_pool: np.ndarray,
    adaptive: Replay,
    seed: int,
    progress: bool = True,
    workers: int | None = 1,
    address: str | None = None,
) -> ShadowSet:
    """The plain shadows put through the build's passes (replay.py): a copy of `plain` whose
    `replayed` holds the shadow set at every replayed checkpoint."""
    start = time.perf_counter()
    calls = [(model, plain.is_in[k], adaptive, seed, k) for k, model in enumerate(plain.models)]
    done = _tasks(replay_shadow, calls, (x_pool, y_pool), "replaying the recipe", progress, workers, address)
    seconds = plain.seconds + time.perf_counter() - start
    replayed = {
        stage: _shadow_set([runs[stage] for runs in done], plain.is_in, plain.config, seconds)
        for stage in adaptive.stages
    }
    return dataclasses.replace(plain, replayed=replayed, seconds=seconds)


def _tasks(fn, calls: list[tuple], shared: tuple, desc: str, progress: bool, workers, address) -> list:
    """[fn(*shared, *call) for call in calls] through compiler.parallel, with a progress bar."""
    from compiler.parallel import map_tasks

    with tqdm(total=len(calls), desc=desc, disable=not progress) as bar:
        return map_tasks(fn, calls, shared=shared, workers=workers, address=address, on_done=lambda _: bar.update())


def _shadow_set(runs: list[ShadowRun], is_in: np.ndarray, config: TrainConfig, seconds: float) -> ShadowSet:
    return ShadowSet(
        np.array([r.logits for r in runs]),
        is_in,
        [r.train_accuracy for r in runs],
        [r.test_accuracy for r in runs],
        config,
        seconds,
        [r.weight_sparsity for r in runs],
        score="mse" if runs and runs[0].regression else "accuracy",
    )


@dataclass
class ShadowRun:
    """One shadow at one stage: its logits on the whole pool, its accuracy on its IN and its OUT
    points, the zero fraction of its weights."""

    logits: np.ndarray
    train_accuracy: float
    test_accuracy: float
    weight_sparsity: float
    regression: bool = False  # the accuracies are then MSEs


def train_shadow(
    architecture: Graph,
    x_pool: np.ndarray,
    y_pool: np.ndarray,
    is_in: np.ndarray,
    config: TrainConfig,
    seed: int,
    k: int,
) -> tuple[Graph, ShadowRun]:
    """Shadow k, trained on the pool points `is_in` on one thread: the model and its run."""
    with single_threaded():
        init = reinitialize(architecture, seed=derived_seed(seed, 2, k))
        model = train(init, x_pool[is_in], y_pool[is_in], config, seed=derived_seed(seed, 3, k))
        return model, _run(model, x_pool, y_pool, is_in)


def replay_shadow(
    x_pool: np.ndarray, y_pool: np.ndarray, model: Graph, is_in: np.ndarray, adaptive: Replay, seed: int, k: int
) -> dict[str, ShadowRun]:
    """Shadow k put through the build's passes on one thread, on its own IN points (its OUT
    points play x_test): its run after each replayed pass."""
    pool = (x_pool[is_in], y_pool[is_in], x_pool[~is_in], y_pool[~is_in])
    with single_threaded():
        return {
            stage: _run(graph, x_pool, y_pool, is_in)
            for stage, graph in replay(model, adaptive, *pool, seed=derived_seed(seed, 4, k))
        }


def _run(graph: Graph, x_pool: np.ndarray, y_pool: np.ndarray, is_in: np.ndarray) -> ShadowRun:
    if is_regression(graph):  # the outputs as they are; the score is the MSE
        out = predict_logits(graph, x_pool)
        errors = row_errors(out, y_pool)
        return ShadowRun(out, float(errors[is_in].mean()), float(errors[~is_in].mean()), weight_sparsity(graph), True)
    out = class_logits(graph, predict_logits(graph, x_pool))
    correct = np.argmax(out, axis=1) == y_pool
    return ShadowRun(out, float(correct[is_in].mean()), float(correct[~is_in].mean()), weight_sparsity(graph))
