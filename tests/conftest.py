import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT))  # rtl/, sim/ and kernels/ live at the top of the repo


@pytest.fixture(scope="session")
def digits_model() -> Path:
    return EXAMPLES / "digits_mlp.onnx"


@pytest.fixture(scope="session")
def matmul_add_model() -> Path:
    return EXAMPLES / "digits_matmul_add.onnx"


@pytest.fixture(scope="session")
def digits_npz() -> Path:
    return EXAMPLES / "digits.npz"


@pytest.fixture(scope="session")
def digits_data(digits_npz):
    from compiler.data import load_data
    return load_data(digits_npz, (8, 8), 10)


def lower_model(path, data, recipe=None):
    """Frontend + canonicalize + lower, as `mpc compile` does, without writing anything."""
    from compiler import passes  # noqa: F401
    from compiler.frontend.onnx import load_onnx
    from compiler.passes.base import Context
    from compiler.passes.manager import run_flow
    graph = load_onnx(path)
    ctx = Context(data=data, recipe=recipe or {}, log=lambda *_: None)
    lowered, _ = run_flow(graph, ["canonicalize", "lower"], ctx)
    return graph, lowered


@pytest.fixture(scope="session")
def digits_lowered(digits_model, digits_data):
    return lower_model(digits_model, digits_data)
