"""Property-based fuzzing of what users hand mpc: random recipe TOML documents and random data
.npz files. Every outcome is success or one user error (RecipeError / DataError, one line that
names the file), never another exception. Fixed budgets (derandomized): a few seconds in all;
the CLI run, which may compile, is marked slow."""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compiler.data import REQUIRED, DataError, load_data
from compiler.passes.base import REGISTRY
from compiler.recipe import RecipeError, flow_for, load_recipe, validate_recipe

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["/1/Gemm", "/3/Gemm", "/5/Gemm"]  # examples/digits_mlp.onnx
OPTIONS = sorted({k for p in REGISTRY.values() for k in p.options})
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

# ---- recipes -----------------------------------------------------------------------------------
keys = st.one_of(
    st.sampled_from(["passes", "layers", *REGISTRY, *OPTIONS, *LAYERS]),
    st.text(min_size=1, max_size=8),
)
scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=10),
    st.sampled_from(["auto", "dense", "sparse", "circulant", *REGISTRY]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
recipes = st.dictionaries(keys, values, max_size=5)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_document(doc: dict) -> str:
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in doc.items())


def check_recipe(path: Path) -> dict | None:
    """load + flow + validate as `mpc compile` does: the recipe, or None after a one-line RecipeError."""
    try:
        recipe = load_recipe(path)
        flow_for(recipe, "fpga")
        validate_recipe(recipe, LAYERS, where=str(path))
        return recipe
    except RecipeError as e:
        message = str(e)
        assert "\n" not in message and str(path) in message, message
        return None


@FUZZ
@given(doc=recipes)
def test_random_recipe_documents(doc):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.toml"
        path.write_text(toml_document(doc))
        check_recipe(path)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(text=st.one_of(st.text(max_size=60), st.binary(max_size=60).map(lambda b: b.decode("latin-1"))))
def test_random_recipe_text(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.toml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        check_recipe(path)


# ---- data files --------------------------------------------------------------------------------
dtypes = st.sampled_from(["float32", "float64", "float16", "int8", "int64", "uint8", "bool", "complex64", "<U2"])
shapes = st.one_of(
    st.sampled_from([(4, 8, 8), (4, 1, 8, 8), (4, 64), (4,), (1, 8, 8), (0, 8, 8), (3, 8, 8)]),
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
)


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(dtypes))
    shape = draw(shapes)
    if dtype.kind == "U":
        return np.full(shape, draw(st.text(max_size=2)), dtype)
    if dtype.kind in "fc":
        elements = st.floats(allow_nan=True, allow_infinity=True, width=16 if dtype.itemsize == 2 else 32)
        return draw(hnp.arrays(dtype, shape, elements=elements))
    return draw(hnp.arrays(dtype, shape))


datasets = st.dictionaries(st.one_of(st.sampled_from(REQUIRED), st.text(min_size=1, max_size=5)), arrays(), max_size=6)


def check_data(path: Path) -> None:
    try:
        data = load_data(path, (8, 8), 10)
    except DataError as e:
        message = str(e)
        assert "\n" not in message and str(path) in message, message
        return
    assert data.x_train.dtype == np.float32 and np.all(np.isfinite(data.x_train))
    assert data.y_train.min() >= 0 and data.y_train.max() < 10


@FUZZ
@given(arrays_=datasets, labels=st.booleans())
def test_random_data_files(arrays_, labels):
    if labels:  # often well-formed where it matters, so that x's checks are reached
        for k in ("y_train", "y_test"):
            x = arrays_.get("x" + k[1:])
            if x is not None and x.ndim:
                arrays_[k] = np.arange(len(x)) % 10
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.npz"
        np.savez(path, **arrays_)
        check_data(path)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(cut=st.integers(0, 4000), junk=st.binary(max_size=40))
def test_damaged_data_files(cut, junk):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.npz"
        with np.load(ROOT / "examples" / "digits.npz") as d:
            np.savez(path, **{k: d[k][:6] for k in d.files})
        raw = path.read_bytes()
        path.write_bytes(raw[:cut] + junk + raw[cut + len(junk) :] if cut < len(raw) else junk)
        check_data(path)


# ---- through the CLI ---------------------------------------------------------------------------
@pytest.mark.slow
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(doc=recipes)
def test_random_recipes_through_the_cli(doc):
    """`mpc compile` with a random recipe: success, or exit 2 with one line on stderr."""
    from compiler.cli import main

    with tempfile.TemporaryDirectory() as folder:
        recipe = Path(folder) / "r.toml"
        recipe.write_text(toml_document(doc))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(
                [
                    "compile",
                    str(ROOT / "examples" / "digits_mlp.onnx"),
                    "--data",
                    str(ROOT / "examples" / "digits.npz"),
                    "--recipe",
                    str(recipe),
                    "-o",
                    str(Path(folder) / "out"),
                    "--no-synth",
                    "--quiet",
                ]
            )
        assert rc in (0, 2), err.getvalue()
        if rc == 2:
            assert len(err.getvalue().splitlines()) == 1 and err.getvalue().startswith("mpc compile: error:")
        assert (Path(folder) / "out").exists() == (rc == 0)
