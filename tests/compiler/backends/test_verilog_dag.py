"""The Verilog backend on branching graphs (issue 27): the top's forks (rtl/fork2.v), join FIFOs
(rtl/fifo.v) and add engines, design.json's "inputs", "forks" and "fifos"; hand-built residual
designs simulated in Icarus (sim/test_design.py) with random back-pressure and input gaps: bit
for bit the golden executor's, never hung, and the cycles the DAG timing model predicts."""

import json
import re

import numpy as np
import pytest

import rtl
from benchmarks.cnn_graphs import build_cnn, conv, dense, flatten, global_avgpool, random_inputs
from benchmarks.residual_graphs import residual_cnn
from compiler.backends.verilog import write_verilog
from compiler.simulate import _write_stimulus
from sim.runner import run_cocotb


def test_residual_top_wires_a_fork_a_fifo_and_the_add(tmp_path):
    design = write_verilog(residual_cnn((2, 6, 6), channels=4), tmp_path)
    assert json.loads((tmp_path / "design.json").read_text()) == design
    assert [e["inputs"] for e in design["engines"]] == [
        ["input"],
        ["layer0"],
        ["layer1", "layer0"],
        ["layer2"],
        ["layer3"],
    ]
    assert design["forks"] == [{"source": "layer0", "readers": 2}]
    (fifo,) = design["fifos"]
    assert (fifo["instance"], fifo["consumer"], fifo["input"], fifo["source"]) == (
        "layer2_fifo_b",
        "layer2",
        1,
        "layer0",
    )
    assert design["sources"] == rtl.sources(
        "add.v", "conv2d.v", "dense_mac.v", "fifo.v", "fork2.v", "pool2d.v", "argmax.v"
    ) + ["mpc_top.v"]
    top = (tmp_path / "mpc_top.v").read_text()
    assert re.search(r"fork2 layer0_fork0 \(.*\.in_valid\(layer0_valid\), \.in_ready\(layer0_ready\)", top)
    assert f".DEPTH({fifo['depth']})) layer2_fifo_b (" in top and ".in_valid(layer0_to1_valid)" in top
    # the conv reads branch 0 of the fork, the add reads the conv (a) and the FIFO (b)
    assert ".in_valid(layer0_to0_valid), .in_ready(layer0_to0_ready), .in_data(layer0_data)" in top
    assert ".in_a_valid(layer1_valid)" in top and ".in_b_valid(layer2_fifo_b_valid)" in top
    assert "dag_timing.py" in design["timing_model"]


def test_residual_top_lints_clean_in_verilator(tmp_path):
    from sim.runner import SimulationError, ensure_verilator_on_path, lint_verilator

    try:
        ensure_verilator_on_path()
    except SimulationError:
        pytest.skip("verilator not available")
    design = write_verilog(residual_cnn((2, 6, 6), channels=3, blocks=2, skip_conv=True), tmp_path)
    lint_verilator([tmp_path / s for s in design["sources"]], design["top"])


def test_three_readers_chain_two_fork2s():
    from compiler.backends.verilog import _fork_lines

    taps: dict = {}
    lines = _fork_lines("layer4", ("layer4_valid", "layer4_ready", "layer4_data"), 3, taps, "layer4")
    text = "\n".join(lines)
    assert text.count("fork2 ") == 2
    assert "fork2 layer4_fork0 (.clk(clk), .rst(rst), .in_valid(layer4_valid), .in_ready(layer4_ready), " in text
    assert ".a_valid(layer4_to0_valid), .a_ready(layer4_to0_ready), .b_valid(layer4_fork1_valid)" in text
    assert "fork2 layer4_fork1 (.clk(clk), .rst(rst), .in_valid(layer4_fork1_valid)" in text
    assert ".a_valid(layer4_to1_valid), .a_ready(layer4_to1_ready), .b_valid(layer4_to2_valid)" in text
    assert taps["layer4"] == [(f"layer4_to{j}_valid", f"layer4_to{j}_ready", "layer4_data") for j in range(3)]


def test_chains_keep_their_design_json_without_forks_or_fifos(tmp_path):
    design = write_verilog(build_cnn((2, 6, 6), [conv(4), global_avgpool(), flatten(), dense(5)]), tmp_path)
    assert "forks" not in design and "fifos" not in design
    assert "fork2.v" not in design["sources"] and "fifo.v" not in design["sources"]
    assert [e["inputs"] for e in design["engines"]] == [["input"], ["layer0"], ["layer1"]]
    assert "fork2" not in (tmp_path / "mpc_top.v").read_text()


def _simulate(graph, n_samples: int, folder, stress: dict):
    """sim/test_design.py on the design (Icarus), its second phase under `stress`; a hang is a
    stall of more than a few of the model's latencies."""
    design = write_verilog(graph, folder / "rtl")
    work = folder / "sim"
    stimulus = _write_stimulus(work, folder, graph, design, random_inputs(graph, n_samples).astype(np.int64))
    result_path = work / "result.json"
    env = {
        "MPC_STIMULUS": str(stimulus),
        "MPC_SIM_RESULT": str(result_path),
        "MPC_SIM_BACKPRESSURE": json.dumps(stress),
        "MPC_SIM_STALL_CYCLES": str(4 * design["estimated_latency"]),
    }
    run_cocotb([folder / "rtl" / s for s in design["sources"]], design["top"], "test_design", work, extra_env=env)
    return design, json.loads(result_path.read_text())


CASES = {
    "identity_skip": dict(channels=4),
    "skip_conv_two_blocks": dict(channels=3, blocks=2, skip_conv=True, p_co=3),
    "input_forked": dict(channels=2, stem=False),  # the design's input itself feeds the conv and the add
}


RESNET8_LIKE = dict(in_shape=(3, 8, 8), channels=4, blocks=3, main_convs=2, downsample=(1, 2), p_co=4)


@pytest.mark.parametrize(
    "case", [*CASES, pytest.param("resnet8_like", marks=pytest.mark.slow)], ids=[*CASES, "resnet8_like"]
)
def test_residual_design_is_bit_exact_under_back_pressure_and_as_fast_as_modelled(tmp_path, case):
    graph = residual_cnn(**RESNET8_LIKE) if case == "resnet8_like" else residual_cnn((2, 6, 6), **CASES[case])
    stress = {"samples": 4, "gap_prob": 0.3, "ready_prob": 0.3, "seed": 7}
    design, result = _simulate(graph, 3, tmp_path, stress)
    assert result["mismatches"] == 0 and "error" not in result, result
    assert (
        result["backpressure"]["samples"] == 4 and result["backpressure"]["cycles"] > 4 * design["estimated_interval"]
    )
    assert result["latency_first_sample"] == design["estimated_latency"]
    assert result["initiation_interval"] == design["estimated_interval"]


def test_a_fifo_shallower_than_the_model_says_deadlocks(tmp_path, monkeypatch):
    """The control: with the join FIFO at 10 elements (the model asks for ~100) the skip fills it
    while the conv still waits for rows, the fork stops, and the design hangs (the bench says so)."""
    from dataclasses import replace

    import compiler.backends.verilog as verilog

    model = verilog.dag_timing

    def shallow(specs, n_classes):
        timing = model(specs, n_classes)
        return replace(timing, fifos=tuple(replace(f, depth=10) for f in timing.fifos))

    monkeypatch.setattr(verilog, "dag_timing", shallow)
    stress = {"samples": 2, "gap_prob": 0.3, "ready_prob": 0.3, "seed": 7}
    _, result = _simulate(residual_cnn((2, 6, 6), channels=4), 2, tmp_path, stress)
    assert result["mismatches"] == 1 and result["error"].startswith("SimTimeoutError"), result
    assert result["latency_first_sample"] is None  # not even the first sample came out


@pytest.mark.parametrize("branch", ["dense", "table"])
def test_a_vector_residual_planned_by_the_plan_pass_is_bit_exact(tmp_path, branch):
    """tests/compiler/ops/test_add.py's MLP with a join (the branch a dense layer or an activation
    table, whose input a is the early one), planned by the plan pass, simulated under back-pressure."""
    from compiler.passes.base import Context, get_pass
    from tests.compiler.ops.test_add import float_weights, integer_graph

    graph = integer_graph(branch, float_weights())
    for node in graph.nodes:  # the formats lower writes and the hand-built graph leaves out
        if node.op == "dense":
            node.attrs.setdefault("weight_format", {"bits": 8, "frac": 6})
            node.attrs.setdefault("input_format", {"bits": 8, "frac": 5 if node.name == "d1" else 4})
    graph = get_pass("plan").run(graph, Context(recipe={}, log=lambda *_: None, progress=False))
    assert graph.node("j").annotations["engine"] == "add"
    stress = {"samples": 6, "gap_prob": 0.3, "ready_prob": 0.3, "seed": 3}
    design, result = _simulate(graph, 4, tmp_path, stress)
    assert [e["inputs"] for e in design["engines"]][2] == ["layer0", "layer1"]
    assert [(f["consumer"], f["input"]) for f in design["fifos"]] == [("layer2", 0)]
    assert result["mismatches"] == 0 and "error" not in result, result
    assert result["latency_first_sample"] == design["estimated_latency"]
    assert result["initiation_interval"] == design["estimated_interval"]


@pytest.mark.parametrize("variant", ["residual", pytest.param("downsample", marks=pytest.mark.slow)])
def test_a_lowered_torch_residual_block_simulates_bit_exact(tmp_path, variant):
    """tests/dag_models.py's block exported by torch.onnx, trained briefly, through canonicalize,
    lower and plan as `mpc compile` runs them: the DAG top equals the golden executor under
    back-pressure, at the model's cycles."""
    from compiler.data import load_data
    from tests.conftest import EXAMPLES, lower_model
    from tests.dag_models import export_dag

    data = load_data(EXAMPLES / "digits.npz", (1, 8, 8), 10)
    _, graph = lower_model(export_dag(tmp_path / f"{variant}.onnx", variant, data, epochs=5), data)
    stress = {"samples": 4, "gap_prob": 0.3, "ready_prob": 0.3, "seed": 7}
    design, result = _simulate(graph, 3, tmp_path / "build", stress)
    assert [e["engine"] for e in design["engines"]].count("add") == 1 and len(design["fifos"]) == 1
    assert result["mismatches"] == 0 and "error" not in result, result
    assert result["latency_first_sample"] == design["estimated_latency"]
    assert result["initiation_interval"] == design["estimated_interval"]


def test_a_torch_concat_block_checks_compiles_and_simulates_bit_exact(tmp_path, monkeypatch):
    """tests/dag_models.py's channel concat exported by torch.onnx: `mpc check` calls every node
    supported and `mpc compile` agrees (the concat engine, the skip waiting in a FIFO on input b);
    `mpc simulate` (Icarus, its second phase under random input gaps and back-pressure) equals
    the golden executor bit for bit, at the DAG model's cycles."""
    from compiler import api
    from compiler.check import check, render
    from compiler.data import load_data
    from tests.conftest import EXAMPLES
    from tests.dag_models import export_dag

    data = load_data(EXAMPLES / "digits.npz", (1, 8, 8), 10)
    model = export_dag(tmp_path / "concat.onnx", "concat", data, epochs=5)
    verdicts = check(model)
    assert [v.detail for v in verdicts if v.op_type == "Concat"] == ["concat: concat engine (channel join)"]
    assert render(model, verdicts).endswith("every node is supported: `mpc compile` will take this model")
    out = tmp_path / "out"
    api.compile(model, EXAMPLES / "digits.npz", out, log=lambda *_: None, progress=False, synth_timeout=None)
    design = json.loads((out / "rtl" / "design.json").read_text())
    (concat,) = [e for e in design["engines"] if e["engine"] == "concat"]
    assert concat["parameters"]["C_A"] == concat["parameters"]["C_B"] == 4
    assert [(f["consumer"], f["input"]) for f in design["fifos"]] == [(concat["instance"], 1)]  # the skip
    monkeypatch.setenv(
        "MPC_SIM_BACKPRESSURE", json.dumps({"samples": 4, "gap_prob": 0.3, "ready_prob": 0.3, "seed": 7})
    )
    monkeypatch.setenv("MPC_SIM_STALL_CYCLES", str(4 * design["estimated_latency"]))
    result = api.simulate(out, samples=3, simulator="icarus", log=lambda *_: None)
    assert result["mismatches"] == 0 and result["error"] is None, result
    assert json.loads((out / "sim_build" / "icarus" / "result.json").read_text())["backpressure"]["samples"] == 4
    assert result["cycles_per_inference"] == design["estimated_latency"]
    assert result["initiation_interval"] == design["estimated_interval"]


def test_a_concat_of_two_conv_branches_in_two_formats_is_bit_exact(tmp_path):
    """tests/compiler/ops/test_concat.py's graph (the design's input forked to two convs of 3 and
    2 channels; a in Q(8, 4) rounded by 2 bits into b's Q(8, 2)), planned by the plan pass,
    simulated under back-pressure: bit for bit, at the model's cycles."""
    from compiler.passes.base import Context, get_pass
    from tests.compiler.ops.test_concat import integer_graph

    graph = integer_graph()
    for node in graph.nodes:  # the formats lower writes and the hand-built graph leaves out
        if node.op in ("conv2d", "dense"):
            node.attrs.setdefault("weight_format", {"bits": 8, "frac": 6})
            node.attrs.setdefault("input_format", {"bits": 8, "frac": 2 if node.op == "dense" else 5})
    graph = get_pass("plan").run(graph, Context(recipe={}, log=lambda *_: None, progress=False))
    assert graph.node("j").annotations["engine"] == "concat"
    stress = {"samples": 6, "gap_prob": 0.3, "ready_prob": 0.3, "seed": 3}
    design, result = _simulate(graph, 4, tmp_path, stress)
    assert [e["inputs"] for e in design["engines"]][2] == ["layer0", "layer1"]
    assert design["forks"] == [{"source": "input", "readers": 2}]
    assert [(f["consumer"], f["input"]) for f in design["fifos"]] == [("layer2", 1)]
    p = design["engines"][2]["parameters"]
    assert (p["C_A"], p["C_B"], p["SHIFT_A"], p["SHIFT_B"]) == (3, 2, 2, 0)
    assert result["mismatches"] == 0 and "error" not in result, result
    assert result["latency_first_sample"] == design["estimated_latency"]
    assert result["initiation_interval"] == design["estimated_interval"]
