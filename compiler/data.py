"""The user's data: DATA.npz with x_train, y_train (members), x_test, y_test (non-members)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.errors import MpcError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
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


def load_data(path: str | Path, input_shape: tuple[int, ...], n_classes: int, layout: str | None = None) -> Dataset:
    """`layout="nhwc"` (Graph.meta["input_layout"]): x arrives [N, H, W, C] for the NCHW
    `input_shape` and is transposed on load (docs/ir.md, "Import normalization")."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    arrays = read_npz(path, REQUIRED)
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        x = as_model_rows(x, input_shape, layout)
        arrays[f"x_{split}"] = _check_x(path, f"x_{split}", x, input_shape)
        # a one-output model is a binary classifier: labels 0 and 1
        arrays[f"y_{split}"] = _check_y(path, f"y_{split}", y, len(x), max(n_classes, 2))
    return Dataset(**arrays, path=str(path))


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


def _check_y(path, name, y, n, n_classes) -> np.ndarray:
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{path}: {name} has shape {y.shape}; need ({n},) class labels")
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
