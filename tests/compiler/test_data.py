"""compiler/data.py: DATA.npz is read without unpickling, shaped to the model's input, and refused
in one line naming the file and the array when it does not fit."""

import numpy as np
import pytest

from compiler.data import DataError, as_model_rows, load_data


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good(n=4, shape=(1, 8, 8)):
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.random((n, *shape), dtype=np.float32),
        "y_train": np.arange(n) % 3,
        "x_test": rng.random((n, *shape), dtype=np.float32),
        "y_test": np.arange(n) % 3,
    }


def test_a_good_file_loads_with_int64_labels_and_float32_rows(tmp_path):
    data = load_data(_write(tmp_path / "d.npz", **_good()), (1, 8, 8), 3)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.x_test.shape == (4, 1, 8, 8)


def test_rows_missing_a_unit_channel_axis_are_reshaped(tmp_path):
    arrays = _good()
    arrays["x_train"] = arrays["x_train"][:, 0]
    data = load_data(_write(tmp_path / "d.npz", **arrays), (1, 8, 8), 3)
    assert data.x_train.shape == (4, 1, 8, 8)


def test_nhwc_rows_are_transposed_to_the_models_nchw_input():
    x = np.arange(2 * 4 * 5 * 3).reshape(2, 4, 5, 3)
    rows = as_model_rows(x, (3, 4, 5), layout="nhwc")
    assert rows.shape == (2, 3, 4, 5)
    assert rows[1, 2, 3, 4] == x[1, 3, 4, 2]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"y_train": np.arange(4) + 5}, "y_train has labels in [5, 8]; the model has 3 classes"),
        ({"x_test": np.full((4, 1, 8, 8), np.nan, np.float32)}, "x_test contains NaN or Inf"),
        ({"x_train": np.zeros((4, 2, 8, 8), np.float32)}, "x_train has shape (4, 2, 8, 8)"),
        ({"y_test": np.array([0.5, 1, 2, 0])}, "y_test has dtype float64; need integer class labels"),
    ],
)
def test_bad_arrays_are_refused_naming_the_file_and_array(tmp_path, change, message):
    path = _write(tmp_path / "d.npz", **(_good() | change))
    with pytest.raises(DataError) as e:
        load_data(path, (1, 8, 8), 3)
    assert str(path) in str(e.value) and message in str(e.value)


def test_a_missing_array_and_a_pickle_are_refused_without_unpickling(tmp_path):
    arrays = _good()
    del arrays["y_test"]
    with pytest.raises(DataError, match="missing array\\(s\\) y_test"):
        load_data(_write(tmp_path / "d.npz", **arrays), (1, 8, 8), 3)
    pickled = tmp_path / "p.npz"
    np.savez(pickled, **(_good() | {"y_test": np.array([{"code": 1}] * 4, dtype=object)}))
    with pytest.raises(DataError, match="y_test is unreadable"):
        load_data(pickled, (1, 8, 8), 3)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_data(tmp_path / "absent.npz", (1, 8, 8), 3)
