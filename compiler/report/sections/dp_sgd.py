"""Differentially private training (compiler/passes/dp_sgd.py): the guarantee of a dp_sgd-trained
model, at report.json's top level (`privacy_training`), or its absence."""

from __future__ import annotations

from compiler.ir import Graph
from compiler.report.sections.base import PassSection, register_pass_section

GUARANTEE_KEYS = ("epsilon", "delta", "noise_multiplier", "max_grad_norm", "init")


def report_fields(original: Graph, compiled: Graph) -> dict:
    """The integer graph keeps the float graph's meta through lower."""
    if "dp_sgd" not in compiled.meta:
        return {}
    dp = compiled.meta["dp_sgd"]
    return {"privacy_training": {"dp_sgd": {k: dp[k] for k in GUARANTEE_KEYS}}}


def markdown(report: dict) -> list[str]:
    dp = (report.get("privacy_training") or {}).get("dp_sgd")
    if not dp:
        return []
    covers = "the whole model" if dp.get("init") == "reinitialize" else "the fine-tuning only"
    if dp["epsilon"] == "inf":
        guarantee = "no noise (epsilon = inf): per-example clipping only, no privacy guarantee"
    else:
        guarantee = f"({dp['epsilon']:g}, {dp['delta']:.3g})-differentially private, covering {covers}"
    return [
        f"DP-SGD training (docs/audit.md): {guarantee}; noise multiplier {dp['noise_multiplier']:.3g}, "
        f"clipping norm {dp['max_grad_norm']:g}.",
        "",
    ]


register_pass_section(PassSection("dp_sgd", report_fields=report_fields, markdown=markdown))
