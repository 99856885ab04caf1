"""RECIPE.toml: `passes = [...]` overrides the target's flow; `[<pass>]` tables hold options;
`[<pass>.layers.<onnx node name>]` override one layer. Everything is checked before work starts:
unknown passes, keys and layer names, and values out of range are reported together."""

from __future__ import annotations

import tomllib
from pathlib import Path

from compiler.passes.base import FLOWS, REGISTRY, Option


class RecipeError(ValueError):
    pass


def load_recipe(path: str | Path | None) -> dict:
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such file")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RecipeError(f"{path}: not valid TOML ({e})") from None


def flow_for(recipe: dict, target: str) -> list[str]:
    if target not in FLOWS:
        raise RecipeError(f"unknown target {target!r} (known: {', '.join(FLOWS)})")
    return list(recipe.get("passes", FLOWS[target]))  # run_flow adds plan after a final lower


def validate_recipe(recipe: dict, layer_names: list[str], where: str = "recipe") -> None:
    """Raise RecipeError listing every problem in the recipe."""
    problems = []
    passes = recipe.get("passes")
    if passes is not None:
        if not isinstance(passes, list) or not all(isinstance(p, str) for p in passes) or not passes:
            problems.append("`passes` must be a non-empty list of pass names")
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
            problems.append(f"[{key}]: unknown pass (known: {', '.join(sorted(REGISTRY))})")
        elif not isinstance(table, dict):
            problems.append(f"{key}: must be a table ([{key}])")
        else:
            problems += _check_table(key, table, layer_names)
    if problems:
        raise RecipeError(f"{where}: " + ("\n  - ".join([""] + problems) if len(problems) > 1 else problems[0]))


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
            problems.append(f"[{pass_name}] {key}: unknown option (known: {known})")
        elif why := declared[key].check(value):
            problems.append(f"[{pass_name}] {key}: {why}")
    return problems


def _check_layers(pass_name: str, layers, layer_names: list[str]) -> list[str]:
    if not isinstance(layers, dict):
        return [f"[{pass_name}.layers] must be a table of layer tables"]
    declared = _declared(pass_name)
    problems = []
    for layer, table in layers.items():
        where = f'[{pass_name}.layers."{layer}"]'
        if layer not in layer_names:
            problems.append(f"{where}: no layer of that name (layers: {', '.join(layer_names)})")
            continue
        if not isinstance(table, dict):
            problems.append(f"{where}: must be a table of options")
            continue
        for key, value in table.items():
            if key not in declared or not declared[key].per_layer:
                problems.append(f"{where} {key}: not a per-layer option of {pass_name}")
            elif why := declared[key].check(value):
                problems.append(f"{where} {key}: {why}")
    return problems
