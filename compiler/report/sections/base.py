"""The registry of report sections: what a pass or an attack adds to report.json and report.md.

Passes must not import the report (it is the layer above them), so a pass's section is
registered here, on the report side, under the pass's name. report.py and markdown.py loop over
the registry, in registration order (sections/__init__.py's list), and know no section by name.

A pass section adds fields to report.json `model` (`model_fields`) or to its top level, after
`hardware` (`report_fields`), both from the float (as imported) and compiled graphs, and lines to
report.md after the summary (`markdown`, from report.json). An attack section renders its part of
report.json `privacy` (the audit's own record, audit.json, which `mpc audit` stores there) as
report.md lines after the hardware sections.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from compiler.ir import Graph


def _no_fields(original: Graph, compiled: Graph) -> dict:
    return {}


def _no_lines(report: dict) -> list[str]:
    return []


@dataclass(frozen=True)
class PassSection:
    name: str  # the pass (or the frontend) whose figures these are
    model_fields: Callable[[Graph, Graph], dict] = _no_fields
    report_fields: Callable[[Graph, Graph], dict] = _no_fields
    markdown: Callable[[dict], list[str]] = _no_lines


@dataclass(frozen=True)
class AttackSection:
    name: str  # the attack (or the family of attacks) it reports
    markdown: Callable[[dict], list[str]]  # audit.json's record -> report.md lines


PASS_SECTIONS: dict[str, PassSection] = {}
ATTACK_SECTIONS: dict[str, AttackSection] = {}


def register_pass_section(section: PassSection) -> PassSection:
    _add(PASS_SECTIONS, section)
    return section


def register_attack_section(section: AttackSection) -> AttackSection:
    _add(ATTACK_SECTIONS, section)
    return section


def _add(registry: dict, section) -> None:
    if section.name in registry:
        raise ValueError(f"report section {section.name!r} registered twice")
    registry[section.name] = section


def meta_field(graph: Graph, key: str, field: str | None = None) -> dict:
    """`{field: graph.meta[key]}` when the graph has it, else nothing: a pass's record travels in
    the graph's meta (the integer graph keeps the float graph's meta through lower and plan)."""
    return {field or key: graph.meta[key]} if key in graph.meta else {}
