"""The circulant pass's record (compiler/passes/circulant.py): block sizes, the retraining's
held-out figures and every block size `block_size = "auto"` tried."""

from __future__ import annotations

from compiler.ir import Graph
from compiler.report.sections.base import PassSection, meta_field, register_pass_section
from compiler.report.text import md_code, pct


def model_fields(original: Graph, compiled: Graph) -> dict:
    return meta_field(compiled, "circulant")


def markdown(report: dict) -> list[str]:
    c = report["model"].get("circulant")
    if not c:
        return []
    sizes = ", ".join(f"{md_code(name)} b = {b}" for name, b in c.get("block_sizes", {}).items()) or "none"
    lines = [f"Block-circulant layers (docs/fixed-point.md): {sizes}."]
    training = c.get("training", {})
    if training.get("heldout_accuracy") is not None:
        lines[0] += (
            f" Retraining kept epoch {training['best_epoch']} of {training['epochs_run']} (held-out accuracy "
            f"{pct(training['heldout_accuracy'])} on {training['heldout_rows']} rows of x_train)."
        )
    return [*lines, *_auto_lines(c.get("auto")), ""]


def _auto_lines(auto: dict | None) -> list[str]:
    """The trials of `block_size = "auto"`, one table row each."""
    if not auto:
        return []
    return [
        "",
        f'`block_size = "auto"`: the largest block size within {auto["max_accuracy_drop"]:g} points of the '
        f"input model's held-out accuracy ({pct(auto['reference_accuracy'])} on {auto['heldout_rows']} rows), "
        f"{auto['trial_epochs']} epochs per trial:",
        "",
        "| layer | block size | held-out accuracy | accepted |",
        "|---|---|---|---|",
        *(
            f"| {md_code(t['layer'])} | {t['block_size']} | {pct(t['heldout_accuracy'])} | "
            f"{'yes' if t['accepted'] else 'no'} |"
            for t in auto["trials"]
        ),
    ]


register_pass_section(PassSection("circulant", model_fields=model_fields, markdown=markdown))
