"""The bit-flip attack (compiler/audit/bitflip.py) on the compiled design's ROM words."""

from __future__ import annotations

from compiler.report.sections.base import AttackSection, register_attack_section
from compiler.report.text import pct


def markdown(audit: dict) -> list[str]:
    m = audit["targets"].get("compiled", {}).get("attacks", {}).get("bitflip")
    if not m:
        return []
    reached = m["flips_to_target"]
    random = m["random_flips_for_same_drop"]
    acc = m["accuracy_per_flip"]
    lines = [
        "## Bit flips",
        "",
        f"BFA's progressive bit search on the design's ROM words as stored ({m['rom_data_bits']} data bits, "
        f"{m['protection']} protection; docs/security.md), {m['attack_batch']} attacker rows, accuracy on "
        f"{m['eval_samples']} test rows.",
        "",
        "| | flips | accuracy |",
        "|---|---|---|",
        f"| searched flips to {pct(m['target_accuracy'])} | "
        f"{'not reached in ' + str(m['physical_flips_per_step'][-1]) if reached is None else reached} | "
        f"{pct(acc[0])} → {pct(acc[-1])} |",
        f"| random flips for the same drop (median of trials) | "
        f"{'not reached in ' + str(m['random_flips_tried_up_to']) if random is None else random} | |",
    ]
    if "naive_attack" in m:
        n = m["naive_attack"]
        words = n.get("words", {})
        read = ", ".join(f"{v} {k}" for k, v in words.items() if v)
        lines.append(
            f"| the unprotected search's {n['flips']} flips on these ROMs ({read} words) | {n['flips']} | "
            f"{pct(n['accuracy'])}{' (fault raised)' if n['fault_raised'] else ''} |"
        )
    if "simulation" in m:
        sim = m["simulation"]
        lines += [
            "",
            f"Simulated with the flipped ROM files: {sim['samples']} samples, {sim['mismatches']} mismatches.",
        ]
    return lines + [""]


register_attack_section(AttackSection("bitflip", markdown))
