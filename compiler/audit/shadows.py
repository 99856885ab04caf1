"""Shadow models: the attacker's re-enactment of the target's training procedure.

Each shadow is the target's own float architecture with fresh weights (`exec.train.reinitialize`)
trained by the torch executor (`exec.train.train`) on half of the attacker's pool. Shadows come
in complementary pairs (shadow 2j trains on one random half, 2j+1 on the other), so every pool
point is IN exactly K/2 shadows and OUT of the other K/2 (for odd K the last shadow draws its own
half). Everything is seeded from one integer: same seed, same shadows, same numbers.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from compiler.exec import class_logits, predict_logits
from compiler.exec.train import TrainConfig, reinitialize, train
from compiler.ir import Graph


@dataclass
class ShadowSet:
    logits: np.ndarray  # [K, n_pool, classes]: each shadow's logits on every pool point
    is_in: np.ndarray  # [K, n_pool] bool: the point was in that shadow's training set
    train_accuracy: list[float]  # per shadow, on its IN points
    test_accuracy: list[float]  # per shadow, on its OUT points
    config: TrainConfig
    seconds: float

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
            "optimizer": "Adam, cross-entropy (exec.train)",
        }

    def summary(self) -> dict:
        """What the shadows became: compare with the target's train/test accuracy."""
        return {
            "count": self.count,
            "mean_train_accuracy": round(float(np.mean(self.train_accuracy)), 6),
            "mean_test_accuracy": round(float(np.mean(self.test_accuracy)), 6),
        }


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
    shadow k's seeds derive from (seed, k) alone, so the numbers are those of the sequential run."""
    from compiler.parallel import map_tasks

    start = time.perf_counter()
    is_in = membership_design(len(x_pool), count, seed)
    with tqdm(total=count, desc="shadow models", disable=not progress) as bar:
        done = map_tasks(
            train_shadow,
            [(is_in[k], config, seed, k) for k in range(count)],
            shared=(architecture, x_pool, y_pool),
            workers=workers,
            address=address,
            on_done=lambda _: bar.update(),
        )
    logits = [out for out, _, _ in done]
    train_acc, test_acc = [a for _, a, _ in done], [a for _, _, a in done]
    return ShadowSet(np.array(logits), is_in, train_acc, test_acc, config, time.perf_counter() - start)


def train_shadow(
    architecture: Graph,
    x_pool: np.ndarray,
    y_pool: np.ndarray,
    is_in: np.ndarray,
    config: TrainConfig,
    seed: int,
    k: int,
) -> tuple[np.ndarray, float, float]:
    """Shadow k, trained on the pool points `is_in` on one thread: (its logits on the whole pool,
    its accuracy on its IN points, on its OUT points)."""
    with single_threaded():
        init = reinitialize(architecture, seed=derived_seed(seed, 2, k))
        model = train(init, x_pool[is_in], y_pool[is_in], config, seed=derived_seed(seed, 3, k))
        out = class_logits(model, predict_logits(model, x_pool))
    correct = np.argmax(out, axis=1) == y_pool
    return out, float(correct[is_in].mean()), float(correct[~is_in].mean())
