"""Fixtures shared by tests/compiler: the canonicalized digits MLP (`float_graph`), and a tiny
MLP (8-6-3, Gemm + Relu, written with onnx.helper) and its data, small enough that yosys
synthesizes it in about a second, so the quick suite can synthesize for real."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

N_IN, N_HIDDEN, N_CLASSES = 8, 6, 3


def write_tiny_mlp(folder: Path, seed: int = 0, zero_fraction: float = 0.0) -> tuple[Path, Path]:
    """tiny.onnx and tiny.npz in folder; labels are the float model's own predictions."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (N_HIDDEN, N_IN)).astype(np.float32)
    w1[rng.random(w1.shape) < zero_fraction] = 0.0
    b1 = rng.normal(0, 0.1, N_HIDDEN).astype(np.float32)
    w2 = rng.normal(0, 0.5, (N_CLASSES, N_HIDDEN)).astype(np.float32)
    b2 = rng.normal(0, 0.1, N_CLASSES).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["z1"], name="fc1", transB=1),
        helper.make_node("Relu", ["z1"], ["h1"], name="relu1"),
        helper.make_node("Gemm", ["h1", "w2", "b2"], ["logits"], name="fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", N_IN])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", N_CLASSES])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    model_path, data_path = folder / "tiny.onnx", folder / "tiny.npz"
    onnx.save(model, str(model_path))

    def predict(x):
        return (np.maximum(x @ w1.T + b1, 0) @ w2.T + b2).argmax(axis=1).astype(np.int64)

    x_train, x_test = (rng.random((n, N_IN)).astype(np.float32) for n in (64, 32))
    np.savez(data_path, x_train=x_train, y_train=predict(x_train), x_test=x_test, y_test=predict(x_test))
    return model_path, data_path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> tuple[Path, Path]:
    return write_tiny_mlp(tmp_path_factory.mktemp("tiny"))


def compile_tiny(tiny_model, out: Path, **options) -> Path:
    """Compile the tiny MLP with 2 multipliers in its largest layer (3 in all): fast to synthesize."""
    from compiler import api

    recipe = out.parent / f"{out.name}-recipe.toml"
    recipe.write_text("[lower]\nmultipliers = 2\n")
    api.compile(*tiny_model, out, recipe=recipe, log=lambda *_: None, progress=False, **options)
    return out


@pytest.fixture(scope="session")
def tiny_compile(tiny_model):
    """compile_tiny(out, **api.compile options) for the tiny model."""
    return lambda out, **options: compile_tiny(tiny_model, Path(out), **options)


@pytest.fixture(scope="session")
def tiny_build(tiny_compile, tmp_path_factory) -> Path:
    """A tiny build for --target fpga, without synthesis (tests synthesize its rtl/ themselves)."""
    return tiny_compile(tmp_path_factory.mktemp("builds") / "tiny-nosynth", synth_timeout=None)


@pytest.fixture(scope="session")
def fpga_build(tiny_compile, tmp_path_factory) -> Path:
    return tiny_compile(tmp_path_factory.mktemp("builds") / "tiny-fpga", target="fpga")


@pytest.fixture(scope="session")
def asic_build(tiny_compile, tmp_path_factory) -> Path:
    return tiny_compile(tmp_path_factory.mktemp("builds") / "tiny-asic", target="asic")


@pytest.fixture(scope="module")
def float_graph(digits_model):
    """The bundled digits MLP, canonicalized: what the executors and the training passes run."""
    from compiler.frontend.onnx import load_onnx
    from compiler.passes.base import Context, get_pass

    quiet = Context(log=lambda *_: None, progress=False)
    return get_pass("canonicalize").run(load_onnx(digits_model), quiet)
