"""admm and magnitude_prune on convolution layers (digits_cnn: 1x8x8 -> conv 8 -> pool -> conv 16 ->
pool -> flatten 64 -> dense 10): irregular and structured sparsity over 4-D weights, biases of
pruned filters held at zero, ADMM quantization, and the exact removal of dead channels."""

import numpy as np
import pytest

from compiler import passes  # noqa: F401
from compiler.exec.torch import run
from compiler.frontend.onnx import load_onnx
from compiler.ir import FixedPoint
from compiler.passes.admm import project_sparse
from compiler.passes.base import Context, PassError, get_pass
from compiler.passes.manager import run_flow
from compiler.passes.shrink import remove_dead_channels
from compiler.recipe import RecipeError, validate_recipe
from tests.conftest import EXAMPLES

CONV1, CONV2, FC = "/0/Conv", "/3/Conv", "/7/Gemm"
QUICK = {"admm_epochs": 3, "retrain_epochs": 2}


@pytest.fixture(scope="module")
def cnn_data():
    from compiler.data import load_data

    return load_data(EXAMPLES / "digits.npz", (1, 8, 8), 10)


def _compress(data, recipe: dict, flow_pass: str = "admm"):
    """canonicalize + the pass, as `mpc compile` runs them (lower does not take conv graphs yet)."""
    ctx = Context(data=data, recipe=recipe, log=lambda *_: None, progress=False)
    graph, _ = run_flow(load_onnx(EXAMPLES / "digits_cnn.onnx"), ["canonicalize", flow_pass], ctx)
    return graph


def _w(g, layer, which=1):
    return g.params[g.node(layer).inputs[which]]


def _zero_filters(w):
    return ~w.reshape(w.shape[0], -1).any(axis=1)


@pytest.mark.parametrize("structure, axis", [("filters", 0), ("channels", 1), ("rows", 0), ("columns", 1)])
def test_structured_projection_of_a_conv_weight_keeps_the_strongest_slices(structure, axis):
    w = np.random.default_rng(0).normal(size=(8, 6, 3, 3))
    z = project_sparse(w, 0.5, structure)
    alive = np.moveaxis(z, axis, 0).reshape(w.shape[axis], -1).any(axis=1)
    assert alive.sum() == w.shape[axis] // 2
    norms = np.linalg.norm(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1), axis=1)
    assert norms[alive].min() >= norms[~alive].max()
    assert np.array_equal(np.take(z, np.flatnonzero(alive), axis), np.take(w, np.flatnonzero(alive), axis))


def test_a_projection_never_empties_a_layer():
    w = np.random.default_rng(1).normal(size=(8, 1, 3, 3))  # a first conv on a one-channel image
    assert np.array_equal(project_sparse(w, 0.6, "channels"), w)
    assert np.count_nonzero(project_sparse(w, 0.95, "filters").reshape(8, -1).any(axis=1)) == 1
    assert np.count_nonzero(project_sparse(w[:1, :, :1, :1], 0.9, "irregular")) == 1


def test_irregular_sparsity_reaches_each_conv_layers_target(cnn_data):
    layers = {CONV1: {"sparsity": 0.3}, CONV2: {"sparsity": 0.8}}
    g = _compress(cnn_data, {"admm": {"sparsity": 0.6, "remove_dead": False, "layers": layers, **QUICK}})
    for layer, target in ((CONV1, 0.3), (CONV2, 0.8), (FC, 0.6)):
        assert np.mean(_w(g, layer) == 0) == pytest.approx(target, abs=0.01)
        assert g.node(layer).annotations["admm"]["target_sparsity"] == target


def test_global_sparsity_spreads_over_conv_and_dense_layers(cnn_data):
    g = _compress(cnn_data, {"admm": {"global_sparsity": 0.7, "remove_dead": False, **QUICK}})
    weights = [_w(g, layer) for layer in (CONV1, CONV2, FC)]
    assert sum(np.sum(w == 0) for w in weights) / sum(w.size for w in weights) == pytest.approx(0.7, abs=0.005)
    assert np.mean(weights[1] == 0) > np.mean(weights[0] == 0)  # the larger conv is pruned harder


def test_filters_prunes_whole_filters_with_their_biases_and_removal_is_exact(cnn_data):
    recipe = {"admm": {"sparsity": 0.5, "structure": "filters", "layers": {FC: {"structure": "irregular"}}, **QUICK}}
    kept = _compress(cnn_data, {"admm": {**recipe["admm"], "remove_dead": False}})
    for layer, n_filters in ((CONV1, 8), (CONV2, 16)):
        dead = _zero_filters(_w(kept, layer))
        assert dead.sum() == n_filters // 2
        assert np.all(_w(kept, layer, 2)[dead] == 0)  # biases held at zero through retraining
    shrunk = remove_dead_channels(kept)
    assert _w(shrunk, CONV1).shape == (4, 1, 3, 3) and _w(shrunk, CONV2).shape == (8, 4, 3, 3)
    assert _w(shrunk, FC).shape == (10, 32) and _w(shrunk, CONV2, 2).shape == (8,)
    x = cnn_data.x_test
    np.testing.assert_allclose(run(shrunk, x), run(kept, x), atol=1e-5, rtol=1e-6)
    removed = _compress(cnn_data, recipe)  # remove_dead defaults to true
    assert all(np.array_equal(removed.params[k], shrunk.params[k]) for k in shrunk.params)
    assert removed.node(CONV1).annotations["removed_outputs"] == shrunk.node(CONV1).annotations["removed_outputs"]
    assert [r["channels_after"] for r in removed.meta["removed_channels"]] == [4, 8]


def test_channels_on_conv2_kills_the_conv1_filters_it_no_longer_reads(cnn_data):
    layers = {CONV2: {"sparsity": 0.5, "structure": "channels"}}
    g = _compress(cnn_data, {"admm": {"layers": layers, **QUICK}})
    assert _w(g, CONV1).shape[0] == 4 and _w(g, CONV2).shape == (16, 4, 3, 3)
    assert len(g.node(CONV1).annotations["removed_outputs"]) == 4
    assert np.all(_w(g, CONV2).reshape(16, 4, -1).any(axis=(0, 2)))  # what is left is read


def test_rows_of_one_dense_layer_shrink_the_next_ones_columns(cnn_data):
    from compiler.data import load_data

    data = load_data(EXAMPLES / "digits.npz", (8, 8), 10)
    ctx = Context(
        data=data,
        recipe={"admm": {"structure": "rows", "layers": {"/1/Gemm": {"sparsity": 0.5}}, **QUICK}},
        log=lambda *_: None,
        progress=False,
    )
    float_g = get_pass("canonicalize").run(load_onnx(EXAMPLES / "digits_mlp.onnx"), ctx)
    g = get_pass("admm").run(float_g, ctx)
    first, second = g.weighted_nodes()[:2]
    n_hidden = _w(float_g, first.name).shape[0]
    assert _w(g, first.name).shape == (n_hidden - n_hidden // 2, 64)
    assert _w(g, second.name).shape[1] == n_hidden - n_hidden // 2
    assert second.annotations["removed_inputs"] == first.annotations["removed_outputs"]


def test_quantized_conv_weights_sit_on_their_grid(cnn_data):
    """Filters and 4-bit weights: the bias retraining after quantization keeps pruned filters'
    biases at zero too (else nothing could be removed)."""
    layers = {FC: {"structure": "irregular"}}
    g = _compress(cnn_data, {"admm": {"sparsity": 0.5, "structure": "filters", "bits": 4, "layers": layers, **QUICK}})
    assert _w(g, CONV1).shape[0] == 4 and _w(g, CONV2).shape == (8, 4, 3, 3)
    for layer in (CONV1, CONV2, FC):
        fmt = FixedPoint.from_dict(g.node(layer).annotations["weight_format"])
        levels = _w(g, layer) * 2.0**fmt.frac
        assert fmt.bits == 4 and np.array_equal(levels, np.round(levels))
        assert levels.min() >= fmt.min_int and levels.max() <= fmt.max_int


def test_a_bad_structure_is_refused_naming_the_layer(cnn_data):
    with pytest.raises(PassError, match=r"admm: layer '/3/Conv': structure must be one of .*'blocks'"):
        _compress(cnn_data, {"admm": {"sparsity": 0.5, "layers": {CONV2: {"structure": "blocks"}}}})
    with pytest.raises(RecipeError, match="structure"):
        validate_recipe({"admm": {"structure": "kernels"}}, [CONV1, CONV2, FC])
    with pytest.raises(RecipeError, match="remove_dead: must be true or false"):
        validate_recipe({"magnitude_prune": {"remove_dead": 1}}, [CONV1, CONV2, FC])


def test_magnitude_prune_prunes_convs_and_removes_dead_filters(cnn_data):
    irregular = _compress(
        cnn_data, {"magnitude_prune": {"sparsity": 0.75, "epochs": 2, "remove_dead": False}}, "magnitude_prune"
    )
    for layer in (CONV1, CONV2, FC):
        assert np.mean(_w(irregular, layer) == 0) == pytest.approx(0.75, abs=0.01)
    layers = {FC: {"structure": "irregular"}}
    filters = _compress(
        cnn_data,
        {"magnitude_prune": {"sparsity": 0.5, "structure": "filters", "epochs": 2, "layers": layers}},
        "magnitude_prune",
    )
    assert _w(filters, CONV1).shape[0] == 4 and _w(filters, CONV2).shape == (8, 4, 3, 3)
    assert _w(filters, FC).shape == (10, 32)


def test_privacy_admm_removes_dead_filters_too(cnn_data):
    recipe = {
        "privacy_admm": {
            "sparsity": 0.5,
            "structure": "filters",
            "layers": {FC: {"sparsity": 0.0}},
            "admm_epochs": 2,
            "retrain_epochs": 1,
        }
    }
    g = _compress(cnn_data, recipe, "privacy_admm")
    assert _w(g, CONV1).shape[0] == 4 and _w(g, CONV2).shape[0] == 8
    assert g.node(CONV2).annotations["admm"]["structure"] == "filters"


def test_a_shrunk_quantized_cnn_lowers_on_admms_grid(cnn_data):
    from compiler.exec import predict_classes

    layers = {FC: {"structure": "irregular"}}
    recipe = {"admm": {"sparsity": 0.5, "structure": "filters", "bits": 4, "layers": layers, **QUICK}}
    float_g = _compress(cnn_data, recipe)
    lowered = get_pass("lower").run(float_g, Context(data=cnn_data, log=lambda *_: None, progress=False))
    for layer in (CONV1, CONV2, FC):
        fmt = FixedPoint.from_dict(lowered.node(layer).attrs["weight_format"])
        assert np.array_equal(_w(lowered, layer) * 2.0**-fmt.frac, _w(float_g, layer))
    float_acc = np.mean(predict_classes(float_g, cnn_data.x_test) == cnn_data.y_test)
    int_acc = np.mean(predict_classes(lowered, cnn_data.x_test) == cnn_data.y_test)
    assert int_acc >= float_acc - 0.02


def test_a_depthwise_conv_prunes_whole_input_channels_as_whole_filters():
    from compiler.ir import Node
    from compiler.passes.admm import layer_structure

    depthwise = Node("conv2d", "dw", ["x", "w"], ["y"], attrs={"group": 8})
    plain = Node("conv2d", "c", ["x", "w"], ["y"])
    assert layer_structure(depthwise, "channels") == layer_structure(depthwise, "columns") == "filters"
    assert layer_structure(depthwise, "irregular") == "irregular" and layer_structure(plain, "channels") == "channels"
    w = np.random.default_rng(0).normal(size=(8, 1, 3, 3))
    pruned = project_sparse(w, 0.5, layer_structure(depthwise, "channels"))
    assert (~pruned.reshape(8, -1).any(axis=1)).sum() == 4  # half the channels, each whole
    assert np.array_equal(project_sparse(w, 0.5, "channels"), w)  # what "channels" alone would do: nothing
