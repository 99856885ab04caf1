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
from pathlib import Path

import numpy as np

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


def checkpoint_names(out: Path) -> list[str]:
    folder = Path(out) / "checkpoints"
    return sorted(p.name for p in folder.iterdir() if (p / "graph.json").is_file()) if folder.is_dir() else []


def load_target(out: Path, name: str) -> Target:
    out = Path(out)
    if name == "original":
        return _target(name, out, "checkpoints/00-import")
    if name == "compiled":
        graph = Graph.load(out)
        return Target(name, ".", graph, lambda x: class_logits(graph, golden.run(graph, x).logits))
    if name in checkpoint_names(out):
        return _target(name, out, f"checkpoints/{name}")
    known = ", ".join(["original", "compiled", *checkpoint_names(out)])
    raise TargetError(f"unknown target {name!r} (known: {known})")


def _target(name: str, out: Path, source: str) -> Target:
    graph = Graph.load(out / source)
    return Target(name, source, graph, lambda x: class_logits(graph, predict_logits(graph, x)))


def shadow_architecture(out: Path) -> tuple[str, Graph]:
    """The float graph the shadows copy: the canonicalized checkpoint when the flow has one
    (biases fused into dense layers, so `reinitialize` resets every weight), else the import."""
    for name in checkpoint_names(out):
        if name.endswith("-canonicalize"):
            return f"checkpoints/{name}", Graph.load(Path(out) / "checkpoints" / name)
    return "checkpoints/00-import", Graph.load(Path(out) / "checkpoints" / "00-import")
