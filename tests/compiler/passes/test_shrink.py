"""remove_dead_channels: dead channels (a producer that writes only zeros there, or a consumer
that reads none of it) leave both layers, and the float function does not change."""

import numpy as np
import pytest

from compiler import passes  # noqa: F401
from compiler.exec.torch import run
from compiler.frontend.onnx import load_onnx
from compiler.ir import Graph, Node, TensorSpec
from compiler.passes.base import Context, get_pass
from compiler.passes.shrink import find_boundaries, remove_dead_channels
from tests.conftest import EXAMPLES

CONV1, CONV2, FC = "/0/Conv", "/3/Conv", "/7/Gemm"  # digits_cnn: 1x8x8 -> 8 -> 16 -> flatten 64 -> 10


@pytest.fixture(scope="module")
def cnn():
    return get_pass("canonicalize").run(load_onnx(EXAMPLES / "digits_cnn.onnx"), Context())


@pytest.fixture(scope="module")
def mlp():
    return get_pass("canonicalize").run(load_onnx(EXAMPLES / "digits_mlp.onnx"), Context())


@pytest.fixture(scope="module")
def images():
    from compiler.data import load_data

    return load_data(EXAMPLES / "digits.npz", (1, 8, 8), 10).x_test[:128]


def _w(g: Graph, layer: str, which: int = 1) -> np.ndarray:
    return g.params[g.node(layer).inputs[which]]


def _edit(g: Graph, layer: str, which: int, index) -> Graph:
    """A copy with the given entries of a layer's weight (1) or bias (2) set to zero."""
    g = g.copy()
    _w(g, layer, which)[index] = 0
    return g


def _same_function(a: Graph, b: Graph, x: np.ndarray) -> None:
    np.testing.assert_allclose(run(a, x), run(b, x), atol=1e-5, rtol=0)


def test_a_zero_filter_with_zero_bias_leaves_both_convs(cnn, images):
    g = _edit(_edit(cnn, CONV1, 1, [2, 5]), CONV1, 2, [2, 5])
    shrunk = remove_dead_channels(g)
    assert _w(shrunk, CONV1).shape == (6, 1, 3, 3) and _w(shrunk, CONV1, 2).shape == (6,)
    assert _w(shrunk, CONV2).shape == (16, 6, 3, 3)
    assert shrunk.node(CONV1).annotations["removed_outputs"] == [2, 5]
    assert shrunk.node(CONV2).annotations["removed_inputs"] == [2, 5]
    assert shrunk.meta["removed_channels"] == [
        {"producer": CONV1, "consumer": CONV2, "channels_before": 8, "channels_after": 6, "removed": [2, 5]}
    ]
    _same_function(g, shrunk, images)


def test_a_zero_filter_with_a_positive_bias_is_a_constant_channel_and_stays(cnn):
    g = _edit(cnn, CONV1, 1, [3])
    _w(g, CONV1, 2)[3] = 0.5
    assert _w(remove_dead_channels(g), CONV1).shape[0] == 8


def test_a_zero_filter_with_a_negative_bias_dies_at_the_relu(cnn, images):
    g = _edit(cnn, CONV2, 1, [4])
    _w(g, CONV2, 2)[4] = -0.5
    shrunk = remove_dead_channels(g)
    assert _w(shrunk, CONV2).shape[0] == 15 and _w(shrunk, FC).shape == (10, 60)
    _same_function(g, shrunk, images)


def test_an_input_channel_no_one_reads_kills_the_filter_that_writes_it(cnn, images):
    g = _edit(cnn, CONV2, 1, (slice(None), [0, 7]))  # conv2 reads nothing of channels 0 and 7
    assert np.any(_w(g, CONV1)[[0, 7]] != 0)  # though conv1 writes them
    shrunk = remove_dead_channels(g)
    assert _w(shrunk, CONV1).shape[0] == 6 and _w(shrunk, CONV2).shape[1] == 6
    _same_function(g, shrunk, images)


def test_dense_after_flatten_loses_each_channels_run_of_columns(cnn, images):
    g = _edit(cnn, FC, 1, (slice(None), slice(4 * 9, 4 * 10)))  # columns of conv2's channel 9 (2x2 each)
    shrunk = remove_dead_channels(g)
    assert _w(shrunk, CONV2).shape[0] == 15 and _w(shrunk, FC).shape == (10, 60)
    assert shrunk.node(FC).annotations["removed_inputs"] == [36, 37, 38, 39]
    assert shrunk.node(CONV2).annotations["removed_outputs"] == [9]
    _same_function(g, shrunk, images)


def test_removal_cascades_upstream(cnn, images):
    """The dense layer reads only conv2's channel 3, whose filter reads nothing of conv1's
    channels 1 and 6: once the other conv2 filters go, nobody reads those two either."""
    g = cnn.copy()
    _w(g, FC)[:] = 0
    _w(g, FC)[:, 4 * 3 : 4 * 4] = 1.0
    _w(g, CONV2)[3, [1, 6]] = 0
    shrunk = remove_dead_channels(g)
    assert _w(shrunk, CONV2).shape == (1, 6, 3, 3) and _w(shrunk, FC).shape == (10, 4)
    assert shrunk.node(CONV1).annotations["removed_outputs"] == [1, 6]
    _same_function(g, shrunk, images)


def test_all_dead_keeps_one_channel_and_never_touches_input_or_classes(cnn, images):
    g = _edit(_edit(cnn, CONV2, 1, slice(None)), CONV2, 2, slice(None))  # conv2 writes only zeros
    _w(g, FC)[4] = 0  # a class row: not removable
    shrunk = remove_dead_channels(g)
    assert _w(shrunk, CONV2).shape[0] == 1 and _w(shrunk, FC).shape == (10, 4)
    assert _w(shrunk, CONV1).shape[1] == 1  # the image's one channel stays
    _same_function(g, shrunk, images)


def test_dense_rows_and_next_columns_in_an_mlp(mlp, images):
    first, second = (n.name for n in mlp.weighted_nodes()[:2])
    g = _edit(_edit(mlp, first, 1, [0, 3]), first, 2, [0, 3])
    _w(g, first)[:, 5] = 0  # an unused input feature: the graph input stays
    shrunk = remove_dead_channels(g)
    n_hidden = _w(mlp, first).shape[0]
    assert _w(shrunk, first).shape == (n_hidden - 2, 64) and _w(shrunk, second).shape[1] == n_hidden - 2
    _same_function(g, shrunk, images.reshape(-1, 8, 8))


def test_input_is_untouched_and_a_second_removal_counts_in_original_indices(cnn, images):
    g = _edit(_edit(cnn, CONV1, 1, [1]), CONV1, 2, [1])
    before = {k: v.copy() for k, v in g.params.items()}
    once = remove_dead_channels(g)
    assert all(np.array_equal(before[k], g.params[k]) for k in before) and "removed_channels" not in g.meta
    twice = remove_dead_channels(_edit(_edit(once, CONV1, 1, [2]), CONV1, 2, [2]))  # original channel 3
    assert twice.node(CONV1).annotations["removed_outputs"] == [1, 3]
    assert twice.node(CONV2).annotations["removed_inputs"] == [1, 3]
    assert [r["removed"] for r in twice.meta["removed_channels"]] == [[1], [3]]


def test_nothing_dead_changes_nothing(cnn):
    shrunk = remove_dead_channels(cnn)
    assert all(np.array_equal(shrunk.params[k], cnn.params[k]) for k in cnn.params)
    assert "removed_channels" not in shrunk.meta
    assert [(b.producer.name, b.consumer.name) for b in find_boundaries(cnn)] == [(CONV1, CONV2), (CONV2, FC)]


def test_a_tensor_that_is_also_a_graph_output_is_left_alone(cnn):
    g = _edit(_edit(cnn, CONV1, 1, [0]), CONV1, 2, [0])
    g.outputs.append(TensorSpec(g.node("/1/Relu").outputs[0], (8, 8, 8)))
    assert _w(remove_dead_channels(g), CONV1).shape[0] == 8


def test_block_circulant_layers_are_left_alone(mlp):
    first = mlp.weighted_nodes()[0]
    g = _edit(_edit(mlp, first.name, 1, [0]), first.name, 2, [0])
    g.node(first.name).annotations["block_size"] = 4
    assert _w(remove_dead_channels(g), first.name).shape[0] == _w(mlp, first.name).shape[0]


def _pool_graph(seed: int = 0) -> Graph:
    """conv -> relu -> avgpool (padded, count_include_pad) -> conv -> relu -> global_avgpool ->
    flatten -> dense -> relu -> dense: every zero-preserving op on the way."""
    rng = np.random.default_rng(seed)
    window = {"kernel": [3, 3], "stride": [2, 2], "pads": [1, 1, 1, 1]}
    nodes = [
        Node("conv2d", "c1", ["x", "c1.w", "c1.b"], ["t1"], {**window, "stride": [1, 1]}),
        Node("relu", "r1", ["t1"], ["t2"]),
        Node("avgpool2d", "p1", ["t2"], ["t3"], {**window, "count_include_pad": True}),
        Node("conv2d", "c2", ["t3", "c2.w", "c2.b"], ["t4"], {**window, "stride": [1, 1]}),
        Node("relu", "r2", ["t4"], ["t5"]),
        Node("global_avgpool", "g", ["t5"], ["t6"]),
        Node("flatten", "f", ["t6"], ["t7"]),
        Node("dense", "d1", ["t7", "d1.w", "d1.b"], ["t8"]),
        Node("relu", "r3", ["t8"], ["t9"]),
        Node("dense", "d2", ["t9", "d2.w", "d2.b"], ["y"]),
    ]
    shapes = {
        "c1.w": (6, 2, 3, 3),
        "c1.b": (6,),
        "c2.w": (5, 6, 3, 3),
        "c2.b": (5,),
        "d1.w": (4, 5),
        "d1.b": (4,),
        "d2.w": (3, 4),
        "d2.b": (3,),
    }
    params = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    return Graph([TensorSpec("x", (2, 7, 7))], [TensorSpec("y", (3,))], nodes, params)


def test_pools_and_global_pool_carry_dead_channels_exactly():
    g = _pool_graph()
    g.params["c1.w"][1] = 0
    g.params["c1.b"][1] = -1.0  # dead after the relu, though the padded avgpool sees zeros and -1s
    g.params["d1.w"][:, 2] = 0  # d1 reads nothing of c2's channel 2
    g.params["d2.w"][:, 0] = 0  # d2 reads nothing of d1's neuron 0
    shrunk = remove_dead_channels(g)
    assert shrunk.params["c1.w"].shape == (5, 2, 3, 3) and shrunk.params["c2.w"].shape == (4, 5, 3, 3)
    assert shrunk.params["d1.w"].shape == (3, 4) and shrunk.params["d2.w"].shape == (3, 3)
    x = np.random.default_rng(2).normal(size=(16, 2, 7, 7)).astype(np.float32)
    _same_function(g, shrunk, x)


def test_the_summary_survives_a_checkpoint(cnn, tmp_path):
    shrunk = remove_dead_channels(_edit(_edit(cnn, CONV2, 1, [0]), CONV2, 2, [0]))
    shrunk.save(tmp_path)
    loaded = Graph.load(tmp_path)
    assert loaded.meta["removed_channels"] == shrunk.meta["removed_channels"]
    assert loaded.node(FC).annotations["removed_inputs"] == [0, 1, 2, 3]


def test_depthwise_convs_and_the_layer_before_one_are_left_alone(images):
    """A depthwise conv's channel c in is its channel c out: a dead filter of the conv before it
    stays (zeros in place), and the function is unchanged."""
    rng = np.random.default_rng(0)
    params = {
        "a.w": rng.normal(size=(4, 1, 3, 3)),
        "a.b": rng.normal(size=4),
        "d.w": rng.normal(size=(4, 1, 3, 3)),
        "d.b": rng.normal(size=4),
        "b.w": rng.normal(size=(3, 4, 1, 1)),
    }
    params["a.w"][1], params["a.b"][1] = 0, 0  # a dead filter of a, read by the depthwise conv
    params["d.w"][2] = 0  # and a depthwise filter that reads nothing
    same = {"kernel": [3, 3], "stride": [1, 1], "pads": [1, 1, 1, 1]}
    graph = Graph(
        [TensorSpec("x", (1, 8, 8))],
        [TensorSpec("y", (3, 8, 8))],
        [
            Node("conv2d", "a", ["x", "a.w", "a.b"], ["h"], attrs=same),
            Node("relu", "r1", ["h"], ["hr"]),
            Node("conv2d", "d", ["hr", "d.w", "d.b"], ["e"], attrs={**same, "group": 4}),
            Node("relu", "r2", ["e"], ["er"]),
            Node("conv2d", "b", ["er", "b.w"], ["y"], attrs={"kernel": [1, 1], "stride": [1, 1], "pads": [0] * 4}),
        ],
        {k: v.astype(np.float32) for k, v in params.items()},
    )
    assert find_boundaries(graph) == []
    shrunk = remove_dead_channels(graph)
    assert all(shrunk.params[k].shape == graph.params[k].shape for k in params)
    _same_function(graph, shrunk, images)
