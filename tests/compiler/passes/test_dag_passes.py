"""The float passes on branching graphs (issue 27): canonicalize folds nothing into a layer whose
output another node reads; magnitude pruning and ADMM on a residual block keep the two inputs of
the add in one channel set (channels that reach a join are never removed, and the pass says so)
and still lower bit-exactly; fine_prune picks only units inside a branch; circulant makes the
pointwise (1x1) skip conv block-circulant."""

import numpy as np
import onnxruntime as ort
import pytest

from compiler import passes  # noqa: F401
from compiler.backends.onnx import to_onnx
from compiler.data import load_data
from compiler.exec import golden
from compiler.exec import torch as torch_exec
from compiler.frontend.onnx import load_onnx
from compiler.ir import Graph, Node, TensorSpec
from compiler.passes.base import Context, PassError, get_pass
from compiler.passes.fine_prune import chosen_layer
from compiler.passes.manager import run_flow
from tests.conftest import EXAMPLES
from tests.dag_models import export_dag

STEM, C1, C2, SKIP = "/stem/Conv", "/c1/Conv", "/c2/Conv", "/skip/Conv"


@pytest.fixture(scope="module")
def cnn_data():
    return load_data(EXAMPLES / "digits.npz", (1, 8, 8), 10)


@pytest.fixture(scope="module")
def models(cnn_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dag")
    return {v: load_onnx(export_dag(folder / f"{v}.onnx", v, cnn_data)) for v in ("residual", "downsample")}


def _run(graph: Graph, data, flow: list[str], recipe: dict) -> tuple[Graph, list[str]]:
    lines: list[str] = []
    ctx = Context(data=data, recipe=recipe, log=lines.append, progress=False)
    out, _ = run_flow(graph, flow, ctx)
    return out, lines


def _exact(integer: Graph, data) -> float:
    """model.int.onnx == golden on every test row; the integer accuracy."""
    session = ort.InferenceSession(to_onnx(integer).SerializeToString(), providers=["CPUExecutionProvider"])
    logits_q = session.run(None, {"x": data.x_test.astype(np.float32)})[1]
    ref = golden.run(integer, data.x_test)
    assert np.array_equal(logits_q, ref.logits_q)
    return float((ref.classes == data.y_test).mean())


def _float_accuracy(graph: Graph, data) -> float:
    return float((torch_exec.predict_logits(graph, data.x_test).argmax(1) == data.y_test).mean())


def test_canonicalize_folds_nothing_into_a_conv_whose_output_forks():
    rng = np.random.default_rng(0)
    params = {
        "c.w": rng.normal(size=(2, 2, 1, 1)).astype(np.float32),
        "c.b": rng.normal(size=(2, 1, 1)).astype(np.float32),
        "bn.scale": np.array([2.0, 0.5], np.float32),
        "bn.shift": np.array([0.1, -0.1], np.float32),
    }
    window = {"kernel": [1, 1], "stride": [1, 1], "pads": [0, 0, 0, 0]}
    nodes = [
        Node("conv2d", "c", ["x", "c.w"], ["t"], attrs=window),
        Node("bias_add", "b", ["t", "c.b"], ["tb"]),
        Node("batchnorm", "bn", ["tb", "bn.scale", "bn.shift"], ["u"]),
        Node("add", "j", ["u", "tb"], ["y"]),
    ]
    graph = Graph([TensorSpec("x", (2, 3, 3))], [TensorSpec("y", (2, 3, 3))], nodes, params)
    out = get_pass("canonicalize").apply(graph, Context(log=lambda *_: None))
    assert [n.op for n in out.nodes] == ["conv2d", "batchnorm", "add"]  # the bias fused; the BN stays
    assert out.node("j").inputs == ["u", "tb"] and out.node("bn").inputs[0] == "tb"
    x = np.random.default_rng(1).normal(size=(4, 2, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(torch_exec.run(out, x), torch_exec.run(graph, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["residual", "downsample"])
def test_magnitude_pruning_keeps_the_channels_that_reach_the_add(models, cnn_data, variant):
    graph = models[variant]
    layers = {name: {"sparsity": 0.5, "structure": "filters"} for name in (STEM, C1, C2)}
    recipe = {"magnitude_prune": {"sparsity": 0.0, "epochs": 2, "layers": layers}}
    integer, lines = _run(graph, cnn_data, ["canonicalize", "magnitude_prune", "lower"], recipe)
    pruned, _ = _run(graph, cnn_data, ["canonicalize", "magnitude_prune"], recipe)
    # c1 -> relu -> c2 lies inside the branch: c1's dead filters and c2's inputs that read them go
    assert pruned.params[pruned.node(C1).inputs[1]].shape[0] == 2
    assert pruned.params[pruned.node(C2).inputs[1]].shape[1] == 2
    # c2 and the skip path feed the add (the stem directly, or through the 1x1 skip conv): kept whole;
    # the stem also forks (a tensor read twice is never a boundary), so it keeps its filters either way
    joined = [C2, STEM] if variant == "residual" else [C2, SKIP]
    assert pruned.params[pruned.node(STEM).inputs[1]].shape[0] == 4
    for name in joined:
        node = pruned.node(name)
        assert pruned.params[node.inputs[1]].shape[0] == 4, name
        assert "reaches add '/Add'" in node.annotations["channels_kept"]
    assert pruned.meta["channels_kept_at_joins"] == sorted(joined)
    assert any("reach a join (add/concat): left in place" in line for line in lines)
    assert abs(_exact(integer, cnn_data) - _float_accuracy(pruned, cnn_data)) <= 0.03


def test_admm_on_the_residual_block_lowers_bit_exactly(models, cnn_data):
    recipe = {"admm": {"global_sparsity": 0.6, "bits": 4, "admm_epochs": 2, "retrain_epochs": 2}}
    compressed, _ = _run(models["residual"], cnn_data, ["canonicalize", "admm"], recipe)
    integer, _ = _run(models["residual"], cnn_data, ["canonicalize", "admm", "lower"], recipe)
    weights = [compressed.params[n.inputs[1]] for n in compressed.weighted_nodes(include_conv=True)]
    assert np.mean(np.concatenate([w.ravel() for w in weights]) == 0) >= 0.55
    for node in integer.weighted_nodes(include_conv=True):
        assert node.attrs["weight_format"]["bits"] == 4  # admm's grid, kept exactly by lower
    (add,) = [n for n in integer.nodes if n.op == "add"]
    assert add.attrs["relu"]
    assert abs(_exact(integer, cnn_data) - _float_accuracy(compressed, cnn_data)) <= 0.03


def test_fine_prune_takes_its_units_inside_a_branch_only(models):
    graph = get_pass("canonicalize").apply(models["residual"], Context(log=lambda *_: None))
    assert chosen_layer(graph, "").name == C1  # c1 -> relu -> c2: the only boundary
    with pytest.raises(PassError, match=rf"^fine_prune: layer '{C2}' \(conv2d\) has no prunable units"):
        chosen_layer(graph, C2)


def test_circulant_makes_the_pointwise_skip_conv_block_circulant(models, cnn_data):
    recipe = {"circulant": {"block_size": 1, "epochs": 1, "layers": {SKIP: {"block_size": 2}}}}
    integer, _ = _run(models["downsample"], cnn_data, ["canonicalize", "circulant", "lower"], recipe)
    skip = integer.node(SKIP)
    assert skip.attrs["kernel"] == [1, 1] and skip.attrs["circulant"] == {"block": 2, "p": 2, "q": 2}
    assert not any("circulant" in integer.node(n).attrs for n in (STEM, C1, C2))
    _exact(integer, cnn_data)
