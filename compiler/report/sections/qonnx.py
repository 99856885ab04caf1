"""The QONNX frontend's record (compiler/frontend/qonnx.py): weights that were not on a
power-of-two grid and how much re-quantizing them moved them."""

from __future__ import annotations

from compiler.ir import Graph
from compiler.report.sections.base import PassSection, meta_field, register_pass_section
from compiler.report.text import md_code, md_text


def model_fields(original: Graph, compiled: Graph) -> dict:
    return meta_field(original, "qonnx")


def markdown(report: dict) -> list[str]:
    """One line on a QONNX model's weights that were not on a power-of-two grid."""
    q = report["model"].get("qonnx")
    if not q or not q.get("requantized"):
        return []
    changes = ", ".join(
        f"{md_code(name)} (Q({d['format']['bits']}, {d['format']['frac']}), max abs weight change "
        f"{d['max_abs_change']:.3g}: {md_text(d['why'])})"
        for name, d in q["requantized"].items()
    )
    return [f"QONNX weights re-quantized to a power-of-two grid: {changes}.", ""]


register_pass_section(PassSection("qonnx", model_fields=model_fields, markdown=markdown))
