"""The audit's options as the user names them: attacks (one by one or in groups) and targets.

One place for the names and their parsing: `mpc audit` (the CLI's help and defaults), the audit
itself (run.py) and `mpc explore` ([explore.audit] in SPACE.toml) all read them here. Only the
standard library: the CLI imports this module to print its help.
"""

from __future__ import annotations

from compiler.errors import MpcError

ATTACK_NAMES = (
    "loss_threshold",
    "confidence_threshold",
    "entropy_threshold",
    "modified_entropy_threshold",
    "shadow",
    "lira_offline",
    "lira_online",
    "label_only",
)  # membership inference, in the order attacks.py runs and reports them
GROUPS = {
    "threshold": ["loss_threshold", "confidence_threshold", "entropy_threshold", "modified_entropy_threshold"],
    "lira": ["lira_offline", "lira_online"],
    "all": list(ATTACK_NAMES),
}
# Not membership inference: needs a trigger file (`--trigger`, audit/backdoor.py), so no group has it.
BACKDOOR = "backdoor"
# Not membership inference either: flips the compiled design's ROM bits (audit/bitflip.py).
BITFLIP = "bitflip"
SPECIAL_ATTACKS = (BACKDOOR, BITFLIP)
DEFAULT_ATTACKS = "threshold,shadow,lira,label_only"
DEFAULT_TARGETS = "original,compiled"


class AuditError(MpcError, ValueError):
    """The audit cannot run as asked; the message says why."""


def parse_attacks(spec: str | list[str]) -> list[str]:
    """Comma-separated (or listed) attack and group names -> the attacks, each once, in canonical
    order; AuditError names an unknown one."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    known = [*ATTACK_NAMES, *SPECIAL_ATTACKS]
    chosen = []
    for name in (n.strip() for n in names if n.strip()):
        expanded = GROUPS.get(name, [name])
        unknown = [n for n in expanded if n not in known]
        if unknown:
            groups = ", ".join(GROUPS)
            raise AuditError(f"unknown attack {unknown[0]!r} (attacks: {', '.join(known)}; groups: {groups})")
        chosen += [n for n in expanded if n not in chosen]
    if not chosen:
        raise AuditError("no attack selected")
    return [n for n in known if n in chosen]


def parse_targets(spec: str | list[str]) -> list[str]:
    """Comma-separated (or listed) target names -> each once, in the order given; the build
    decides which names exist (targets.py)."""
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    if not names:
        raise AuditError("no target selected")
    return list(dict.fromkeys(names))
