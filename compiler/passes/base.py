"""The pass contract, the registry of passes, and the named flows per target.

After qonnx's Transformation and TVM's pass infrastructure: a pass takes a Graph and a
Context and returns a new Graph; it never mutates its input. Passes declare their recipe
options (with defaults and checks) so a recipe can be validated before any work starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from compiler.ir import Graph


class PassError(ValueError):
    """A pass cannot run on this graph or with these options; the message says which and why."""


@dataclass(frozen=True)
class Option:
    """A recipe option: its default, a check that returns an error text or None, and help."""

    default: Any
    check: Callable[[Any], str | None]
    help: str
    per_layer: bool = False


@dataclass
class Context:
    data: Any = None                       # compiler.data.Dataset or None
    recipe: dict = field(default_factory=dict)
    target: str = "fpga"
    seed: int = 0
    device: str = "cpu"
    log: Callable[[str], None] = print
    progress: bool = True

    def options(self, pass_name: str) -> dict:
        """The pass's options: recipe values over declared defaults (without `layers`)."""
        declared = REGISTRY[pass_name].options
        given = {k: v for k, v in self.recipe.get(pass_name, {}).items() if k != "layers"}
        return {k: given.get(k, opt.default) for k, opt in declared.items()}

    def layer_options(self, pass_name: str, layer: str) -> dict:
        """Options for one layer: `[pass.layers.<layer>]` over the pass-wide values. Per-layer
        values are checked here too (the CLI validates whole recipes, but passes may be run from
        Python): a bad one stops the pass with a message naming the layer."""
        merged = self.options(pass_name)
        merged.update(self.recipe.get(pass_name, {}).get("layers", {}).get(layer, {}))
        for key, option in REGISTRY[pass_name].options.items():
            if option.per_layer and (why := option.check(merged[key])):
                raise PassError(f"{pass_name}: layer {layer!r}: {key} {why}")
        return merged


class Pass:
    name: str = ""
    needs_data: bool = False
    options: dict[str, Option] = {}

    def run(self, graph: Graph, ctx: Context) -> Graph:
        raise NotImplementedError


REGISTRY: dict[str, Pass] = {}

# A target is a named flow: an ordered list of pass names (hls4ml registers flows the same way).
FLOWS: dict[str, list[str]] = {
    "fpga": ["canonicalize", "lower"],
    "asic": ["canonicalize", "lower"],
}


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
