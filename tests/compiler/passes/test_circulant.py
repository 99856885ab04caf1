import numpy as np
import pytest
import torch

from compiler import passes  # noqa: F401
from compiler.exec.torch import GraphModule
from compiler.frontend.onnx import load_onnx
from compiler.passes.base import Context, PassError, get_pass
from compiler.passes.circulant import _projector, chosen_block_sizes, project_graph
from compiler.passes.manager import run_flow
from compiler.passes.manager import test_accuracy as accuracy_of
from compiler.recipe import RecipeError, validate_recipe
from kernels.circulant_mac import block_grid, circulant_error, circulant_expand, circulant_vectors, plan_circulant
from kernels.fixed import int_range


def _ctx(data, recipe, seed=0):
    return Context(data=data, recipe=recipe, log=lambda *_: None, progress=False, seed=seed)


@pytest.fixture(scope="module")
def digits_float(digits_model, digits_data):
    graph, _ = run_flow(load_onnx(digits_model), ["canonicalize"], _ctx(digits_data, {}))
    return graph


def _layers(graph):
    return [n.name for n in graph.weighted_nodes()]  # 64->32, 32->16, 16->10


def _circulant(graph, data, recipe, seed=0):
    return get_pass("circulant").run(graph, _ctx(data, {"circulant": recipe}, seed))


def _is_block_circulant(w, b):
    try:
        circulant_vectors(w, b)
        return True
    except ValueError:
        return False


# ------------------------------------------------------------------------ projection
def test_projection_is_exact_and_the_least_squares_optimum(digits_float):
    """Brute force: lstsq over every block-circulant matrix of the layer's (padded) shape."""
    w = digits_float.params[digits_float.weighted_nodes()[2].inputs[1]].astype(np.float64)  # [10, 16]
    b = 4
    name = digits_float.weighted_nodes()[2].name
    projected = project_graph(digits_float, {name: b}).params[digits_float.weighted_nodes()[2].inputs[1]]
    assert _is_block_circulant(projected, b)
    p, q = block_grid(10, 16, b)
    basis = np.eye(p * q * b).reshape(-1, p, q, b)
    design = np.stack([circulant_expand(e)[:10, :16].ravel() for e in basis], axis=1)
    best, *_ = np.linalg.lstsq(design, w.ravel(), rcond=None)
    np.testing.assert_allclose(projected.ravel(), design @ best, atol=1e-6)


def test_torch_projection_after_each_step_equals_the_numpy_projection(digits_float):
    rng = np.random.default_rng(0)
    g = digits_float.copy()
    sizes = {n.name: 4 for n in g.weighted_nodes()}  # [10, 16] pads 2 output rows
    for n in g.weighted_nodes():
        g.params[n.inputs[1]] = rng.normal(size=g.params[n.inputs[1]].shape).astype(np.float32)
    module = GraphModule(g)
    with torch.no_grad():
        _projector(g, sizes)(module, 0)
    want = project_graph(g, sizes)
    for n in g.weighted_nodes():
        np.testing.assert_allclose(module.export_params()[n.inputs[1]], want.params[n.inputs[1]], atol=1e-6)


# ------------------------------------------------------------------------ choice of layers
def test_default_applies_to_every_layer_but_the_last(digits_float, digits_data):
    first, second, last = _layers(digits_float)
    assert chosen_block_sizes(digits_float, _ctx(digits_data, {"circulant": {"block_size": 4}})) == {
        first: 4,
        second: 4,
    }
    recipe = {"circulant": {"block_size": 8, "layers": {last: {"block_size": 2}, second: {"block_size": 1}}}}
    assert chosen_block_sizes(digits_float, _ctx(digits_data, recipe)) == {first: 8, last: 2}


def test_output_annotations_padding_and_exact_structure(digits_float, digits_data):
    first, second, last = _layers(digits_float)
    out = _circulant(digits_float, digits_data, {"block_size": 8, "epochs": 0, "layers": {last: {"block_size": 4}}})
    info = {n.name: n.annotations.get("circulant") for n in out.weighted_nodes()}
    assert info[first] == {
        "block_size": 8,
        "grid": [4, 8],
        "n_in": 64,
        "n_out": 32,
        "n_in_padded": 64,
        "n_out_padded": 32,
        "padded_inputs": 0,
        "padded_outputs": 0,
        "stored_weights": 256,
        "dense_weights": 2048,
        "compression": 8.0,
    }
    assert info[last]["n_out_padded"] == 12 and info[last]["padded_outputs"] == 2
    assert info[last]["stored_weights"] == 3 * 4 * 4
    for n in out.weighted_nodes():
        assert n.annotations["block_size"] == n.annotations["circulant"]["block_size"]
        assert _is_block_circulant(out.params[n.inputs[1]], n.annotations["block_size"])
    # the input graph is untouched
    assert not any("circulant" in n.annotations for n in digits_float.weighted_nodes())
    assert not _is_block_circulant(digits_float.params[digits_float.weighted_nodes()[0].inputs[1]], 8)


def test_block_size_one_everywhere_changes_nothing(digits_float, digits_data):
    out = _circulant(digits_float, digits_data, {"block_size": 1})
    for name, value in digits_float.params.items():
        assert np.array_equal(out.params[name], value)


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({"block_size": 6}, r"layer '/1/Gemm': block_size must be a power of two, got 6"),
        ({"block_size": 64}, r"layer '/1/Gemm' \(\[32, 64\]\): block_size 64 is larger than the layer"),
        ({"block_size": 2, "layers": {"/5/Gemm": {"block_size": 16}}}, r"layer '/5/Gemm' \(\[10, 16\]\)"),
    ],
)
def test_bad_block_sizes_name_the_layer(digits_float, digits_data, recipe, message):
    with pytest.raises(PassError, match=message):
        _circulant(digits_float, digits_data, dict(recipe, epochs=0))


def test_recipe_validation_rejects_a_block_size_that_is_not_a_power_of_two(digits_float):
    layers = _layers(digits_float)
    validate_recipe({"circulant": {"block_size": 8, "epochs": 5, "layers": {layers[2]: {"block_size": 2}}}}, layers)
    with pytest.raises(RecipeError, match="power of two"):
        validate_recipe({"circulant": {"layers": {layers[0]: {"block_size": 12}}}}, layers)


# ------------------------------------------------------------------------ retraining
def test_retraining_is_deterministic_and_stays_circulant(digits_float, digits_data):
    recipe = {"block_size": 4, "epochs": 2}
    a = _circulant(digits_float, digits_data, recipe, seed=3)
    b = _circulant(digits_float, digits_data, recipe, seed=3)
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name])
    for n in a.weighted_nodes()[:2]:
        assert _is_block_circulant(a.params[n.inputs[1]], 4)


def test_digits_accuracy_at_b8_on_the_first_layer(digits_float, digits_data):
    """Measured (seeds 0/1/2): float 0.950, b=8 on the first layer 0.944 / 0.947 / 0.940 after
    the default 60 epochs; projection alone gives 0.32. Within 2 points of float."""
    first = _layers(digits_float)[0]
    float_acc = accuracy_of(digits_float, digits_data)
    recipe = {"block_size": 1, "layers": {first: {"block_size": 8}}}
    projected = _circulant(digits_float, digits_data, dict(recipe, epochs=0))
    retrained = _circulant(digits_float, digits_data, recipe)
    assert accuracy_of(projected, digits_data) < float_acc - 0.3  # retraining is what matters
    assert accuracy_of(retrained, digits_data) >= float_acc - 0.02


# ------------------------------------------------------------------------ ready for lower
def test_lowered_weights_stay_circulant_and_the_fft_kernel_reproduces_them(digits_model, digits_data):
    """What the integration will do: lower quantizes the circulant layer elementwise (still
    exactly circulant), and the fixed-point FFT kernel computes that layer to a few LSBs."""
    from tests.conftest import lower_model

    first = "/1/Gemm"
    _, lowered = lower_model(
        digits_model, digits_data, {"circulant": {"block_size": 1, "epochs": 3, "layers": {first: {"block_size": 8}}}}
    )
    node = lowered.node(first)
    assert node.annotations["block_size"] == 8
    w_q = lowered.params[node.inputs[1]].astype(np.int64)
    b_q = lowered.params[node.inputs[2]].astype(np.int64)
    in_bits = node.attrs["input_format"]["bits"]
    layer = plan_circulant(circulant_vectors(w_q, 8), b_q, 64, 32, in_bits=in_bits)
    assert layer.acc_bits <= node.attrs["acc_bits"] + 1
    lo, hi = int_range(in_bits)
    x = np.random.default_rng(0).integers(lo, hi + 1, size=(64, 64))
    report = circulant_error(x, layer)
    assert report["max_abs"] <= min(report["bound"], 64)


def test_a_layer_already_compressed_by_admm_is_refused_unless_kept_dense(digits_float, digits_data):
    g = digits_float.copy()
    first, second, _ = _layers(g)
    g.node(first).annotations["weight_format"] = {"bits": 4, "frac": 3}
    with pytest.raises(PassError, match=f"layer '{first}' was already compressed by admm"):
        _circulant(g, digits_data, {"block_size": 4, "epochs": 0})
    out = _circulant(g, digits_data, {"block_size": 4, "epochs": 0, "layers": {first: {"block_size": 1}}})
    assert "circulant" in out.node(second).annotations and "circulant" not in out.node(first).annotations
