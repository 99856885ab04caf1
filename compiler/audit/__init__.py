"""Membership-inference audit of a build (docs/audit.md). Models are seen only through the
executors: a prediction function per target (targets.py).

This module stays import-light (the CLI reads the names below for its help)."""

ATTACK_NAMES = (
    "loss_threshold",
    "confidence_threshold",
    "entropy_threshold",
    "modified_entropy_threshold",
    "shadow",
    "lira_offline",
    "lira_online",
    "label_only",
)
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
