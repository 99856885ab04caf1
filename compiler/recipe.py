"""RECIPE.toml: `passes = [...]` overrides the target's flow; `[<pass>]` tables hold options;
`[<pass>.layers.<onnx node name>]` override one layer. Everything is checked before work starts:
unknown passes, keys and layer names, values out of range, and tables for passes the flow does not
run are reported together. `read_flow` is the one place a recipe is read and checked: it returns
the `Flow` that api runs as it is."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from compiler.errors import MpcError
from compiler.ir import Graph
from compiler.passes.base import FLOWS, REGISTRY, Option, get_pass, with_plan


class RecipeError(MpcError, ValueError):
    pass


@dataclass(frozen=True)
class Flow:
    """A recipe checked against a model and a target: the passes to run on the model, in order
    (run_flow adds plan after a final lower), and the recipe document they read their options from."""

    passes: list[str]
    recipe: dict
    target: str


def read_flow(path: str | Path | None, graph: Graph, target: str, model: Path) -> Flow:
    """RECIPE.toml at `path` (None: the target's default flow) read and checked against `graph`,
    the graph the flow starts from (read from `model`); RecipeError says what is wrong."""
    return check_flow(load_recipe(path), graph, target, str(path or "recipe"), model)


def check_flow(recipe: dict, graph: Graph, target: str, where: str, model: Path) -> Flow:
    """The flow a recipe document asks for on `graph`, once every part of it is checked:
    the passes, each table's options and layer names, and that the flow runs every table given.
    `where` names the recipe in the errors."""
    full_flow = flow_for(recipe, target)
    passes = _integer_part(graph, full_flow, model)
    validate_recipe(recipe, [n.name for n in graph.weighted_nodes(include_conv=True)], where=where)
    _check_tables_run(recipe, full_flow, where)
    return Flow(passes, recipe, target)


def load_recipe(path: str | Path | None) -> dict:
    if path is None:
        return {}
    path = Path(path)
    doc = read_toml(path, RecipeError)
    if "passes" in doc and (why := _passes_problem(doc["passes"])):
        raise RecipeError(f"{path}: {why}")  # before flow_for reads it
    return doc


def flow_for(recipe: dict, target: str) -> list[str]:
    if target not in FLOWS:
        raise RecipeError(f"unknown target {target!r} (known: {', '.join(FLOWS)})")
    passes = recipe.get("passes", FLOWS[target])
    if why := _passes_problem(passes):
        raise RecipeError(why)
    return list(passes)  # run_flow adds plan after a final lower


def _integer_part(graph: Graph, flow: list[str], model: Path) -> list[str]:
    """The flow, or for an integer checkpoint the part of it that takes integer graphs (plan):
    re-planning needs no recalibration."""
    if not graph.is_integer:
        return flow
    rest = [name for name in with_plan(flow) if get_pass(name).takes == "integer"]
    if not rest:
        raise RecipeError(f"{model}: an integer graph, and the flow {flow} has no pass that takes one (plan)")
    return rest


def _check_tables_run(recipe: dict, flow: list[str], where: str) -> None:
    """A table for a pass the flow does not run would be ignored without a word: refuse it."""
    run = set(with_plan(flow))
    read_by = {p.legacy_table for p in REGISTRY.values() if p.legacy_table and p.name in run}
    idle = [k for k in recipe if k != "passes" and k not in run and k not in read_by]
    if idle:
        tables = ", ".join(f"[{k}]" for k in idle)
        raise RecipeError(
            f"{where}: {tables} given, but the flow {with_plan(flow)} does not run "
            f"{'it' if len(idle) == 1 else 'them'}; add {', '.join(map(repr, idle))} to `passes`"
        )


def validate_recipe(recipe: dict, layer_names: list[str], where: str = "recipe") -> None:
    """Raise RecipeError listing every problem in the recipe."""
    problems = []
    passes = recipe.get("passes")
    if passes is not None:
        if why := _passes_problem(passes):
            problems.append(why)
        else:
            problems += [
                f"passes: unknown pass {p!r} (known: {', '.join(sorted(REGISTRY))})"
                for p in passes
                if p not in REGISTRY
            ]
    for key, table in recipe.items():
        if key == "passes":
            continue
        if key not in REGISTRY:
            problems.append(f"[{_key(key)}]: unknown pass (known: {', '.join(sorted(REGISTRY))})")
        elif not isinstance(table, dict):
            problems.append(f"{key}: must be a table ([{key}])")
        else:
            problems += _check_table(key, table, layer_names)
    if problems:
        listing = problems[0] if len(problems) == 1 else f"{len(problems)} problems: " + "; ".join(problems)
        raise RecipeError(one_line(f"{where}: {listing}"))


def _passes_problem(passes) -> str | None:
    if not isinstance(passes, list) or not passes or not all(isinstance(p, str) for p in passes):
        return "`passes` must be a non-empty list of pass names"
    return None


def _key(key: str) -> str:
    """A TOML key as the user would write it: bare if it can be, else quoted."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def one_line(message: str) -> str:
    """Errors print as one line: control characters (from keys or values) are escaped."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], message)


def read_toml(path: Path, error: type[ValueError]) -> dict:
    """The TOML document in `path` (a recipe, a space); a missing, unreadable or invalid file is
    `error` with one line naming it."""
    if not path.is_file():
        raise error(f"{path}: no such file")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise error(one_line(f"{path}: not valid TOML ({e})")) from None
    except RecursionError:
        raise error(f"{path}: not valid TOML (nested too deeply)") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None


def _declared(pass_name: str) -> dict[str, Option]:
    """The options a [pass_name] table may hold: the pass's own, and those of passes that still
    read them there (Pass.legacy_table: [lower] multipliers, now the plan pass's)."""
    legacy = {k: o for p in REGISTRY.values() if p.legacy_table == pass_name for k, o in p.options.items()}
    return legacy | REGISTRY[pass_name].options


def _check_table(pass_name: str, table: dict, layer_names: list[str]) -> list[str]:
    declared = _declared(pass_name)
    problems = []
    for key, value in table.items():
        if key == "layers":
            problems += _check_layers(pass_name, value, layer_names)
        elif key not in declared:
            known = ", ".join(declared) or "none"
            problems.append(f"[{pass_name}] {_key(key)}: unknown option (known: {known})")
        elif why := declared[key].check(value):
            problems.append(f"[{pass_name}] {key}: {why}")
    return problems


def _check_layers(pass_name: str, layers, layer_names: list[str]) -> list[str]:
    if not isinstance(layers, dict):
        return [f"[{pass_name}.layers] must be a table of layer tables"]
    declared = _declared(pass_name)
    problems = []
    for layer, table in layers.items():
        where = f"[{pass_name}.layers.{json.dumps(layer, ensure_ascii=False)}]"
        if layer not in layer_names:
            problems.append(f"{where}: no layer of that name (layers: {', '.join(layer_names)})")
            continue
        if not isinstance(table, dict):
            problems.append(f"{where}: must be a table of options")
            continue
        for key, value in table.items():
            if key not in declared or not declared[key].per_layer:
                problems.append(f"{where} {_key(key)}: not a per-layer option of {pass_name}")
            elif why := declared[key].check(value):
                problems.append(f"{where} {key}: {why}")
    return problems
