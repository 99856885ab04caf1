"""Membership inference (compiler/audit): one table row per target and attack that measured an
AUC (every membership attack does; backdoor and bit-flip records have none)."""

from __future__ import annotations

from compiler.report.sections.base import AttackSection, register_attack_section
from compiler.report.text import pct


def markdown(audit: dict) -> list[str]:
    rows = [(name, t, a, m) for name, t in audit["targets"].items() for a, m in t["attacks"].items() if "auc" in m]
    if not rows:
        return []
    notes = [f"Note: {note}." for note in audit.get("notes", [])]  # a regression's skipped attacks
    table = _table(audit, rows)
    return table + [line for note in notes for line in (note, "")]


def _score(target: dict) -> str:
    """The target's test accuracy, or a regression's test MSE."""
    if target.get("test_accuracy") is None and target.get("test_mse") is not None:
        return f"MSE {target['test_mse']:.4g}"
    return pct(target.get("test_accuracy"))


def _table(audit: dict, rows: list) -> list[str]:
    n = audit["n_non_members"]
    adaptive = bool(audit.get("adaptive"))
    lines = [
        "## Membership inference",
        "",
        f"{audit['n_members']} members (x_train) vs {n} non-members (x_test), {audit['shadows']} shadow "
        f"models, seed {audit['seed']}; details in `audit.json`, ROC curves in `audit_roc_<target>.png` "
        f"(docs/audit.md). Balanced accuracy is at the best threshold; n/a: an FPR under 1/{n} is not resolvable."
        + (
            " Adaptive: the shadows also went through the build's passes "
            f"({', '.join(audit['settings']['adaptive_replay']['passes']) or 'none'}), so they are built like "
            "each target; read these columns for a defended or compressed build."
            if adaptive
            else ""
        ),
        "",
        "| target | test accuracy | attack | AUC | balanced accuracy | TPR @ 1% FPR | TPR @ 0.1% FPR |"
        + (" adaptive AUC | adaptive balanced accuracy | adaptive TPR @ 1% FPR |" if adaptive else ""),
        "|---|---|---|---|---|---|---|" + ("---|---|---|" if adaptive else ""),
    ]
    for name, target, attack, m in rows:
        line = (
            f"| {name} | {_score(target)} | {attack} | {m['auc']:.3f} | "
            f"{pct(m['balanced_accuracy'])} | {pct(m['tpr_at_1pct_fpr'])} | "
            f"{pct(m['tpr_at_0_1pct_fpr'])} |"
        )
        if adaptive:
            a = target.get("adaptive_attacks", {}).get(attack)
            line += (
                f" {a['auc']:.3f} | {pct(a['balanced_accuracy'])} | {pct(a['tpr_at_1pct_fpr'])} |"
                if a
                else " n/a | n/a | n/a |"
            )
        lines.append(line)
    return lines + [""]


register_attack_section(AttackSection("membership", markdown))
