"""model.int.onnx of convolutional graphs: ConvInteger, int8 MaxPool and the exact integer
average pooling give the golden executor's integers on every test sample."""

import numpy as np
import onnxruntime as ort
import pytest

from compiler.backends.onnx import to_onnx
from compiler.data import load_data
from compiler.exec import golden
from tests.conftest import EXAMPLES, export_pool_zoo, lower_model


@pytest.fixture(scope="module")
def cnn_data():
    return load_data(EXAMPLES / "digits.npz", (1, 8, 8), 10)


def _assert_onnx_equals_golden(graph, x):
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    logits, logits_q, classes = session.run(None, {graph.inputs[0].name: x})
    ref = golden.run(graph, x)
    assert np.array_equal(logits_q, ref.logits_q)
    assert np.array_equal(classes, ref.classes) and np.array_equal(logits, ref.logits)


@pytest.mark.parametrize("recipe", [None, {"lower": {"activation_bits": 4, "weight_bits": 3}}])
def test_cnn_onnx_is_identical_to_golden_on_all_of_x_test(cnn_data, recipe):
    _, graph = lower_model(EXAMPLES / "digits_cnn.onnx", cnn_data, recipe)
    _assert_onnx_equals_golden(graph, cnn_data.x_test)


def test_every_pool_is_identical_to_golden(tmp_path, cnn_data):
    _, graph = lower_model(export_pool_zoo(tmp_path / "zoo.onnx"), cnn_data)
    _assert_onnx_equals_golden(graph, cnn_data.x_test)


def test_average_pool_rounding_ties_and_extremes(tmp_path, cnn_data):
    """Inputs at the activation range's ends and window sums on exact .5 ties: the ONNX
    division rounds half up exactly as kernels.pool2d does (scaled inputs saturate the range)."""
    _, graph = lower_model(export_pool_zoo(tmp_path / "zoo.onnx", seed=1), cnn_data)
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [cnn_data.x_test[:64] * 40, -cnn_data.x_test[:64] * 40, rng.integers(-3, 4, size=(64, 1, 8, 8)) * 0.25]
    ).astype(np.float32)
    _assert_onnx_equals_golden(graph, x)
