"""The plan pass: hardware planning split from lower, re-runnable on an integer graph, and the
typed plan that Graph.validate and the backends check."""

import pytest

from benchmarks.cnn_graphs import build_cnn, conv, dense, flatten, maxpool
from compiler import hw
from compiler.backends.verilog import VerilogBackendError, engine_specs
from compiler.ir import Graph, IRError
from compiler.passes.base import Context, PassError, get_pass
from tests.conftest import EXAMPLES, lower_model


def _plan(graph, recipe=None):
    return get_pass("plan").run(graph, Context(recipe=recipe or {}, log=lambda *_: None, progress=False))


@pytest.fixture(scope="module")
def unplanned(digits_data):
    """The digits MLP after lower only: what OUT/checkpoints/02-lower holds."""
    _, planned = lower_model(EXAMPLES / "digits_mlp.onnx", digits_data)
    graph = planned.copy()
    graph.meta.pop("planned")
    graph.meta.pop("plan")
    for node in graph.nodes:
        node.annotations = {
            k: v
            for k, v in node.annotations.items()
            if k not in ("engine", "multipliers", "delta_bits", "engine_reason", "break_even_sparsity", "cost")
        }
    return planned, graph


def test_the_default_flow_plans_after_lower(unplanned):
    planned, _ = unplanned
    assert planned.meta["planned"] and planned.meta["plan"]["multipliers"] == 16
    assert all(n.annotations["engine"] == "dense" for n in planned.weighted_nodes())


def test_replanning_an_integer_graph_needs_no_data_and_changes_only_the_plan(unplanned):
    planned, graph = unplanned
    again = _plan(graph)
    assert [n.annotations for n in again.nodes] == [n.annotations for n in planned.nodes]
    fewer = _plan(graph, {"plan": {"multipliers": 4}})
    assert fewer.nodes[2].annotations["multipliers"] == 4
    assert fewer.meta["plan"]["cycle_budget"] > planned.meta["plan"]["cycle_budget"]
    for a, b in zip(fewer.nodes, planned.nodes):  # the integer graph itself is untouched
        assert a.attrs == b.attrs and a.inputs == b.inputs
    assert all((fewer.params[k] == planned.params[k]).all() for k in planned.params)


def test_legacy_lower_options_plan_as_plan_options(unplanned):
    _, graph = unplanned
    legacy = _plan(graph, {"lower": {"multipliers": 8, "layers": {"/5/Gemm": {"multipliers": 3}}}})
    modern = _plan(graph, {"plan": {"multipliers": 8, "layers": {"/5/Gemm": {"multipliers": 3}}}})
    assert [n.annotations for n in legacy.nodes] == [n.annotations for n in modern.nodes]
    assert legacy.node("/5/Gemm").annotations["multipliers"] == 3


def test_plan_refuses_a_float_graph(digits_model):
    from compiler.frontend.onnx import load_onnx

    with pytest.raises(PassError, match="plan: runs on integer graphs"):
        _plan(load_onnx(digits_model))


def test_a_missing_or_inconsistent_plan_is_an_error_naming_the_node(tmp_path):
    graph = build_cnn((1, 6, 6), [conv(4, p_co=2), maxpool(2), flatten(), dense(3)])
    graph.save(tmp_path / "ok")
    Graph.load(tmp_path / "ok")
    bad = graph.copy()
    bad.node("L0_conv2d").annotations["multipliers"] = 3  # not p_co x p_ci x p_k = 2
    with pytest.raises(IRError, match=r"'L0_conv2d' \(conv engine\): plan field multipliers 3 is not p_co"):
        bad.validate()
    missing = graph.copy()
    del missing.node("L3_dense").annotations["engine"]
    with pytest.raises(IRError, match=r"'L3_dense' \(dense\): plan names engine None"):
        missing.validate()
    wrong = graph.copy()
    wrong.node("L3_dense").annotations["engine"] = "conv"
    with pytest.raises(IRError, match=r"a dense runs on dense or sparse"):
        wrong.validate()
    typed = graph.copy()
    typed.node("L3_dense").annotations["multipliers"] = "4"
    with pytest.raises(IRError, match=r"'L3_dense' \(dense engine\): plan field multipliers must be an integer"):
        typed.validate()


def test_an_edited_checkpoint_fails_on_load(tmp_path):
    graph = build_cnn((1, 6, 6), [conv(4), flatten(), dense(3)])
    graph.save(tmp_path)
    doc = (tmp_path / "graph.json").read_text().replace('"p_k": 1', '"p_k": 0', 1)
    (tmp_path / "graph.json").write_text(doc)
    with pytest.raises(IRError, match=r"'L0_conv2d' \(conv engine\): plan field p_k must be an integer >= 1"):
        Graph.load(tmp_path)


def test_the_backend_never_defaults_an_unplanned_graph():
    graph = build_cnn((1, 6, 6), [conv(4), flatten(), dense(3)])
    graph.meta.pop("planned")
    with pytest.raises(VerilogBackendError, match="no hardware plan: run the plan pass"):
        engine_specs(graph)


def test_every_engine_is_complete():
    """Each registered engine names an rtl module the library has, computes integer ops, and
    every op with engines has exactly one default."""
    import rtl
    from compiler.ir import INTEGER_OPS

    for kind, engine in hw.ENGINES.items():
        assert engine.module in rtl.DEPENDENCIES and (rtl.RTL_DIR / engine.module).is_file(), kind
        assert set(engine.ops) <= INTEGER_OPS, kind
    for op in hw.engine_ops():
        assert sum(e.default for e in hw.engines_for(op)) == 1, op


@pytest.mark.slow
def test_mpc_compile_replans_a_lower_checkpoint_without_recalibrating(tmp_path, digits_model, digits_npz):
    """`mpc compile OUT/checkpoints/02-lower --recipe plan.toml` runs only plan: the integer
    graph (params, formats) is the first build's, the engines follow the new [plan] table."""
    from compiler import api

    quiet = {"log": lambda *_: None, "progress": False, "synth_timeout": None}
    first = api.compile(digits_model, digits_npz, tmp_path / "a", **quiet)
    recipe = tmp_path / "plan.toml"
    recipe.write_text("[plan]\nmultipliers = 4\n")
    checkpoint = tmp_path / "a" / "checkpoints" / "02-lower"
    again = api.compile(checkpoint, digits_npz, tmp_path / "b", recipe=recipe, **quiet)
    assert [p["name"] for p in again["passes"]] == ["plan"]
    assert again["compiled"]["test_accuracy"] == first["compiled"]["test_accuracy"]
    assert again["float"] == first["float"] and again["model"] == first["model"]
    assert again["layers"][0]["multipliers"] == 4 < first["layers"][0]["multipliers"]
    assert again["hardware"]["estimated_cycles_per_inference"] > first["hardware"]["estimated_cycles_per_inference"]
    a, b = Graph.load(tmp_path / "a"), Graph.load(tmp_path / "b")
    assert all((a.params[k] == b.params[k]).all() for k in a.params)
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["00-import", "01-plan"]
    with pytest.raises(api.MpcError, match="not a checkpoint"):
        api.compile(tmp_path / "a" / "rtl", digits_npz, tmp_path / "c", **quiet)


def test_a_given_cycle_budget_gets_the_fewest_multipliers_within_it(unplanned, digits_data):
    planned, graph = unplanned
    budget = planned.meta["plan"]["cycle_budget"]  # the dense design at multipliers = 16
    again = _plan(graph, {"plan": {"cycle_budget": budget}})
    assert again.meta["plan"]["cycle_budget"] == budget
    assert [n.annotations["multipliers"] for n in again.weighted_nodes()] == [
        n.annotations["multipliers"] for n in planned.weighted_nodes()
    ]
    # the block-circulant model (b = 8) meets the dense design's budget with fewer multipliers
    recipe = {"passes": ["canonicalize", "circulant", "lower"], "circulant": {"block_size": 8, "epochs": 0}}
    _, circ = lower_model(EXAMPLES / "digits_mlp.onnx", digits_data, recipe | {"plan": {"cycle_budget": budget}})
    engines = [n.annotations["engine"] for n in circ.weighted_nodes()]
    assert engines == ["circulant", "circulant", "dense"]
    for node in circ.weighted_nodes():
        chosen = node.annotations["cost"][node.annotations["engine"]]
        assert chosen["interval" if node.annotations["engine"] == "circulant" else "compute_cycles"] <= budget
    total = sum(n.annotations["multipliers"] for n in circ.weighted_nodes())
    assert total < sum(n.annotations["multipliers"] for n in planned.weighted_nodes())
    with pytest.raises(PassError, match="cycle_budget"):
        _plan(graph, {"plan": {"cycle_budget": -1}})
