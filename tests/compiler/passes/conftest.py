"""Shared inputs of the training passes' tests: the bundled digits MLP canonicalized, and a
small slice of its data (200 training rows, 200 test rows)."""

import pytest

from compiler.data import Dataset
from compiler.frontend.onnx import load_onnx
from compiler.passes.base import Context, get_pass


@pytest.fixture(scope="module")
def float_graph(digits_model):
    quiet = Context(log=lambda *_: None, progress=False)
    return get_pass("canonicalize").run(load_onnx(digits_model), quiet)


@pytest.fixture(scope="module")
def small_data(digits_data):
    d = digits_data
    return Dataset(d.x_train[:200], d.y_train[:200], d.x_test[:200], d.y_test[:200])
