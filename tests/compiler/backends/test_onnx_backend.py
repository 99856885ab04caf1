import numpy as np
import onnxruntime as ort
import pytest

from compiler.backends.onnx import OnnxBackendError, to_onnx
from compiler.exec import golden
from tests.conftest import EXAMPLES, lower_model


def _run(graph, x):
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {graph.inputs[0].name: x})


@pytest.mark.parametrize(
    "model, recipe",
    [
        ("digits_mlp.onnx", None),
        ("digits_matmul_add.onnx", None),
        ("digits_mlp.onnx", {"lower": {"activation_bits": 4, "weight_bits": 3}}),  # narrow: Clip after QuantizeLinear
        ("digits_mlp.onnx", {"admm": {"sparsity": 0.7, "bits": 5, "admm_epochs": 2, "retrain_epochs": 1}}),
    ],
)
def test_integer_onnx_is_identical_to_golden_on_all_of_x_test(model, recipe, digits_data):
    _, graph = lower_model(EXAMPLES / model, digits_data, recipe)
    logits, logits_q, classes = _run(graph, digits_data.x_test)
    ref = golden.run(graph, digits_data.x_test)
    assert logits_q.dtype == np.int32
    assert np.array_equal(logits_q, ref.logits_q)
    assert np.array_equal(classes, ref.classes)
    assert np.array_equal(logits, ref.logits)


def test_rounding_ties_and_saturation_agree_with_golden(digits_lowered):
    """Inputs on rounding ties and far outside the calibrated range exercise every corner."""
    _, graph = digits_lowered
    frac = graph.meta["input_format"]["frac"]
    rng = np.random.default_rng(0)
    ties = (rng.integers(-300, 300, size=(256, 8, 8)) + 0.5) * 2.0**-frac  # exact .5 steps
    x = np.concatenate([ties, rng.normal(0, 50, size=(256, 8, 8))]).astype(np.float32)
    _, logits_q, classes = _run(graph, x)
    ref = golden.run(graph, x)
    assert np.array_equal(logits_q, ref.logits_q) and np.array_equal(classes, ref.classes)


def test_float_graphs_are_refused(digits_lowered):
    float_g, _ = digits_lowered
    with pytest.raises(OnnxBackendError, match="run the lower pass first"):
        to_onnx(float_g)
