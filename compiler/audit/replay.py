"""The adaptive attacker: a build's recipe replayed on every shadow model.

A non-adaptive attacker trains its shadows with the plain procedure; a defended or compressed
target then differs from them in more than membership, and a calibration made on plain shadows
misreads it (defenses look better than they are). The adaptive attacker knows the recipe: each
shadow, once trained, goes through the build's own passes (magnitude_prune, admm, privacy_admm,
minmax, dp_sgd, mia_quant, circulant, lower, ...) with the build's recipe, on the shadow's own
training half, so every calibration comes from models built exactly like the attacked one.

What is replayed: report.json's `passes` after the checkpoint the shadows copy (the
canonicalized one when the flow has it), hardware-only passes (plan) left out since they change
no output; report.json's `recipe` gives every option. The passes' randomness takes a per-shadow
seed (the target's own seed is not the attacker's to know, nor needed: it only picks one draw of
the procedure). The shadow's OUT half plays x_test: passes only score on it, never train on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.build import Build, open_build
from compiler.data import Dataset
from compiler.errors import MpcError
from compiler.ir import Graph
from compiler.jsonsafe import from_json as recipe_from_json
from compiler.passes.base import Context, get_pass


class ReplayError(MpcError, ValueError):
    """The build's recipe cannot be replayed; the message says why."""


@dataclass(frozen=True)
class Replay:
    start: str  # the checkpoint the shadows copy, e.g. "01-canonicalize"
    passes: tuple[str, ...]  # the passes replayed after it, in flow order
    stages: tuple[str, ...]  # their checkpoint names in the build ("02-admm", "03-lower")
    recipe_json: str  # the build's recipe, as JSON: hashable and cheap to ship to a Ray worker
    target: str

    @property
    def recipe(self) -> dict:
        return recipe_from_json(json.loads(self.recipe_json))

    @property
    def trains(self) -> bool:
        """Whether replaying costs a training per shadow (the audit's `adaptive=None` skips it then)."""
        return any(get_pass(name).trains for name in self.passes)

    def describe(self) -> dict:
        """For audit.json: strict JSON, so the recipe as report.json holds it."""
        recipe = json.loads(self.recipe_json)
        return {"from": f"checkpoints/{self.start}", "passes": list(self.passes), "recipe": recipe}

    def stage_for(self, source: str) -> str:
        """The replayed stage whose shadows match a target read from `source` ("." or
        "checkpoints/NN-name"): the last one at or before it; the plain shadows' `start` when
        none is (the imported model, or a checkpoint before the first replayed pass)."""
        if source == ".":
            return self.stages[-1] if self.stages else self.start
        index = _checkpoint_index(Path(source).name)
        before = [s for s in self.stages if _checkpoint_index(s) <= index]
        return before[-1] if before else self.start


def _checkpoint_index(name: str) -> int:
    return int(name.split("-", 1)[0])


def build_replay(build: Build | str | Path, start_source: str) -> Replay:
    """The replay of a build (opened, or its folder) for shadows that copy `start_source`
    ("checkpoints/NN-name", from targets.shadow_architecture), from its checked report.json."""
    if not isinstance(build, Build):
        build = open_build(build)
    path, report = build.out / "report.json", build.report
    if "recipe" not in report:
        raise ReplayError(
            f"{path}: no recipe recorded (the build predates `mpc audit --adaptive`); recompile it to "
            "audit it adaptively, or pass --no-adaptive"
        )
    if not isinstance(report["recipe"], dict):
        raise ReplayError(f"{path}: its recorded recipe is not a table; recompile the build")
    names = [p["name"] for p in report.get("passes", [])]
    start = Path(start_source).name
    after = _checkpoint_index(start)  # the passes after the checkpoint the shadows copy
    kept = [
        (name, f"{i:02d}-{name}")
        for i, name in enumerate(names, start=1)
        if i > after and not get_pass(name).hardware_only
    ]
    return Replay(
        start=start,
        passes=tuple(name for name, _ in kept),
        stages=tuple(stage for _, stage in kept),
        recipe_json=json.dumps(report["recipe"]),
        target=report.get("target", "fpga"),
    )


def replay(
    model: Graph, plan: Replay, x_in: np.ndarray, y_in: np.ndarray, x_out: np.ndarray, y_out: np.ndarray, seed: int
) -> Iterator[tuple[str, Graph]]:
    """(stage, graph) after each replayed pass, on a shadow trained on (x_in, y_in)."""
    data = Dataset(x_in, y_in, x_out, y_out, "")
    ctx = Context(data=data, recipe=plan.recipe, target=plan.target, seed=seed, log=_quiet, progress=False)
    graph = model
    for name, stage in zip(plan.passes, plan.stages):
        graph = get_pass(name).run(graph, ctx)
        yield stage, graph


def _quiet(_message: str) -> None:
    """K shadows replaying a recipe would repeat its log K times."""


def weight_sparsity(graph: Graph) -> float:
    """The zero fraction of the weighted layers' weights (what a pruning recipe left)."""
    weights = [np.asarray(graph.params[n.inputs[1]]) for n in graph.weighted_nodes(include_conv=True)]
    total = sum(w.size for w in weights)
    return float(sum(int((w == 0).sum()) for w in weights) / total) if total else 0.0
