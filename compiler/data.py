"""The user's data: DATA.npz with x_train, y_train (members), x_test, y_test (non-members).

The data also fixes the task (graph.meta["task"], docs/ir.md): integer class labels y [N] make
a classification; float targets y [N, *output shape], or no y at all (the model reconstructs its
input: y = x), make a regression, scored by the mean squared error and, where `a_test` marks
test rows normal (0) or anomalous (1), by the anomaly-detection AUC of each row's error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.errors import MpcError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
INPUTS = ("x_train", "x_test")
CLASSIFICATION, REGRESSION = "classification", "regression"
# Rows each split needs: x_train calibrates and is split into members and a reference set
# (minmax, privacy_admm); the audit pairs as many members (x_train) with non-members (x_test).
MIN_ROWS = 2


class DataError(MpcError, ValueError):
    """The data file is unreadable or does not fit the model; the message says exactly how."""


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    path: str = ""
    task: str = CLASSIFICATION  # REGRESSION: y are float rows [N, outputs] (y = x when DATA.npz has none)
    a_test: np.ndarray | None = None  # regression: 1 where a test row is anomalous, 0 where normal

    @property
    def regression(self) -> bool:
        return self.task == REGRESSION


def load_data(
    path: str | Path,
    input_shape: tuple[int, ...],
    n_classes: int,
    layout: str | None = None,
    output_shape: tuple[int, ...] | None = None,
) -> Dataset:
    """`layout="nhwc"` (Graph.meta["input_layout"]): x arrives [N, H, W, C] for the NCHW
    `input_shape` and is transposed on load (docs/ir.md, "Import normalization").
    `output_shape` (default (n_classes,)): the model's output, which float targets must match."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    outputs = int(np.prod(output_shape)) if output_shape is not None else n_classes
    present = _members(path)
    if not any(k in present for k in ("y_train", "y_test")) and all(k in present for k in INPUTS):
        return _reconstruction(path, present, input_shape, layout, outputs)
    arrays = read_npz(path, REQUIRED)
    task = _task_of(arrays, outputs)
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        x = as_model_rows(x, input_shape, layout)
        arrays[f"x_{split}"] = _check_x(path, f"x_{split}", x, input_shape)
        if task == REGRESSION:
            arrays[f"y_{split}"] = _check_targets(path, f"y_{split}", y, len(x), outputs)
        else:  # a one-output model is a binary classifier: labels 0 and 1
            arrays[f"y_{split}"] = _check_y(path, f"y_{split}", y, len(x), max(n_classes, 2), outputs)
    a_test = _anomaly_labels(path, present, task, len(arrays["x_test"]))
    return Dataset(**arrays, path=str(path), task=task, a_test=a_test)


def _members(path: Path) -> list[str]:
    """The array names of an .npz file ([] where it is not one: read_npz then says why)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return list(npz.files) if isinstance(npz, np.lib.npyio.NpzFile) else []
    except Exception:
        return []


def _task_of(arrays: dict[str, np.ndarray], outputs: int) -> str:
    """Regression where y_train holds float rows of several values, else classification (integer
    rows, e.g. one-hot labels, are refused there as not class labels)."""
    y = arrays["y_train"]
    return REGRESSION if outputs > 1 and y.ndim >= 2 and y.dtype.kind == "f" and y.size > len(y) else CLASSIFICATION


def _reconstruction(path: Path, present: list[str], input_shape, layout, outputs: int) -> Dataset:
    """DATA.npz without y_train / y_test: the model reconstructs its input (an autoencoder)."""
    arrays = read_npz(path, INPUTS)
    inputs = int(np.prod(input_shape))
    if outputs != inputs:
        raise DataError(
            f"{path}: no y_train / y_test, which means the target is the input itself, but the model has {outputs} "
            f"outputs for {inputs} inputs; give y_train, y_test (class labels, or float targets [N, {outputs}])"
        )
    xs = {k: _check_x(path, k, as_model_rows(arrays[k], input_shape, layout), input_shape) for k in INPUTS}
    ys = {f"y_{k[2:]}": x.reshape(len(x), -1).copy() for k, x in xs.items()}
    a_test = _anomaly_labels(path, present, REGRESSION, len(xs["x_test"]))
    return Dataset(**xs, **ys, path=str(path), task=REGRESSION, a_test=a_test)


def _check_targets(path, name, y, n, outputs: int) -> np.ndarray:
    """Float targets of a regression, one row of `outputs` values per x row, as [n, outputs]."""
    if len(y) != n or y[0].size != outputs:
        raise DataError(f"{path}: {name} has shape {y.shape}; need ({n}, {outputs}) float targets (the model's output)")
    with np.errstate(all="ignore"):
        y = y.reshape(n, outputs).astype(np.float32)
    if not np.all(np.isfinite(y)):
        raise DataError(f"{path}: {name} contains NaN or Inf (or values beyond float32's range)")
    return y


def _anomaly_labels(path: Path, present: list[str], task: str, n: int) -> np.ndarray | None:
    """a_test: 0 (normal) or 1 (anomalous) per test row, for a regression's anomaly-detection AUC."""
    if "a_test" not in present:
        return None
    a = read_npz(path, ("a_test",))["a_test"]
    if task != REGRESSION:
        raise DataError(f"{path}: a_test (anomaly labels) is for a regression; y_train holds class labels")
    if a.shape != (n,):
        raise DataError(f"{path}: a_test has shape {a.shape}; need ({n},) labels, 0 normal or 1 anomalous")
    if a.dtype.kind not in "fiub" or not np.all(np.isin(a, (0, 1))):
        raise DataError(f"{path}: a_test must hold only 0 (normal) and 1 (anomalous)")
    return a.astype(np.int64)


def read_npz(
    path: Path, names: tuple[str, ...], error: type[ValueError] = DataError, missing_label: str = "array(s) "
) -> dict[str, np.ndarray]:
    """The named arrays of an .npz file, never unpickling anything (DATA.npz here, the audit's
    TRIGGER.npz): a foreign, truncated or pickled file, a single .npy, a missing or unreadable
    array is `error`, one line naming the file and the array."""
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as e:  # a pickle, a truncated or foreign file
        raise error(_one_line(f"{path}: not a readable .npz file ({type(e).__name__}: {e})")) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise error(f"{path}: a single .npy array, not an .npz file with {', '.join(names)}")
    with npz:
        found = ", ".join(repr(f) for f in npz.files) or "none"
        missing = [k for k in names if k not in npz.files]
        if missing:
            need = ", ".join(names)
            raise error(_one_line(f"{path}: missing {missing_label}{', '.join(missing)} (need {need}; found {found})"))
        arrays = {}
        for k in names:
            try:
                arrays[k] = npz[k]
            except Exception as e:  # object arrays (pickles), damaged members
                raise error(_one_line(f"{path}: {k} is unreadable ({type(e).__name__}: {e})")) from None
    return arrays


def as_model_rows(x: np.ndarray, input_shape: tuple[int, ...], layout: str | None = None) -> np.ndarray:
    """Rows x [N, ...] in the model's (NCHW) input shape where they hold the same values: an NHWC
    model's [N, H, W, C] rows transposed (docs/ir.md, "Import normalization"), a missing or extra
    axis of size one added or dropped (e.g. (N, 8, 8) images for a (1, 8, 8) input). Any other
    shape comes back as it is, for the caller to refuse by name."""
    if x.ndim == 0:
        return x
    if layout == "nhwc" and len(input_shape) == 3:
        c, h, w = input_shape
        if tuple(x.shape[1:]) != (h, w, c) and _same_but_unit_axes(x.shape[1:], (h, w, c)):
            x = x.reshape(len(x), h, w, c)
        if tuple(x.shape[1:]) == (h, w, c):
            x = x.transpose(0, 3, 1, 2)
    if tuple(x.shape[1:]) != tuple(input_shape) and _same_but_unit_axes(x.shape[1:], input_shape):
        x = x.reshape(len(x), *input_shape)
    return x


def _one_line(message: str) -> str:
    return " ".join(message.split("\n"))


def _check_x(path, name, x, input_shape) -> np.ndarray:
    if x.dtype.kind not in "fiub":
        raise DataError(f"{path}: {name} has dtype {x.dtype}; need a numeric array")
    if x.ndim == 0:
        raise DataError(f"{path}: {name} is a scalar; the model expects (N, {', '.join(map(str, input_shape))})")
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise DataError(
            f"{path}: {name} has shape {x.shape}; the model expects (N, {', '.join(map(str, input_shape))})"
        )
    if len(x) == 0:
        raise DataError(f"{path}: {name} is empty")
    if len(x) < MIN_ROWS:
        raise DataError(
            f"{path}: {name} has {len(x)} row; mpc needs at least {MIN_ROWS} (to calibrate, and to pair "
            "members x_train with non-members x_test)"
        )
    with np.errstate(all="ignore"):
        x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: {name} contains NaN or Inf (or values beyond float32's range)")
    return x


def _same_but_unit_axes(shape, other) -> bool:
    """Equal once axes of size 1 are dropped: a missing or extra channel axis of one."""
    return [d for d in shape if d != 1] == [d for d in other if d != 1]


def _check_y(path, name, y, n, n_classes, outputs: int = 1) -> np.ndarray:
    if y.ndim != 1 or len(y) != n:
        targets = f" or ({n}, {outputs}) float targets" if outputs > 1 else ""
        raise DataError(f"{path}: {name} has shape {y.shape}; need ({n},) class labels{targets}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            if y.min() < 0 or y.max() >= n_classes:
                raise DataError(
                    f"{path}: {name} has labels in [{y.min():g}, {y.max():g}]; the model has {n_classes} classes"
                )
            y = y.astype(np.int64)
        else:
            raise DataError(f"{path}: {name} has dtype {y.dtype}; need integer class labels")
    if y.min() < 0 or y.max() >= n_classes:
        raise DataError(f"{path}: {name} has labels in [{y.min()}, {y.max()}]; the model has {n_classes} classes")
    return y.astype(np.int64)


# ---- the task's scores (what every stage reports for a regression) ---------------------------
def is_regression(graph) -> bool:
    """graph.meta["task"] (set where the flow starts, from the data): "regression" or not."""
    return graph.meta.get("task") == REGRESSION


def row_errors(outputs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's mean squared error between a model's outputs and its targets, in float64: the
    regression's loss per example (the anomaly score of an autoencoder)."""
    diff = np.asarray(outputs, np.float64).reshape(len(y), -1) - np.asarray(y, np.float64).reshape(len(y), -1)
    return (diff**2).mean(axis=1)


def anomaly_auc(errors: np.ndarray, anomalous: np.ndarray | None) -> float | None:
    """ROC AUC of the reconstruction error as an anomaly score (anomalous rows positive); None
    without labels or where the rows hold only one of the two kinds."""
    if anomalous is None or len(np.unique(anomalous)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(anomalous, errors))


def regression_scores(test_outputs: np.ndarray, data: Dataset, train_outputs: np.ndarray | None = None) -> dict:
    """{"test_mse", "test_auc"[, "train_mse"]}: the report's figures for a regression."""
    errors = row_errors(test_outputs, data.y_test)
    scores = {"test_mse": float(errors.mean()), "test_auc": anomaly_auc(errors, data.a_test)}
    if train_outputs is not None:
        scores["train_mse"] = float(row_errors(train_outputs, data.y_train).mean())
    return scores
