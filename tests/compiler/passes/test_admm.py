import itertools

import numpy as np
import pytest

from compiler import passes  # noqa: F401
from compiler.exec import predict_classes
from compiler.ir import FixedPoint
from compiler.passes.admm import distribute_global_sparsity, project_quantized, project_sparse
from compiler.passes.base import Context, PassError
from compiler.passes.manager import run_flow
from tests.conftest import EXAMPLES, lower_model


def test_irregular_projection_is_the_nearest_sparse_matrix():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3))
    z = project_sparse(w, 5 / 9, "irregular")
    assert np.count_nonzero(z) == 4
    # brute force over every support of size 4: keeping the top magnitudes is closest
    best = min(itertools.combinations(range(9), 4), key=lambda keep: np.sum(np.delete(w.ravel(), keep) ** 2))
    assert set(np.flatnonzero(z)) == set(best)
    assert np.array_equal(z.ravel()[list(best)], w.ravel()[list(best)])


@pytest.mark.parametrize("structure, axis", [("rows", 1), ("columns", 0)])
def test_structured_projection_removes_whole_rows_or_columns(structure, axis):
    w = np.random.default_rng(1).normal(size=(8, 6))
    z = project_sparse(w, 0.5, structure)
    alive = np.any(z != 0, axis=axis)
    assert alive.sum() == len(alive) // 2
    norms = np.linalg.norm(w, axis=axis)
    assert norms[alive].min() >= norms[~alive].max()  # the strongest ones survive


def test_quantized_projection_is_on_the_grid_and_keeps_pruned_zeros():
    w = np.random.default_rng(2).normal(size=(5, 7)).astype(np.float32)
    mask = np.random.default_rng(3).random((5, 7)) < 0.5
    fmt = FixedPoint(4, 2)
    z = project_quantized(w, mask, fmt)
    levels = z * 2**fmt.frac
    assert np.array_equal(levels, np.round(levels)) and levels.min() >= -8 and levels.max() <= 7
    assert np.all(z[~mask] == 0)
    inside = mask & (np.abs(w * 4) < 7.5)
    assert np.all(np.abs(z[inside] - w[inside]) <= 2**-fmt.frac / 2 + 1e-7)  # nearest level


def test_global_sparsity_spreads_by_size_and_meets_the_target():
    sizes = [8192, 8192, 640]
    s = distribute_global_sparsity(sizes, 0.9)
    kept = sum((1 - si) * n for si, n in zip(s, sizes))
    assert kept == pytest.approx(0.1 * sum(sizes))
    assert s[0] > s[2] and all(0 <= si < 1 for si in s)
    # a small layer that would keep more than it has is capped (kept entirely)
    capped = distribute_global_sparsity([10_000, 4], 0.5)
    assert capped[1] == pytest.approx(0.0) and capped[0] == pytest.approx(1 - 4998 / 10_000)


def test_admm_needs_data():
    from compiler.frontend.onnx import load_onnx

    with pytest.raises(PassError, match="need training data"):
        run_flow(load_onnx(EXAMPLES / "digits_mlp.onnx"), ["canonicalize", "admm", "lower"], Context(data=None))


QUICK = {"admm_epochs": 3, "retrain_epochs": 2}


def test_admm_is_deterministic_for_a_seed(digits_data):
    recipe = {"admm": {"sparsity": 0.5, "bits": 6, **QUICK}}
    _, a = lower_model(EXAMPLES / "digits_mlp.onnx", digits_data, recipe)
    _, b = lower_model(EXAMPLES / "digits_mlp.onnx", digits_data, recipe)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_row_structured_pruning_zeroes_whole_neurons(digits_data):
    recipe = {"admm": {"sparsity": 0.5, "structure": "rows", "remove_dead": False, **QUICK}}  # test_admm_conv: removal
    _, lowered = lower_model(EXAMPLES / "digits_mlp.onnx", digits_data, recipe)
    for node in lowered.weighted_nodes():
        w = lowered.params[node.inputs[1]]
        rows_alive = np.any(w != 0, axis=1)
        assert rows_alive.sum() == len(rows_alive) - round(0.5 * len(rows_alive))


def test_lower_keeps_admm_levels_exactly(digits_data):
    from compiler.frontend.onnx import load_onnx
    from compiler.passes.base import get_pass

    graph = load_onnx(EXAMPLES / "digits_mlp.onnx")
    ctx = Context(
        data=digits_data, recipe={"admm": {"sparsity": 0.6, "bits": 3, **QUICK}}, log=lambda *_: None, progress=False
    )
    float_g = get_pass("admm").run(get_pass("canonicalize").run(graph, ctx), ctx)
    int_g = get_pass("lower").run(float_g, ctx)
    for f_node, i_node in zip(float_g.weighted_nodes(), int_g.weighted_nodes()):
        fmt = FixedPoint.from_dict(i_node.attrs["weight_format"])
        assert fmt.bits == 3 and f_node.annotations["weight_format"] == fmt.to_dict()
        w_int = int_g.params[i_node.inputs[1]]
        assert np.array_equal(w_int * 2.0**-fmt.frac, float_g.params[f_node.inputs[1]])


@pytest.mark.slow
def test_done_when_90pct_irregular_4bit_keeps_accuracy(digits_data):
    """Issue 3: 90% irregular sparsity, 4-bit weights: every layer >= 0.89 sparse and integer
    accuracy within 1.5 points of float (on the 64-128-64-10 digits MLP). Dead neurons are
    removed, so a layer keeps at most 11% of its original weights as nonzeros."""
    recipe = {"admm": {"sparsity": 0.9, "bits": 4, "structure": "irregular"}}
    float_g, lowered = lower_model(EXAMPLES / "digits_mlp_wide.onnx", digits_data, recipe)
    for node, original in zip(lowered.weighted_nodes(), float_g.weighted_nodes()):
        assert np.count_nonzero(lowered.params[node.inputs[1]]) <= 0.11 * float_g.params[original.inputs[1]].size
        assert node.attrs["weight_format"]["bits"] == 4
    float_acc = np.mean(predict_classes(float_g, digits_data.x_test) == digits_data.y_test)
    int_acc = np.mean(predict_classes(lowered, digits_data.x_test) == digits_data.y_test)
    assert int_acc >= float_acc - 0.015


@pytest.mark.parametrize("schedule", ["one_shot", "gradual"])
def test_magnitude_pruning_baseline_meets_its_target_without_touching_the_input(schedule, digits_data):
    from compiler.frontend.onnx import load_onnx
    from compiler.passes.base import get_pass

    graph = get_pass("canonicalize").run(load_onnx(EXAMPLES / "digits_mlp.onnx"), Context())
    before = {k: v.copy() for k, v in graph.params.items()}
    options = {"sparsity": 0.75, "schedule": schedule, "epochs": 6, "steps": 3, "remove_dead": False}
    ctx = Context(data=digits_data, recipe={"magnitude_prune": options}, log=lambda *_: None, progress=False)
    pruned = get_pass("magnitude_prune").run(graph, ctx)
    for node in pruned.weighted_nodes():
        assert np.mean(pruned.params[node.inputs[1]] == 0) == pytest.approx(0.75, abs=0.005)
    assert all(np.array_equal(before[k], graph.params[k]) for k in before)
