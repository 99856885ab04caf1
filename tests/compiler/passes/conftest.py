"""Shared inputs of the training passes' tests: a small slice of the digits data (200 training
rows, 200 test rows); the canonicalized MLP, `float_graph`, is tests/compiler/conftest.py's."""

import pytest

from compiler.data import Dataset


@pytest.fixture(scope="module")
def small_data(digits_data):
    d = digits_data
    return Dataset(d.x_train[:200], d.y_train[:200], d.x_test[:200], d.y_test[:200])
