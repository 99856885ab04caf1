import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT))  # rtl/, sim/ and kernels/ live at the top of the repo


def pytest_configure(config):
    # One torch thread per test process: on 2 cores with pytest-xdist, more threads only contend.
    import torch
    torch.set_num_threads(1)


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
    """Frontend + the recipe's passes (default: canonicalize, [every pass the recipe has a
    table for,] lower), as `mpc compile` does, without writing anything."""
    from compiler import passes  # noqa: F401
    from compiler.frontend.onnx import load_onnx
    from compiler.passes.base import Context
    from compiler.passes.manager import run_flow
    graph = load_onnx(path)
    recipe = recipe or {}
    middle = [p for p in recipe if p not in ("passes", "canonicalize", "lower")]
    flow = recipe.get("passes", ["canonicalize", *middle, "lower"])
    ctx = Context(data=data, recipe=recipe, log=lambda *_: None, progress=False)
    lowered, _ = run_flow(graph, flow, ctx)
    return graph, lowered


@pytest.fixture(scope="session")
def digits_lowered(digits_model, digits_data):
    return lower_model(digits_model, digits_data)
