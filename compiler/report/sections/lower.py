"""The lower pass's record (compiler/passes/lower.py): layers whose weights it narrowed to fit
the 48-bit accumulator, and what that cost in float test accuracy."""

from __future__ import annotations

from compiler.ir import Graph
from compiler.report.sections.base import PassSection, meta_field, register_pass_section
from compiler.report.text import md_code, num, pct


def model_fields(original: Graph, compiled: Graph) -> dict:
    return meta_field(compiled, "narrowed_layers", "narrowed")


def markdown(report: dict) -> list[str]:
    """One line per layer whose weights lower narrowed to fit the accumulator limit, with the cost."""
    lines = []
    for name, d in (report["model"].get("narrowed") or {}).items():
        a, b = d["weight_format_from"], d["weight_format_to"]
        if "float_test_mse" in d:  # a regression (graph.meta["task"])
            cost = f"MSE {num(d['float_test_mse'], '.4g')} -> {num(d.get('float_test_mse_narrowed'), '.4g')}"
        else:
            cost = f"accuracy {pct(d.get('float_test_accuracy'))} -> {pct(d.get('float_test_accuracy_narrowed'))}"
        lines += [
            f"Layer {md_code(name)}: weights narrowed from Q({a['bits']}, {a['frac']}) to Q({b['bits']}, {b['frac']}) "
            f"(its accumulator would need {d['needed_acc_bits']} bits; at most {d['max_acc_bits']}): float test "
            f"{cost} with this layer's narrowed weights.",
            "",
        ]
    return lines


register_pass_section(PassSection("lower", model_fields=model_fields, markdown=markdown))
