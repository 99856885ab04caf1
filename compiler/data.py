"""The user's data: DATA.npz with x_train, y_train (members), x_test, y_test (non-members)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

REQUIRED = ("x_train", "y_train", "x_test", "y_test")


class DataError(ValueError):
    """The data file is unreadable or does not fit the model; the message says exactly how."""


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    path: str = ""


def load_data(path: str | Path, input_shape: tuple[int, ...], n_classes: int) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in REQUIRED if k not in npz.files]
            if missing:
                raise DataError(
                    f"{path}: missing array(s) {', '.join(missing)} (need {', '.join(REQUIRED)}; "
                    f"found {', '.join(npz.files) or 'none'})"
                )
            arrays = {k: npz[k] for k in REQUIRED}
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        arrays[f"x_{split}"] = _check_x(path, f"x_{split}", x, input_shape)
        arrays[f"y_{split}"] = _check_y(path, f"y_{split}", y, len(x), n_classes)
    return Dataset(**arrays, path=str(path))


def _check_x(path, name, x, input_shape) -> np.ndarray:
    if x.dtype.kind not in "fiub":
        raise DataError(f"{path}: {name} has dtype {x.dtype}; need a numeric array")
    if tuple(x.shape[1:]) != tuple(input_shape) and _same_but_unit_axes(x.shape[1:], input_shape):
        x = x.reshape(len(x), *input_shape)  # e.g. (N, 8, 8) images for a (1, 8, 8) model input
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise DataError(
            f"{path}: {name} has shape {x.shape}; the model expects (N, {', '.join(map(str, input_shape))})"
        )
    if len(x) == 0:
        raise DataError(f"{path}: {name} is empty")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: {name} contains NaN or Inf")
    return x


def _same_but_unit_axes(shape, other) -> bool:
    """Equal once axes of size 1 are dropped: a missing or extra channel axis of one."""
    return [d for d in shape if d != 1] == [d for d in other if d != 1]


def _check_y(path, name, y, n, n_classes) -> np.ndarray:
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{path}: {name} has shape {y.shape}; need ({n},) class labels")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{path}: {name} has dtype {y.dtype}; need integer class labels")
    if y.min() < 0 or y.max() >= n_classes:
        raise DataError(f"{path}: {name} has labels in [{y.min()}, {y.max()}]; the model has {n_classes} classes")
    return y.astype(np.int64)
