"""Audit targets: prediction functions over a build's graphs, through the executors only.

- `original`: checkpoints/00-import, the float graph as imported (torch executor).
- `compiled`: the build's integer graph; its exact outputs from the golden executor,
  dequantized (`golden.run(graph, x).logits`), i.e. the hardware's logits times 2**-frac.
- any checkpoint folder name (`01-canonicalize`, `02-lower`, ...): float checkpoints run in the
  torch executor, integer ones in the golden executor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from compiler.build import Build
from compiler.errors import MpcError
from compiler.exec import class_logits, golden, predict_logits
from compiler.ir import Graph


class TargetError(MpcError, ValueError):
    pass


@dataclass
class Target:
    name: str
    source: str  # folder relative to the build
    graph: Graph
    predict_logits: Callable[[np.ndarray], np.ndarray]

    @property
    def kind(self) -> str:
        return "integer" if self.graph.is_integer else "float"


def checkpoint_names(build: Build) -> list[str]:
    return sorted(build.checkpoints)


def load_target(build: Build, name: str) -> Target:
    """The target `name` of a build opened with its checkpoints (compiler/build.py open_build)."""
    if name == "original":
        return _target(name, build, "00-import")
    if name == "compiled":
        graph = build.graph
        return Target(name, ".", graph, lambda x: class_logits(graph, golden.run(graph, x).logits))
    if name in build.checkpoints:
        return _target(name, build, name)
    known = ", ".join(["original", "compiled", *checkpoint_names(build)])
    raise TargetError(f"unknown target {name!r} (known: {known})")


def _target(name: str, build: Build, checkpoint: str) -> Target:
    graph = build.checkpoints[checkpoint]
    return Target(name, f"checkpoints/{checkpoint}", graph, lambda x: class_logits(graph, predict_logits(graph, x)))


def shadow_architecture(build: Build) -> tuple[str, Graph]:
    """The float graph the shadows copy: the canonicalized checkpoint when the flow has one
    (biases fused into dense layers, so `reinitialize` resets every weight), else the import."""
    for name in checkpoint_names(build):
        if name.endswith("-canonicalize"):
            return f"checkpoints/{name}", build.checkpoints[name]
    return "checkpoints/00-import", build.checkpoints["00-import"]
