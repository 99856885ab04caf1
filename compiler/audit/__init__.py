"""Membership-inference audit of a build (docs/audit.md). Models are seen only through the
executors: a prediction function per target (targets.py).

This module stays import-light (the CLI reads the names below for its help); the names and their
parsing live in options.py."""

from compiler.audit.options import (
    ATTACK_NAMES,
    BACKDOOR,
    BITFLIP,
    DEFAULT_ATTACKS,
    DEFAULT_TARGETS,
    GROUPS,
    SPECIAL_ATTACKS,
)
