"""Convolutional networks through the whole flow: compile the digits CNN, simulate its Verilog
bit-exact and cycle-exact (Icarus), lint it, synthesize it; and hand-built CNNs whose engines
back-pressure each other, simulated against the timing model."""

import json
import shutil

import numpy as np
import pytest

from benchmarks.cnn_graphs import build_cnn, random_inputs, simulate_graph
from compiler import api
from compiler.backends.verilog import write_verilog
from compiler.hw import timing as hw_timing
from tests.compiler.hw.test_timing import MEASURED
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cnn_build(tmp_path_factory, digits_npz):
    out = tmp_path_factory.mktemp("cnn") / "out"
    report = api.compile(
        EXAMPLES / "digits_cnn.onnx", digits_npz, out, log=lambda *_: None, progress=False, synth_timeout=None
    )
    return out, report


def test_digits_cnn_simulates_bit_exact_in_the_estimated_cycles(cnn_build):
    """Measured: 0 mismatches on 8 samples; latency 2662 and interval 1152 cycles, both exactly
    the estimate (conv 4 + conv 16 + dense 1 multipliers; the second conv is the slowest stage)."""
    out, report = cnn_build
    design = json.loads((out / "rtl" / "design.json").read_text())
    assert design["input_order"] == "hwc" and design["input_shape"] == [1, 8, 8]
    assert [e["engine"] for e in design["engines"]] == ["conv", "pool", "conv", "pool", "dense"]
    result = api.simulate(out, samples=8, log=lambda *_: None)
    assert result["mismatches"] == 0 and result["error"] is None
    assert result["cycles_per_inference"] == design["estimated_latency"]
    assert result["initiation_interval"] == design["estimated_interval"]
    assert report["compiled"]["test_accuracy"] >= report["float"]["test_accuracy"] - 0.01
    hardware = json.loads((out / "report.json").read_text())["hardware"]
    assert hardware["cycles_source"] == "simulation" and hardware["cycles_per_inference"] == design["estimated_latency"]


def test_digits_cnn_report_counts_conv_layers(cnn_build):
    out, report = cnn_build
    layers = {layer["name"]: layer for layer in report["layers"]}
    assert [layer["engine"] for layer in report["layers"]] == ["conv", "conv", "dense"]
    c1, c2 = layers["/0/Conv"], layers["/3/Conv"]
    assert c1["shape"] == [8, 1, 3, 3] and c1["multiplies"] == c1["dense_multiplies"] == 8 * 8 * 8 * 1 * 9
    assert c2["shape"] == [16, 8, 3, 3] and c2["multiplies"] == 4 * 4 * 16 * 8 * 9 and c2["stored_weights"] == 1152
    assert c2["multipliers"] == c2["p_co"] * c2["p_ci"] * c2["p_k"] and c2["output_positions"] == 16
    float_bits = 32 * (72 + 1152 + 640)
    assert report["model"]["float_weight_bits"] == float_bits
    assert report["model"]["weight_bits"] == sum(layer["weight_bits"] for layer in report["layers"])
    assert report["model"]["compression_ratio"] == round(float_bits / report["model"]["weight_bits"], 3)
    work = report["hardware"]["work"]
    assert work["multiplies"] == sum(layer["dense_multiplies"] for layer in report["layers"])
    assert report["hardware"]["multipliers"] == sum(layer["multipliers"] for layer in report["layers"])
    assert "| `/3/Conv` | 16x8x3x3 | conv |" in (out / "report.md").read_text()


@pytest.mark.parametrize("name", MEASURED, ids=list(MEASURED))
def test_hand_built_cnns_are_bit_exact_and_cycle_exact(tmp_path, name):
    """Back-pressure between line-buffered engines, G < P_CO, strides beyond the kernel, padded
    and reciprocal average pools, a conv as the last layer, sparse and two-dense tails, kernel
    positions in parallel (P_K)."""
    shape, layers, seed, measured = MEASURED[name]
    graph = build_cnn(shape, layers, seed=seed)
    design, result = simulate_graph(graph, random_inputs(graph, 6), tmp_path)
    assert result["mismatches"] == 0, result["first_mismatches"]
    assert (
        (result["latency_first_sample"], result["initiation_interval"])
        == (design["estimated_latency"], design["estimated_interval"])
        == measured
    )


def test_cnn_model_matches_the_mean_interval_for_any_sample_count(cnn_build):
    """The testbench's interval is a mean over the samples; the model is settled from the first."""
    out, _ = cnn_build
    design = json.loads((out / "rtl" / "design.json").read_text())
    from compiler.backends.verilog import engine_specs
    from compiler.ir import Graph

    specs = engine_specs(Graph.load(out))
    run = hw_timing.run_stream(tuple(s.stage for s in specs), 10, 24)
    assert set(np.diff(run.outputs)) == {design["estimated_interval"]}


def test_generated_cnn_top_passes_verilator_lint(tmp_path, cnn_build):
    from sim.runner import SimulationError, ensure_verilator_on_path, lint_verilator

    try:
        ensure_verilator_on_path()
    except SimulationError as e:
        pytest.skip(str(e))
    out, _ = cnn_build
    design = json.loads((out / "rtl" / "design.json").read_text())
    lint_verilator([out / "rtl" / s for s in design["sources"]], design["top"])  # raises on any warning
    graph = build_cnn(*MEASURED["pools-first"][:2])  # average pools, a global pool, stride > kernel elsewhere
    design = write_verilog(graph, tmp_path)
    lint_verilator([tmp_path / s for s in design["sources"]], design["top"])


def test_cnn_design_synthesizes_without_latches(tmp_path, cnn_build):
    """Measured (yosys 0.23, synth_xilinx): 21 DSPs (4 + 16 + 1 multipliers), ~2.4k LUTs, 17 s."""
    from compiler.fpga.synth import synthesize

    if shutil.which("yosys") is None:
        pytest.skip("yosys is not installed")
    out, _ = cnn_build
    design = json.loads((out / "rtl" / "design.json").read_text())
    result = synthesize(out / "rtl", design, "fpga", tmp_path / "synth")
    assert result["status"] == "ok", result["note"]
    latches = {cell: n for cell, n in result["cell_counts"].items() if "latch" in cell.lower() or cell.startswith("LD")}
    assert not latches
    assert result["dsp"] == sum(e["multipliers"] for e in design["engines"])
