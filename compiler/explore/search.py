"""Which point to build next: the whole grid, or (`--budget N`) a multi-objective search.

Both proposers answer `next()` (a point to build, or None: nothing more for now) and `tell(point,
values)` (its objective values; None for a failed point).

The search uses Optuna's ask-and-tell interface with its multi-objective TPE sampler (MOTPE,
Ozaki et al. 2020/2022), with `constant_liar` so that points asked for while others still build
are spread out. Each axis is a categorical parameter (the index of its value). Why Optuna, why
TPE: see docs/explore.md ("Budgeted search").
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterable

from compiler.explore.space import Point, Space

MAX_ASKS = 64  # proposals in a row that name a point already known, before one is drawn at random


class GridProposer:
    """Every point of the grid not built yet, in grid order."""

    def __init__(self, points: Iterable[Point], done: set[str]):
        self.points = [p for p in points if p.id not in done]
        self.total = len(self.points) + len(done)

    def next(self) -> Point | None:
        return self.points.pop(0) if self.points else None

    def tell(self, point: Point, values: list[float] | None) -> None:
        pass


class OptunaProposer:
    """Up to `budget` points of the space (those already built count), chosen by MOTPE."""

    def __init__(self, space: Space, budget: int, known: dict[str, list[float] | None], seed: int = 0):
        import optuna

        self.optuna = optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = space
        self.by_index = {ix: space.point(ix) for ix in space.indices()}
        self.distributions: dict[str, optuna.distributions.BaseDistribution] = {
            a.name: optuna.distributions.CategoricalDistribution(list(range(len(a.values)))) for a in space.axes
        }
        self.known = {p.id: known[p.id] for p in self.by_index.values() if p.id in known}
        self.total = min(budget, len(self.by_index))
        self.running: dict[str, list] = {}  # point id -> the trials waiting for its values
        self.rng = random.Random(seed)
        startup = max(2, min(10, self.total // 3))  # random proposals before TPE models the results
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # constant_liar
            sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=startup)
        self.study = optuna.create_study(
            directions=["maximize" if o.sign > 0 else "minimize" for o in space.objectives], sampler=sampler
        )
        for ix, point in self.by_index.items():  # what earlier runs built, the sampler knows
            if point.id in self.known:
                values = self.known[point.id]
                self.study.add_trial(
                    optuna.trial.create_trial(
                        params=self._params(ix),
                        distributions=self.distributions,
                        values=values,
                        state=optuna.trial.TrialState.COMPLETE if values else optuna.trial.TrialState.FAIL,
                    )
                )

    def _params(self, ix: tuple[int, ...]) -> dict:
        return {a.name: i for a, i in zip(self.space.axes, ix)}

    def next(self) -> Point | None:
        if len(self.known) + len(self.running) >= self.total:
            return None
        for _ in range(MAX_ASKS):
            trial = self.study.ask(self.distributions)
            point = self.by_index[tuple(trial.params[a.name] for a in self.space.axes)]
            if point.id in self.known:  # proposed again: the sampler hears its values again
                self._tell(trial, self.known[point.id])
            elif point.id in self.running:
                self.running[point.id].append(trial)
            else:
                self.running[point.id] = [trial]
                return point
        fresh = [ix for ix, p in self.by_index.items() if p.id not in self.known and p.id not in self.running]
        if not fresh:
            return None
        ix = self.rng.choice(fresh)
        self.study.enqueue_trial(self._params(ix))
        trial = self.study.ask(self.distributions)
        point = self.by_index[ix]
        self.running[point.id] = [trial]
        return point

    def tell(self, point: Point, values: list[float] | None) -> None:
        self.known[point.id] = values
        for trial in self.running.pop(point.id, []):
            self._tell(trial, values)

    def _tell(self, trial, values: list[float] | None) -> None:
        if values is None:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, values)
