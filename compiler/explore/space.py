"""SPACE.toml: a recipe in which options may be lists of values to try.

Every list is an axis of the grid; the points are all combinations (the first axis varies
slowest). An option whose value is itself a list (`passes`) becomes an axis when written as a list
of lists. Per-layer tables (`[admm.layers."/5/Gemm"]`) take lists the same way, and the
`[explore]` table holds what is not a recipe:

    [explore]
    objectives = ["accuracy", "energy", "lut"]   # metrics.py: names, directions, min:/max: prefixes
    target = ["fpga", "asic"]                    # an axis too (default "fpga")
    seed = 0                                     # the compile seed of every point (an axis if a list)
    synth = true                                 # yosys (default: when an objective needs it)
    synth_timeout = 300
    simulate = 64                                # samples to simulate (default 0; 64 for simulation.*)
    [explore.audit]                              # audit every point (default: when an objective needs it)
    attacks = "lira_online"                      # default: the attacks the objectives read
    shadows = 16
    shadow_epochs = 60

Each point is a full recipe, checked as `mpc compile` checks one (compiler/recipe.py); a point's id
is a hash of everything that decides its build (recipe, target, seed, synthesis, simulation and
audit settings), so it names the same build in every run and on every machine.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.errors import MpcError
from compiler.explore.metrics import SYNTH_KEYS, Objective, ObjectiveError, parse_objective
from compiler.recipe import one_line, read_toml

EXPLORE = "explore"
DEFAULT_OBJECTIVES = ["compiled.test_accuracy", "model.compression_ratio", "hardware.energy_pj.compiled"]
SETTINGS = ("objectives", "target", "seed", "synth", "synth_timeout", "simulate", "audit")
AUDIT_SETTINGS = ("attacks", "targets", "shadows", "shadow_epochs", "shadow_lr", "shadow_batch_size")
MAX_GRID = 100_000  # points a grid may have; beyond, --budget searches it
ID_LENGTH = 12


class SpaceError(MpcError, ValueError):
    """SPACE.toml is wrong; the message is one line naming the file and the key."""


@dataclass(frozen=True)
class Axis:
    path: tuple[
        str, ...
    ]  # ("passes",), ("admm", "sparsity"), ("admm", "layers", "/5/Gemm", "bits"), ("explore", "seed")
    values: tuple

    @property
    def name(self) -> str:
        """As a column name: admm.sparsity, admm.layers."/5/Gemm".bits, target."""
        path = self.path[1:] if self.path[0] == EXPLORE else self.path
        return ".".join(_key(p) for p in path)


@dataclass(frozen=True)
class RunSettings:
    """What a point runs besides the compile: all part of its id."""

    synth: bool = False
    synth_timeout: float = 300.0
    simulate: int = 0  # samples; 0: no simulation
    audit: dict | None = None  # api.audit's options (attacks, targets, shadows, shadow_training), or None

    def as_dict(self) -> dict:
        return {"synth": self.synth, "synth_timeout": self.synth_timeout, "simulate": self.simulate} | {
            "audit": self.audit
        }


@dataclass(frozen=True)
class Point:
    id: str
    recipe: dict  # a RECIPE.toml document
    target: str
    seed: int
    values: dict  # axis name -> this point's value
    run: RunSettings


@dataclass
class Space:
    path: Path
    base: dict  # the recipe part, axes holding their lists
    axes: list[Axis]
    objectives: list[Objective]
    run: RunSettings
    target: str = "fpga"
    seed: int = 0
    explicit_audit: bool = field(default=False)

    @property
    def size(self) -> int:
        return math.prod(len(a.values) for a in self.axes)

    def point(self, indices: tuple[int, ...]) -> Point:
        """The point with value indices[i] on axis i."""
        recipe = copy.deepcopy(self.base)
        target, seed = self.target, self.seed
        values = {}
        for axis, i in zip(self.axes, indices, strict=True):
            value = axis.values[i]
            values[axis.name] = value
            if axis.path == (EXPLORE, "target"):
                target = value
            elif axis.path == (EXPLORE, "seed"):
                seed = value
            else:
                _set(recipe, axis.path, copy.deepcopy(value))
        return Point(point_id(recipe, target, seed, self.run), recipe, target, seed, values, self.run)

    def indices(self) -> Iterator[tuple[int, ...]]:
        return itertools.product(*(range(len(a.values)) for a in self.axes))

    def points(self) -> Iterator[Point]:
        """Every point of the grid, the first axis varying slowest."""
        return (self.point(ix) for ix in self.indices())

    def check(self, check_recipe: Callable[[dict, str], None]) -> None:
        """Check every value of every axis as part of a full recipe: `check_recipe(recipe, target)`
        raises on a recipe `mpc compile` would refuse. Each value is tried with the first value
        of every other axis; what a value can conflict with (the passes run and the tables given)
        is checked for each passes value and each target."""
        tried = {tuple(0 for _ in self.axes)}
        tried |= {
            tuple(i if a == k else 0 for a in range(len(self.axes)))
            for k, axis in enumerate(self.axes)
            for i in range(len(axis.values))
        }
        for ix in sorted(tried):
            point = self.point(ix)
            check_recipe(point.recipe, point.target)


def point_id(recipe: dict, target: str, seed: int, run: RunSettings) -> str:
    doc = {"recipe": recipe, "target": target, "seed": seed, "run": run.as_dict()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:ID_LENGTH]


# ---- reading SPACE.toml ---------------------------------------------------------------------
def load_space(path: str | Path) -> Space:
    path = Path(path)
    return parse_space(read_toml(path, SpaceError), path)


def parse_space(doc: dict, path: Path) -> Space:
    where = str(path)
    settings = doc.get(EXPLORE, {})
    if not isinstance(settings, dict):
        raise SpaceError(f"{where}: {EXPLORE} must be a table ([{EXPLORE}])")
    base = {k: v for k, v in doc.items() if k != EXPLORE}
    axes = []
    for key_path, value in _leaves(base):
        if isinstance(value, list):
            axis_values = _axis_values(key_path, value)
            if axis_values is not None:
                axes.append(Axis(key_path, axis_values))
    for key in ("target", "seed"):
        if isinstance(settings.get(key), list):
            if not settings[key]:
                raise SpaceError(f"{where}: [{EXPLORE}] {key}: an empty list (an axis needs at least one value)")
            axes.append(Axis((EXPLORE, key), tuple(settings[key])))
    for axis in axes:
        if not axis.values:
            raise SpaceError(
                one_line(f"{where}: {_where(axis.path)}: an empty list (an axis needs at least one value)")
            )
        if len(set(map(_canonical, axis.values))) != len(axis.values):
            raise SpaceError(one_line(f"{where}: {_where(axis.path)}: a value is listed twice"))
    space = Space(path, base, axes, [], RunSettings())
    _read_settings(space, settings, where)
    if space.size > MAX_GRID:
        raise SpaceError(f"{where}: {space.size:,} points; at most {MAX_GRID:,} (or search it with --budget N)")
    return space


def _leaves(base: dict) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every option of the recipe part: passes, [pass] options, per-layer options."""
    for key, value in base.items():
        if not isinstance(value, dict):
            yield (key,), value
            continue
        for option, v in value.items():
            if option == "layers" and isinstance(v, dict):
                for layer, table in v.items():
                    if isinstance(table, dict):
                        for k, lv in table.items():
                            yield (key, "layers", layer, k), lv
            else:
                yield (key, option), v


def _axis_values(path: tuple[str, ...], value: list) -> tuple | None:
    """The axis a list is, or None for a list that is one value (`passes = ["a", "b"]`)."""
    if path == ("passes",) and value and not any(isinstance(v, list) for v in value):
        return None  # the flow itself; a list of lists is an axis of flows
    return tuple(value)


def _read_settings(space: Space, settings: dict, where: str) -> None:
    def fail(key: str, why: str):
        raise SpaceError(one_line(f"{where}: [{EXPLORE}] {key}: {why}"))

    for key in settings:
        if key not in SETTINGS:
            fail(_key(key), f"unknown key (known: {', '.join(SETTINGS)})")
    objectives = settings.get("objectives", DEFAULT_OBJECTIVES)
    if not isinstance(objectives, list) or not objectives:
        fail("objectives", "must be a non-empty list of metric names")
    for text in objectives:
        try:
            objective = parse_objective(text)
        except ObjectiveError as e:
            fail("objectives", str(e))
        if any(o.key == objective.key for o in space.objectives):
            fail("objectives", f"{text!r} is listed twice")
        space.objectives.append(objective)
    keys = {o.key for o in space.objectives}
    if not isinstance(settings.get("target", "fpga"), list):
        space.target = settings.get("target", "fpga")
        if not isinstance(space.target, str):
            fail("target", f"must be a target name or a list of them, got {space.target!r}")
    for s in settings.get("seed", 0) if isinstance(settings.get("seed"), list) else [settings.get("seed", 0)]:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**32:
            fail("seed", f"must be an integer in 0..{2**32 - 1} (or a list of them), got {s!r}")
    if not isinstance(settings.get("seed", 0), list):
        space.seed = settings.get("seed", 0)

    needs_synth = sorted(keys & SYNTH_KEYS)
    synth = settings.get("synth", bool(needs_synth))
    if not isinstance(synth, bool):
        fail("synth", f"must be true or false, got {synth!r}")
    if needs_synth and not synth:
        fail("synth", f"false, but the objective(s) {', '.join(needs_synth)} come from yosys synthesis")
    timeout = settings.get("synth_timeout", 300.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 86_400:
        fail("synth_timeout", f"must be seconds in (0, 86400], got {timeout!r}")
    needs_sim = sorted(k for k in keys if k.startswith("simulation."))
    simulate = settings.get("simulate", 64 if needs_sim else 0)
    if isinstance(simulate, bool) or not isinstance(simulate, int) or not 0 <= simulate <= 10_000:
        fail("simulate", f"must be a number of samples in 0..10000 (0: no simulation), got {simulate!r}")
    if needs_sim and simulate == 0:
        fail("simulate", f"0, but the objective(s) {', '.join(needs_sim)} come from simulation")
    audit = _audit_settings(settings.get("audit"), space.objectives, fail)
    space.explicit_audit = settings.get("audit") not in (None, False)
    space.run = RunSettings(synth, float(timeout), simulate, audit)


def _audit_settings(given, objectives: list[Objective], fail) -> dict | None:
    """api.audit's options for every point, or None when no point is audited."""
    from compiler.audit.options import DEFAULT_ATTACKS, AuditError, parse_attacks, parse_targets
    from compiler.audit.run import SHADOW_TRAINING

    read = [o.key.split(".") for o in objectives if o.key.startswith("audit.")]
    if given is None or given is False:
        if not read:
            return None
        given = {}
    elif given is True:
        given = {}
    if not isinstance(given, dict):
        fail("audit", f"must be true, false or a table ([{EXPLORE}.audit]), got {given!r}")
    for key in given:
        if key not in AUDIT_SETTINGS:
            fail(f"audit.{_key(key)}", f"unknown key (known: {', '.join(AUDIT_SETTINGS)})")
    referenced_attacks = list(dict.fromkeys(p[2] for p in read if len(p) == 4))
    referenced_targets = list(dict.fromkeys(p[1] for p in read))
    try:
        attacks = parse_attacks(given.get("attacks", referenced_attacks or DEFAULT_ATTACKS))
        targets = parse_targets(given.get("targets", referenced_targets or ["compiled"]))
    except (AuditError, AttributeError, TypeError) as e:
        fail("audit", f"{e} (attacks and targets: comma-separated names or a list)")
    if missing := [a for a in referenced_attacks if a not in attacks]:
        fail("audit.attacks", f"the objectives read {', '.join(missing)}; add it to the attacks")
    if missing := [t for t in referenced_targets if t not in targets]:
        fail("audit.targets", f"the objectives read target(s) {', '.join(missing)}; add them to the targets")
    from compiler.audit import attacks as attack_lib

    shadows = given.get("shadows", 16)
    needs_shadows = any(a in attack_lib.NEEDS_SHADOWS for a in attacks)
    if isinstance(shadows, bool) or not isinstance(shadows, int) or not (2 if needs_shadows else 0) <= shadows <= 4096:
        fail("audit.shadows", f"must be an integer in {2 if needs_shadows else 0}..4096, got {shadows!r}")
    training = {
        "epochs": given.get("shadow_epochs", SHADOW_TRAINING.epochs),
        "lr": given.get("shadow_lr", SHADOW_TRAINING.lr),
        "batch_size": given.get("shadow_batch_size", SHADOW_TRAINING.batch_size),
    }
    for key in ("epochs", "batch_size"):
        v = training[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            fail(f"audit.shadow_{key}", f"must be an integer >= 1, got {v!r}")
    lr = training["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 1:
        fail("audit.shadow_lr", f"must be a number in (0, 1], got {lr!r}")
    return {"attacks": attacks, "targets": targets, "shadows": shadows, "shadow_training": training}


# ---- helpers ----------------------------------------------------------------------------------
def _set(doc: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _key(key: str) -> str:
    """A TOML key as the user would write it: bare if it can be, else quoted."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _where(path: tuple[str, ...]) -> str:
    """An option's place as the recipe errors name it: passes, [admm] sparsity, [admm.layers."x"] bits."""
    if len(path) == 1:
        return _key(path[0])
    return f"[{'.'.join(_key(p) for p in path[:-1])}] {_key(path[-1])}"


# ---- writing a point's RECIPE.toml ----------------------------------------------------------
def dump_toml(doc: dict) -> str:
    """A recipe document as TOML (tables of scalars and lists; nested tables for layers).
    The text reads back to the same document (checked)."""
    lines: list[str] = []
    _dump_table(doc, (), lines)
    text = "\n".join(lines).lstrip("\n") + "\n"
    if tomllib.loads(text) != doc:  # floats print exactly (repr), strings JSON-escaped
        raise ValueError("internal error: a recipe does not round-trip through TOML")
    return text


def _dump_table(table: dict, path: tuple[str, ...], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.append("")
        lines.append(f"[{'.'.join(_key(p) for p in path)}]")
    for k, v in scalars.items():
        lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in tables.items():
        _dump_table(v, (*path, k), lines)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise ValueError(f"cannot write {type(v).__name__} values in a recipe")
