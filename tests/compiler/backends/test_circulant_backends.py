"""Circulant layers through the golden executor, the integer ONNX (bit-exact) and the Verilog
backend (ROMs, parameters, design.json, lint)."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from compiler.backends.onnx import to_onnx
from compiler.backends.verilog import write_verilog
from compiler.exec import golden
from compiler.hw import circulant as hw_circulant
from compiler.ir import Graph
from compiler.ops.circulant import circulant_layer
from kernels.circulant_mac import circulant_exact, circulant_mac, circulant_vectors, plan_circulant
from kernels.circulant_rom import bias_rom_words, spectra_rom_words, twiddle_rom_words
from tests.conftest import EXAMPLES, lower_model

FIRST, SECOND, LAST = "/1/Gemm", "/3/Gemm", "/5/Gemm"

# name -> (circulant table, lower table)
CASES = {
    "b8_hidden": ({"block_size": 8}, None),
    # every layer, the last [10, 16] too: 2 padded output rows
    "b4_all_padded": ({"block_size": 4, "layers": {LAST: {"block_size": 4}}}, None),
    "b2_and_b16": ({"block_size": 2, "layers": {FIRST: {"block_size": 16}}}, None),
    # narrow spectra, few forward and many inverse guard bits: a negative spectral shift R
    "narrow_left_shift": ({"block_size": 8}, {"spectrum_bits": 10, "fft_guard": 3, "ifft_guard": 6}),
}


def _lower(data, case):
    circ, low = CASES[case]
    recipe = {"passes": ["canonicalize", "circulant", "lower"], "circulant": {"epochs": 2} | circ}
    if low:
        recipe["lower"] = low
    return lower_model(EXAMPLES / "digits_mlp.onnx", data, recipe)[1]


@pytest.fixture(scope="module")
def graphs(digits_data):
    return {case: _lower(digits_data, case) for case in CASES}


def _onnx(graph, x):
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {graph.inputs[0].name: x})


@pytest.mark.parametrize("case", CASES)
def test_integer_onnx_is_bit_exact_with_golden_on_all_of_x_test(graphs, digits_data, case):
    graph = graphs[case]
    assert any(n.op == "circulant" for n in graph.nodes)
    logits, logits_q, classes = _onnx(graph, digits_data.x_test)
    ref = golden.run(graph, digits_data.x_test)
    assert logits_q.dtype == np.int32
    assert np.array_equal(logits_q, ref.logits_q) and np.array_equal(classes, ref.classes)
    assert np.array_equal(logits, ref.logits)


def test_the_cases_cover_padding_and_both_shift_directions(graphs):
    layers = {case: [circulant_layer(g, n) for n in g.nodes if n.op == "circulant"] for case, g in graphs.items()}
    assert layers["b4_all_padded"][-1].n_out == 10 and layers["b4_all_padded"][-1].grid == (3, 4)
    assert [layer.block for layer in layers["b2_and_b16"]] == [16, 2]
    assert all(layer.spectral_shift < 0 for layer in layers["narrow_left_shift"])
    assert all(layer.spectral_shift > 0 for layer in layers["b8_hidden"])


def test_onnx_agrees_on_rounding_ties_and_saturated_inputs(graphs):
    """Inputs on rounding ties and far outside the calibrated range drive every circulant layer
    with extreme values (all-min, all-max activations)."""
    for graph in graphs.values():
        frac = graph.meta["input_format"]["frac"]
        rng = np.random.default_rng(0)
        ties = (rng.integers(-300, 300, size=(128, 8, 8)) + 0.5) * 2.0**-frac
        x = np.concatenate(
            [ties, rng.normal(0, 50, size=(128, 8, 8)), np.full((1, 8, 8), 1e3), np.full((1, 8, 8), -1e3)]
        ).astype(np.float32)
        _, logits_q, classes = _onnx(graph, x)
        ref = golden.run(graph, x)
        assert np.array_equal(logits_q, ref.logits_q) and np.array_equal(classes, ref.classes)


def test_golden_runs_the_fixed_point_fft_with_the_stored_spectra(graphs, digits_data):
    graph = graphs["b8_hidden"]
    record = {}
    golden.run(graph, digits_data.x_test, record=record)
    node = graph.node(FIRST)
    w_q, b_q = (graph.params[t].astype(np.int64) for t in node.inputs[1:3])
    layer = plan_circulant(circulant_vectors(w_q, 8), b_q, 64, 32, in_bits=node.attrs["input_format"]["bits"])
    x = record[FIRST]
    fft = circulant_mac(x, layer)
    assert np.array_equal(circulant_layer(graph, node).spectra_re, layer.spectra_re)
    assert not np.array_equal(fft, circulant_exact(x, layer))  # b = 8: the FFT rounds
    exact = golden.run(graph, digits_data.x_test, exact={FIRST, SECOND})
    plain = golden.run(graph, digits_data.x_test)
    assert not np.array_equal(exact.logits_q, plain.logits_q)


def test_saved_graph_reloads_and_refuses_tampered_widths(graphs, digits_data, tmp_path):
    graph = graphs["b4_all_padded"]
    graph.save(tmp_path)
    loaded = Graph.load(tmp_path)
    assert np.array_equal(
        golden.run(loaded, digits_data.x_test).logits_q, golden.run(graph, digits_data.x_test).logits_q
    )
    loaded.node(FIRST).attrs["circulant"]["mac_bits"] -= 1
    with pytest.raises(ValueError, match="differ from the derived"):
        golden.run(loaded, digits_data.x_test[:4])


# ------------------------------------------------------------------------ Verilog
def _mem(path):
    return [int(line, 16) for line in path.read_text().split()]


def test_verilog_backend_writes_circulant_engines(graphs, tmp_path):
    graph = graphs["b4_all_padded"]
    design = write_verilog(graph, tmp_path)
    assert design["sources"] == [
        "circulant_round.v",
        "rom_check.v",
        "rom_port.v",
        "circulant_butterfly.v",
        "circulant_control.v",
        "requantize.v",
        "engine_output.v",
        "circulant_output.v",
        "circulant_spectral.v",
        "circulant_mac.v",
        "argmax.v",
        "mpc_top.v",
    ]
    top = (tmp_path / "mpc_top.v").read_text()
    for node, eng in zip(graph.weighted_nodes(), design["engines"]):
        layer = circulant_layer(graph, node)
        bf, sm = eng["parameters"]["BF"], eng["parameters"]["SM"]
        assert eng["engine"] == "circulant" and eng["block_size"] == 4
        assert eng["multipliers"] == node.annotations["multipliers"] == 3 * max(bf, sm)
        want = hw_circulant.circulant_cost(
            layer.n_in, layer.n_out, 4, layer.spectrum_bits, layer.twiddle_frac, eng["parameters"]["B_BITS"], bf, sm
        )
        assert (eng["rom_bits"], eng["weight_rom_bits"], eng["compute_cycles"], eng["latency"], eng["interval"]) == (
            want.rom_bits,
            want.weight_rom_bits,
            want.compute_cycles,
            want.latency,
            want.interval,
        )
        assert _mem(tmp_path / eng["w_file"]) == spectra_rom_words(layer, sm)
        assert _mem(tmp_path / eng["tw_file"]) == twiddle_rom_words(4, layer.twiddle_frac)
        assert _mem(tmp_path / eng["b_file"]) == bias_rom_words(layer)
        params = eng["parameters"]
        assert (params["ACC_BITS"], params["MAC_BITS"], params["SPEC_SHIFT"]) == (
            layer.acc_bits,
            layer.mac_bits,
            layer.spectral_shift,
        )
        assert f'.W_FILE("{eng["w_file"]}")' in top and f"{eng['instance']} (" in top
    last = design["engines"][-1]
    assert last["parameters"]["REQUANT"] == 0 and design["logit_bits"] == last["acc_bits"]
    assert json.loads((tmp_path / "design.json").read_text())["engines"] == design["engines"]
    assert design["estimated_latency"] == 64 + sum(e["compute_cycles"] + 1 for e in design["engines"])


def test_circulant_mac_is_copied_only_when_used(graphs, digits_lowered, tmp_path):
    mixed = write_verilog(graphs["b8_hidden"], tmp_path / "mixed")
    assert [e["engine"] for e in mixed["engines"]] == ["circulant", "circulant", "dense"]
    assert {"circulant_mac.v", "dense_mac.v"} <= set(mixed["sources"])
    plain = write_verilog(digits_lowered[1], tmp_path / "plain")
    assert "circulant_mac.v" not in plain["sources"] and not (tmp_path / "plain" / "circulant_mac.v").exists()
    assert all(e["block_size"] == 1 for e in plain["engines"])


@pytest.mark.parametrize("case", ["b8_hidden", "narrow_left_shift"])
def test_generated_circulant_design_passes_verilator_lint(graphs, tmp_path, case):
    from sim.runner import SimulationError, ensure_verilator_on_path, lint_verilator

    try:
        ensure_verilator_on_path()
    except SimulationError as e:
        pytest.skip(str(e))
    design = write_verilog(graphs[case], tmp_path)
    lint_verilator([tmp_path / s for s in design["sources"]], design["top"])


@pytest.mark.slow
def test_generated_circulant_design_synthesizes_without_latches(graphs, tmp_path):
    import shutil

    from compiler.fpga.synth import synthesize

    if shutil.which("yosys") is None:
        pytest.skip("yosys is not installed")
    design = write_verilog(graphs["b8_hidden"], tmp_path / "rtl")
    result = synthesize(tmp_path / "rtl", design, "fpga", tmp_path / "synth")
    assert result["status"] == "ok", result["note"]
    latches = {cell: n for cell, n in result["cell_counts"].items() if "latch" in cell.lower() or cell.startswith("LD")}
    assert not latches
    assert result["dsp"] >= 2 * 4  # each circulant engine's complex multiplier: 4 DSP blocks


def test_padded_inputs_and_outputs_are_bit_exact_in_onnx(tmp_path):
    """A [12, 20] layer at b = 8: inputs zero-padded to 24 (ONNX Pad), outputs cropped from 16."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from compiler.data import load_data

    rng = np.random.default_rng(1)
    w1, b1 = rng.normal(0, 0.4, (12, 20)).astype(np.float32), rng.normal(0, 0.1, 12).astype(np.float32)
    w2, b2 = rng.normal(0, 0.4, (3, 12)).astype(np.float32), rng.normal(0, 0.1, 3).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["z"], name="fc1", transB=1),
        helper.make_node("Relu", ["z"], ["h"], name="relu"),
        helper.make_node("Gemm", ["h", "w2", "b2"], ["logits"], name="fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "padded",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 20])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 3])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "m.onnx"))
    x = rng.random((300, 20)).astype(np.float32)
    y = (np.maximum(x @ w1.T + b1, 0) @ w2.T + b2).argmax(1)
    np.savez(tmp_path / "d.npz", x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    data = load_data(tmp_path / "d.npz", (20,), 3)
    lowered = lower_model(
        tmp_path / "m.onnx",
        data,
        {"passes": ["canonicalize", "circulant", "lower"], "circulant": {"block_size": 8, "epochs": 1}},
    )[1]
    layer = circulant_layer(lowered, lowered.node("fc1"))
    assert layer.grid == (2, 3) and (layer.n_out, layer.n_in) == (12, 20)
    x_all = np.concatenate([x, np.full((1, 20), 1e3, np.float32), np.full((1, 20), -1e3, np.float32)])
    _, logits_q, classes = _onnx(lowered, x_all)
    ref = golden.run(lowered, x_all)
    assert np.array_equal(logits_q, ref.logits_q) and np.array_equal(classes, ref.classes)
