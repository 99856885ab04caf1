"""The backdoor defense's record (compiler/passes/fine_prune.py): pruning and fine-tuning figures."""

from __future__ import annotations

from compiler.ir import Graph
from compiler.report.sections.base import PassSection, meta_field, register_pass_section
from compiler.report.text import md_code, pct


def model_fields(original: Graph, compiled: Graph) -> dict:
    return meta_field(compiled, "fine_prune")


def markdown(report: dict) -> list[str]:
    """One line on the backdoor defense: what was pruned, what it cost."""
    fp = report["model"].get("fine_prune")
    if not fp:
        return []
    tune = fp["fine_tune"]
    if "pruned" in fp:
        steps = fp["steps"]
        kept = steps[len(fp["pruned"])]["accuracy"]
        pruned = (
            f"pruned {len(fp['pruned'])} of {fp['units_before']} units of {md_code(fp['layer'])}, the least "
            f"active on clean data (held-out accuracy {pct(steps[0]['accuracy'])} -> {pct(kept)}; budget "
            f"{pct(fp['max_accuracy_drop'])}), then "
        )
    else:
        pruned = "no pruning; "
    return [
        f"Fine-pruning (backdoor defense, docs/security.md): {pruned}fine-tuned {tune['epochs']} epochs at lr "
        f"{tune['lr']:g} (held-out accuracy {pct(tune['accuracy_before'])} -> {pct(tune['accuracy_after'])}).",
        "",
    ]


register_pass_section(PassSection("fine_prune", model_fields=model_fields, markdown=markdown))
