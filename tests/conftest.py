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
    table for,] lower, plan), as `mpc compile` does, without writing anything."""
    from compiler import passes  # noqa: F401
    from compiler.frontend.onnx import load_onnx
    from compiler.passes.base import Context
    from compiler.passes.manager import run_flow

    graph = load_onnx(path)
    recipe = recipe or {}
    from compiler.passes.base import with_plan

    middle = [p for p in recipe if p not in ("passes", "canonicalize", "lower", "plan")]
    flow = with_plan(recipe.get("passes", ["canonicalize", *middle, "lower"]))
    ctx = Context(data=data, recipe=recipe, log=lambda *_: None, progress=False)
    lowered, _ = run_flow(graph, flow, ctx)
    return graph, lowered


@pytest.fixture(scope="session")
def digits_lowered(digits_model, digits_data):
    return lower_model(digits_model, digits_data)


def export_pool_zoo(path, seed: int = 0):
    """A 1x8x8 CNN with every pooling lower supports: a maxpool before its relu, average pooling
    with padding in both count modes, a strided padded conv, global average pooling."""
    import warnings

    import torch

    class PoolZoo(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.c2 = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1)
            self.fc = torch.nn.Linear(6, 10)

        def forward(self, x):
            f = torch.nn.functional
            x = torch.relu(f.max_pool2d(self.c1(x), 2))
            x = f.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
            x = torch.relu(self.c2(x))
            x = f.avg_pool2d(x, 2, stride=1, padding=1)
            return self.fc(torch.flatten(f.adaptive_avg_pool2d(x, 1), 1))

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            PoolZoo().eval(),
            (torch.zeros(1, 1, 8, 8),),
            str(path),
            dynamo=False,
            input_names=["x"],
            dynamic_axes={"x": {0: "n"}},
        )
    return path
