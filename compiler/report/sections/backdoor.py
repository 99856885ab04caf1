"""The backdoor attack (compiler/audit): clean accuracy and attack success rate per target."""

from __future__ import annotations

from pathlib import Path

from compiler.report.sections.base import AttackSection, register_attack_section
from compiler.report.text import md_code, pct


def markdown(audit: dict) -> list[str]:
    rows = [(name, t["attacks"]["backdoor"]) for name, t in audit["targets"].items() if "backdoor" in t["attacks"]]
    if not rows:
        return []
    backdoor = audit["settings"]["backdoor"]
    lines = [
        "## Backdoor",
        "",
        f"Trigger {md_code(Path(backdoor['trigger']).name)}, target class {backdoor['target_class']}: the attack "
        "success rate is the share of test samples of other classes that the model classifies as the target "
        "once triggered (docs/security.md).",
        "",
        "| target | clean accuracy | attack success rate | triggered samples |",
        "|---|---|---|---|",
    ]
    for name, m in rows:
        lines.append(f"| {name} | {pct(m['clean_accuracy'])} | {pct(m['attack_success_rate'])} | {m['samples']} |")
    return lines + [""]


register_attack_section(AttackSection("backdoor", markdown))
