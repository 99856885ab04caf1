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


# ---- the regression task: float targets, no y (reconstruct the input), a_test ---------------
def _regression(n=4, outputs=5, **extra):
    rng = np.random.default_rng(1)
    arrays = {k: v for k, v in _good(n, (8,)).items() if k.startswith("x_")}
    return arrays | {"y_train": rng.random((n, outputs)), "y_test": rng.random((n, outputs))} | extra


def test_float_targets_of_the_output_shape_make_a_regression(tmp_path):
    arrays = _regression()
    data = load_data(_write(tmp_path / "d.npz", **arrays), (8,), 5)
    assert data.task == "regression" and data.regression and data.a_test is None
    assert data.y_train.dtype == np.float32 and data.y_train.shape == (4, 5)
    np.testing.assert_allclose(data.y_test, arrays["y_test"].astype(np.float32))
    # targets shaped as a multi-axis output are taken as rows of its values
    shaped = _regression(outputs=6) | {"y_train": np.zeros((4, 2, 3)), "y_test": np.zeros((4, 2, 3))}
    data = load_data(_write(tmp_path / "s.npz", **shaped), (8,), 6, output_shape=(2, 3))
    assert data.regression and data.y_train.shape == (4, 6)


def test_labels_still_make_a_classification(tmp_path):
    data = load_data(_write(tmp_path / "d.npz", **_good(shape=(8,))), (8,), 3)
    assert data.task == "classification" and not data.regression


def test_without_y_the_target_is_the_input(tmp_path):
    arrays = {k: v for k, v in _regression(outputs=8).items() if k.startswith("x_")}
    data = load_data(_write(tmp_path / "d.npz", **arrays), (8,), 8)
    assert data.regression
    np.testing.assert_array_equal(data.y_train, data.x_train)
    np.testing.assert_array_equal(data.y_test, data.x_test)
    # an image model reconstructing its image: the rows, flattened
    images = {k: np.zeros((4, 1, 4, 4), np.float32) for k in ("x_train", "x_test")}
    data = load_data(_write(tmp_path / "i.npz", **images), (1, 4, 4), 16, output_shape=(16,))
    assert data.y_train.shape == (4, 16)


def test_anomaly_labels_are_read_for_a_regression(tmp_path):
    arrays = _regression(a_test=np.array([0, 1, 1, 0]))
    data = load_data(_write(tmp_path / "d.npz", **arrays), (8,), 5)
    assert data.a_test.tolist() == [0, 1, 1, 0] and data.a_test.dtype == np.int64


@pytest.mark.parametrize(
    "arrays, outputs, message",
    [
        (_regression(outputs=4), 5, "y_train has shape (4, 4); need (4, 5) float targets"),
        (_regression() | {"y_test": np.zeros((3, 5))}, 5, "y_test has shape (3, 5); need (4, 5) float targets"),
        (_regression() | {"y_test": np.full((4, 5), np.inf)}, 5, "y_test contains NaN or Inf"),
        (_regression() | {"y_train": np.eye(5, dtype=np.int64)[:4]}, 5, "y_train has shape (4, 5); need (4,) class"),
        (
            _regression() | {"y_train": np.zeros((4, 1))},
            5,
            "y_train has shape (4, 1); need (4,) class labels or (4, 5)",
        ),
        ({"x_train": np.zeros((4, 8)), "x_test": np.zeros((4, 8))}, 5, "no y_train / y_test, which means the target"),
        (_regression(a_test=np.array([0, 1, 2, 0])), 5, "a_test must hold only 0 (normal) and 1 (anomalous)"),
        (_regression(a_test=np.array([0, 1])), 5, "a_test has shape (2,); need (4,) labels"),
        (_good(shape=(8,)) | {"a_test": np.zeros(4)}, 3, "a_test (anomaly labels) is for a regression"),
    ],
)
def test_bad_regression_data_is_refused_in_one_line(tmp_path, arrays, outputs, message):
    path = _write(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError) as e:
        load_data(path, (8,), outputs)
    assert str(path) in str(e.value) and message in str(e.value) and "\n" not in str(e.value)


def test_the_scores_of_a_regression():
    from compiler.data import Dataset, anomaly_auc, regression_scores, row_errors

    y = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    out = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    np.testing.assert_allclose(row_errors(out, y), [0.5, 0.0, 2.0])
    assert anomaly_auc(np.array([0.5, 0.0, 2.0]), np.array([0, 0, 1])) == 1.0
    assert anomaly_auc(np.array([0.5, 0.0, 2.0]), np.array([1, 0, 0])) == 0.5
    assert anomaly_auc(np.array([0.5, 0.0]), np.array([1, 1])) is None  # one kind only: undefined
    data = Dataset(y, y, y, y, task="regression", a_test=np.array([0, 0, 1]))
    assert regression_scores(out, data, out) == {"test_mse": 2.5 / 3, "test_auc": 1.0, "train_mse": 2.5 / 3}
