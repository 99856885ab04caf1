"""The pass contract, the registry of passes, and the named flows per target.

After qonnx's Transformation and TVM's pass infrastructure: a pass takes a Graph and a
Context and returns a new Graph; it never mutates its input. Passes declare their recipe
options (with defaults and checks) so a recipe can be validated before any work starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from compiler.errors import PassError as PassError  # raised by op lowering rules below passes too
from compiler.ir import Graph
from compiler.targets import TARGETS


@dataclass(frozen=True)
class Option:
    """A recipe option: its default, a check that returns an error text or None, and help."""

    default: Any
    check: Callable[[Any], str | None]
    help: str
    per_layer: bool = False


@dataclass
class Context:
    data: Any = None  # compiler.data.Dataset or None
    recipe: dict = field(default_factory=dict)
    target: str = "fpga"
    seed: int = 0
    device: str = "cpu"
    log: Callable[[str], None] = print
    progress: bool = True

    def _tables(self, pass_name: str) -> list[dict]:
        """The recipe tables holding this pass's options, later ones winning: its legacy table's
        keys that it declares (e.g. [lower] multipliers, now a [plan] option), then its own."""
        p = REGISTRY[pass_name]
        tables = []
        if p.legacy_table:
            old = self.recipe.get(p.legacy_table, {})
            tables.append(
                {k: v for k, v in old.items() if k in p.options}
                | {
                    "layers": {
                        name: {k: v for k, v in t.items() if k in p.options}
                        for name, t in old.get("layers", {}).items()
                        if isinstance(t, dict)
                    }
                }
            )
        tables.append(self.recipe.get(pass_name, {}))
        return tables

    def options(self, pass_name: str) -> dict:
        """The pass's options: recipe values over declared defaults (without `layers`), each
        given one checked (the CLI validates whole recipes, but passes may be run from Python):
        a bad one stops the pass with a message naming the option."""
        declared, given = REGISTRY[pass_name].options, self._given(pass_name)
        for key, value in given.items():
            if key in declared and (why := declared[key].check(value)):
                raise PassError(f"{pass_name}: {key} {why}")
        return {k: given.get(k, opt.default) for k, opt in declared.items()}

    def _given(self, pass_name: str) -> dict:
        """The pass-wide values the recipe gives, later tables winning."""
        given: dict = {}
        for table in self._tables(pass_name):
            given.update({k: v for k, v in table.items() if k != "layers"})
        return given

    def layer_given(self, pass_name: str, layer: str) -> dict:
        """What the recipe says about one layer itself (`[pass.layers.<layer>]`), nothing else."""
        given: dict = {}
        for table in self._tables(pass_name):
            layer_table = table.get("layers", {}).get(layer, {})
            if not isinstance(layer_table, dict):
                raise PassError(f"{pass_name}: [{pass_name}.layers.{layer!r}] must be a table")
            given.update(layer_table)
        return given

    def layer_options(self, pass_name: str, layer: str) -> dict:
        """Options for one layer: `[pass.layers.<layer>]` over the pass-wide values. Per-layer
        values are checked here too (the CLI validates whole recipes, but passes may be run from
        Python): a bad one stops the pass with a message naming the layer (so a pass-wide value
        is checked here per layer, not by `options`)."""
        declared = REGISTRY[pass_name].options
        merged = {k: opt.default for k, opt in declared.items()} | self._given(pass_name)
        merged = {k: v for k, v in merged.items() if k in declared} | self.layer_given(pass_name, layer)
        for key, option in declared.items():
            if option.per_layer and (why := option.check(merged[key])):
                raise PassError(f"{pass_name}: layer {layer!r}: {key} {why}")
        return merged


class Pass:
    """Subclasses set the class attributes and implement `apply`; callers use `run`."""

    name: str = ""
    needs_data: bool = False
    options: dict[str, Option] = {}
    takes: str = "float"  # the graphs it runs on: "float" (before lower) or "integer"
    legacy_table: str | None = None  # a recipe table that held some of its options earlier
    trains: bool = False  # it runs training epochs: replaying it on K shadow models costs K trainings
    hardware_only: bool = False  # it changes no output (plan): the adaptive audit need not replay it

    def run(self, graph: Graph, ctx: Context) -> Graph:
        """Check the graph is of the kind this pass takes, then apply it."""
        if self.takes == "float" and graph.is_integer:
            raise PassError(f"{self.name}: runs on float graphs (put it before lower); this graph is an integer graph")
        if self.takes == "integer" and not graph.is_integer:
            raise PassError(f"{self.name}: runs on integer graphs (put it after lower)")
        return self.apply(graph, ctx)

    def apply(self, graph: Graph, ctx: Context) -> Graph:
        raise NotImplementedError


REGISTRY: dict[str, Pass] = {}

# A target is a named flow: an ordered list of pass names (hls4ml registers flows the same way),
# one per entry of the target table (compiler/targets.py).
FLOWS: dict[str, list[str]] = {name: list(target.passes) for name, target in TARGETS.items()}


def with_plan(flow: list[str]) -> list[str]:
    """A flow that ends with lower gets the plan pass after it (recipes written before plan
    was split out of lower keep working)."""
    return [*flow, "plan"] if flow and flow[-1] == "lower" and "plan" not in flow else list(flow)


def register(cls: type[Pass]) -> type[Pass]:
    if not cls.name or cls.name in REGISTRY:
        raise ValueError(f"pass name {cls.name!r} missing or registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def get_pass(name: str) -> Pass:
    if name not in REGISTRY:
        raise PassError(f"unknown pass {name!r} (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name]


# ---- option checks --------------------------------------------------------------------------
def int_in(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"must be an integer in {lo}..{hi}, got {v!r}"
        return None

    return check


def float_in(lo: float, hi: float, hi_open: bool = False) -> Callable[[Any], str | None]:
    def check(v):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v and (v < hi if hi_open else v <= hi)
        return None if ok else f"must be a number in [{lo}, {hi}{')' if hi_open else ']'}, got {v!r}"

    return check


def is_bool(v) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, got {v!r}"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {', '.join(map(repr, choices))}, got {v!r}"


def classification_only(graph: Graph, pass_name: str, why: str) -> None:
    """Refuse a regression (graph.meta["task"], from the data) in a pass whose method is defined
    on class labels; `why` says what it needs them for."""
    if graph.meta.get("task") == "regression":
        raise PassError(
            f"{pass_name}: {why}, and this model is a regression (DATA.npz has float targets, or no y); "
            "remove the pass from the recipe"
        )
