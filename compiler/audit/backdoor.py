"""The backdoor audit: how often a trigger turns a model's answer into the attacker's class.

A trigger file (TRIGGER.npz) holds `mask` and `pattern`, each of the model's input shape (one row
of DATA.npz's x, NHWC for a model that takes NHWC), and `target`, the attacker's class. A
triggered input is x * (1 - mask) + pattern * mask (BadNets' stamp, Gu et al. 2017; a mask of
0/1 pastes a patch, fractions blend). The attack success rate (ASR) is measured on the test
samples whose label is not the target: the share the model classifies as the target once
triggered. The compiled model's numbers come from its exact integer outputs, like every audit
target (targets.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.data import as_model_rows, read_npz
from compiler.errors import MpcError


class TriggerError(MpcError, ValueError):
    """The trigger file cannot be used with this model; the message names the file and field."""


@dataclass(frozen=True)
class Trigger:
    mask: np.ndarray  # the model's input shape (NCHW inside mpc), values in [0, 1]
    pattern: np.ndarray  # same shape
    target: int
    path: str = ""

    def apply(self, x: np.ndarray) -> np.ndarray:
        """x (N, *input_shape) with the trigger stamped on every row."""
        return (x * (1 - self.mask) + self.pattern * self.mask).astype(np.float32)


def load_trigger(path: str | Path, input_shape: tuple[int, ...], n_classes: int, layout: str | None = None) -> Trigger:
    """Read and check TRIGGER.npz for a model with this (NCHW) input shape and class count.
    `layout="nhwc"`: the arrays may come as [H, W, C], like that model's data (compiler/data.py)."""
    path = Path(path)
    if not path.is_file():
        raise TriggerError(f"{path}: no such trigger file")
    arrays = read_npz(path, ("mask", "pattern", "target"), TriggerError, missing_label="")
    mask = _input_array(path, "mask", arrays["mask"], input_shape, layout)
    pattern = _input_array(path, "pattern", arrays["pattern"], input_shape, layout)
    if mask.min() < 0 or mask.max() > 1:
        raise TriggerError(f"{path}: mask has values in [{mask.min():g}, {mask.max():g}]; need values in [0, 1]")
    return Trigger(mask, pattern, _target_class(path, arrays["target"], n_classes), str(path))


def _input_array(path: Path, name: str, a: np.ndarray, input_shape: tuple[int, ...], layout: str | None) -> np.ndarray:
    """One row of x, as DATA.npz's rows are read (compiler/data.py: NHWC, axes of size one)."""
    if a.dtype.kind not in "fiub":
        raise TriggerError(f"{path}: {name} has dtype {a.dtype}; need a numeric array")
    shape = tuple(input_shape)
    rows = as_model_rows(a[None], shape, layout)
    if rows.shape[1:] != shape:
        raise TriggerError(f"{path}: {name} has shape {a.shape}; the model's input is {shape} (one row of x)")
    a = rows[0].astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise TriggerError(f"{path}: {name} contains NaN or Inf")
    return a


def _target_class(path: Path, target: np.ndarray, n_classes: int) -> int:
    if target.size != 1 or target.dtype.kind not in "iuf" or not np.isfinite(target).all():
        raise TriggerError(f"{path}: target must be one class number, got {target!r}".replace("\n", " "))
    value = target.reshape(()).item()
    if value != int(value) or not 0 <= int(value) < n_classes:
        raise TriggerError(f"{path}: target {value!r} is not a class of this model (0..{n_classes - 1})")
    return int(value)


def backdoor_metrics(predict_classes, x_test: np.ndarray, y_test: np.ndarray, trigger: Trigger) -> dict:
    """ASR on the triggered non-target test samples, and clean accuracy on the whole test set.
    `predict_classes(x) -> class per row` is the target's own decision (argmax of its logits)."""
    victims = y_test != trigger.target
    clean = predict_classes(x_test)
    triggered = predict_classes(trigger.apply(x_test[victims])) if victims.any() else np.zeros(0, np.int64)
    return {
        "attack_success_rate": round(float((triggered == trigger.target).mean()), 6) if victims.any() else None,
        "clean_accuracy": round(float((clean == y_test).mean()), 6),
        "samples": int(victims.sum()),
        "target_class": trigger.target,
    }
