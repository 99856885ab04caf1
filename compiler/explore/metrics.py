"""Objectives and the figures of a point.

A point's metrics are every scalar of its report.json, flattened to dotted keys
(`compiled.test_accuracy`, `hardware.energy_pj.compiled`, `hardware.lut`), plus, when audited,
`audit.<target>.test_accuracy` and `audit.<target>.<attack>.<metric>` from audit.json
(`audit.compiled.lira_online.tpr_at_1pct_fpr`).

An objective is a metric and a direction. Known metrics carry their own (accuracy and compression
up; hardware cost, energy and attack success down); short names stand for the common ones
(`energy`, `lut`, `lira_tpr`, ...); any other metric takes a direction as a prefix, `min:KEY` or
`max:KEY`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from compiler.audit.options import ATTACK_NAMES
from compiler.errors import MpcError

MAX, MIN = "max", "min"

ALIASES = {
    "accuracy": "compiled.test_accuracy",
    "float_accuracy": "float.test_accuracy",
    "mse": "compiled.test_mse",  # a regression's (report.json task "regression")
    "float_mse": "float.test_mse",
    "anomaly_auc": "compiled.test_auc",  # its anomaly-detection AUC (DATA.npz with a_test)
    "compression": "model.compression_ratio",
    "energy": "hardware.energy_pj.compiled",
    "energy_ratio": "hardware.energy_ratio",
    "lut": "hardware.lut",
    "ff": "hardware.ff",
    "dsp": "hardware.dsp",
    "bram": "hardware.bram",
    "lutram": "hardware.lutram",
    "cells": "hardware.cells",
    "area": "hardware.area_nand2",
    "cycles": "hardware.cycles_per_inference",
    "interval": "hardware.initiation_interval",
    "latency": "hardware.latency_us",
    "throughput": "hardware.throughput_per_s",
    "rom_bits": "hardware.rom_bits",
    "multipliers": "hardware.multipliers",
    "weight_bits": "model.weight_bits",
    "parameters": "model.parameters",
    "lira_tpr": "audit.compiled.lira_online.tpr_at_1pct_fpr",
    "lira_auc": "audit.compiled.lira_online.auc",
}

DIRECTIONS = {
    "compiled.test_accuracy": MAX,
    "compiled.train_accuracy": MAX,
    "float.test_accuracy": MAX,
    "float.train_accuracy": MAX,
    "compiled.test_mse": MIN,
    "compiled.train_mse": MIN,
    "float.test_mse": MIN,
    "float.train_mse": MIN,
    "compiled.test_auc": MAX,
    "float.test_auc": MAX,
    "model.compression_ratio": MAX,
    "model.weight_bits": MIN,
    "model.bias_bits": MIN,
    "model.parameters": MIN,
    "hardware.energy_pj.compiled": MIN,
    "hardware.energy_ratio": MAX,
    "hardware.throughput_per_s": MAX,
    "simulation.mismatches": MIN,
    "simulation.cycles_per_inference": MIN,
    "simulation.initiation_interval": MIN,
} | {
    f"hardware.{k}": MIN
    for k in (
        "lut",
        "ff",
        "dsp",
        "bram",
        "lutram",
        "cells",
        "area_nand2",
        "rom_bits",
        "multipliers",
        "cycles_per_inference",
        "initiation_interval",
        "estimated_cycles_per_inference",
        "estimated_initiation_interval",
        "latency_us",
    )
}
ATTACK_METRICS = (
    "auc",
    "balanced_accuracy",
    "tpr_at_1pct_fpr",
    "tpr_at_0_1pct_fpr",
    "member_precision",
    "member_recall",
    "member_f1",
)
SECTIONS = ("float", "compiled", "model", "hardware", "simulation", "audit")
# what only yosys measures: an objective on one of these needs synthesis
SYNTH_KEYS = {f"hardware.{k}" for k in ("lut", "ff", "dsp", "bram", "lutram", "cells", "area_nand2")}
SKIP = {"layers", "passes", "privacy", "energy_model", "created", "source", "data", "schema_version"}


class ObjectiveError(MpcError, ValueError):
    pass


@dataclass(frozen=True)
class Objective:
    key: str  # the metric, a dotted key of the point's metrics
    direction: str  # "max" or "min"
    given: str  # as written in SPACE.toml

    @property
    def sign(self) -> float:
        """+1 where more is better: objectives compared as sign * value, higher wins."""
        return 1.0 if self.direction == MAX else -1.0

    @property
    def attack(self) -> tuple[str, str] | None:
        """(target, attack) an audit objective reads, else None."""
        parts = self.key.split(".")
        return (parts[1], parts[2]) if parts[0] == "audit" and len(parts) == 4 else None

    def label(self) -> str:
        return f"{self.given} ({'higher' if self.direction == MAX else 'lower'} is better)"


def parse_objective(text: str) -> Objective:
    """'accuracy', 'hardware.lut', 'min:hardware.synthesis.seconds' -> Objective; ObjectiveError
    says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ObjectiveError(f"an objective is a metric name, got {text!r}")
    direction = None
    name = text.strip()
    if m := re.fullmatch(r"(min|max):(.*)", name):
        direction, name = m.group(1), m.group(2).strip()
    key = ALIASES.get(name, name)
    known = _known_direction(key)
    if direction is None:
        if known is None:
            raise ObjectiveError(
                f"unknown objective {text!r} (known: {', '.join(ALIASES)}, the report keys of docs/explore.md, "
                "audit.<target>.<attack>.<metric>; any other metric as min:KEY or max:KEY)"
            )
        direction = known
    parts = key.split(".")
    if parts[0] not in SECTIONS or len(parts) < 2 or not all(parts):
        raise ObjectiveError(
            f"unknown objective {text!r}: a metric is a dotted key of report.json under {', '.join(SECTIONS)}"
        )
    if parts[0] == "audit" and (len(parts) not in (3, 4) or (len(parts) == 4 and parts[2] not in ATTACK_NAMES)):
        raise ObjectiveError(
            f"unknown objective {text!r}: audit metrics are audit.<target>.<attack>.<metric> "
            f"(attacks: {', '.join(ATTACK_NAMES)}) or audit.<target>.test_accuracy"
        )
    return Objective(key, direction, text.strip())


def _known_direction(key: str) -> str | None:
    if key in DIRECTIONS:
        return DIRECTIONS[key]
    parts = key.split(".")
    if parts[0] == "audit" and len(parts) == 3 and parts[2] in ("test_accuracy", "train_accuracy"):
        return MAX
    if parts[0] == "audit" and len(parts) == 4 and parts[2] in ATTACK_NAMES and parts[3] in ATTACK_METRICS:
        return MIN  # the attack's success: the less, the more private
    return None


def flatten(doc: dict, prefix: str = "") -> dict:
    """Every number, bool, None and short one-line string of a report, under dotted keys."""
    flat: dict = {}
    for key, value in doc.items():
        if not prefix and key in SKIP:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if key not in SKIP:
                flat |= flatten(value, name + ".")
        elif value is None or isinstance(value, (bool, int, float)):
            flat[name] = value
        elif isinstance(value, str) and len(value) <= 60 and "\n" not in value:
            flat[name] = value
    return flat


def point_metrics(report: dict, audit: dict | None = None) -> dict:
    """The point's metrics from its report.json (and audit.json)."""
    metrics = flatten(report)
    for target, entry in ((audit or {}).get("targets") or {}).items():
        for k in ("test_accuracy", "train_accuracy"):
            metrics[f"audit.{target}.{k}"] = entry.get(k)
        for attack, values in (entry.get("attacks") or {}).items():
            for k, v in values.items():
                if v is None or isinstance(v, (bool, int, float)):
                    metrics[f"audit.{target}.{attack}.{k}"] = v
    return metrics


def value_of(metrics: dict, objective: Objective) -> float | None:
    """The objective's value as a finite float, or None (missing, not a number)."""
    v = metrics.get(objective.key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)
