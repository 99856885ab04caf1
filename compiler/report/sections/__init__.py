"""Report sections, one module per pass or attack, each registering what it adds to report.json
and report.md (base.py). A new pass or attack adds its module and its name below; report.py and
markdown.py stay as they are."""

from __future__ import annotations

import importlib

from compiler.report.sections.base import (
    ATTACK_SECTIONS,
    PASS_SECTIONS,
    AttackSection,
    PassSection,
    register_attack_section,
    register_pass_section,
)

# The order report.json's fields and report.md's sections appear in.
PASS_SECTION_MODULES = ("qonnx", "lower", "fine_prune", "circulant", "dp_sgd")
ATTACK_SECTION_MODULES = ("membership", "backdoor", "bitflip")

for _module in (*PASS_SECTION_MODULES, *ATTACK_SECTION_MODULES):
    importlib.import_module(f"{__name__}.{_module}")
