import json
import math
import shutil

import numpy as np
import pytest

import kernels
from compiler.backends.verilog import VerilogBackendError, engine_specs, write_verilog
from kernels.sparse_mac import encode_sparse, sparse_mac
from tests.conftest import EXAMPLES, lower_model


def _read_mem(path, width):
    words = [int(line, 16) for line in path.read_text().split()]
    return [w - (1 << width) if w >> (width - 1) else w for w in words]  # two's complement


def _fields(word, bits, count):
    values = [(word >> (i * bits)) & ((1 << bits) - 1) for i in range(count)]
    return [v - (1 << bits) if v >> (bits - 1) else v for v in values]


def test_dense_roms_hold_exactly_the_integer_weights(tmp_path, digits_lowered):
    _, graph = digits_lowered
    design = write_verilog(graph, tmp_path)
    for node, eng in zip(graph.weighted_nodes(), design["engines"]):
        w = graph.params[node.inputs[1]]
        p, bits = eng["multipliers"], eng["w_bits"]
        chunks = math.ceil(eng["n_in"] / p)
        raw = [int(line, 16) for line in (tmp_path / eng["w_file"]).read_text().split()]
        assert len(raw) == eng["n_out"] * chunks
        decoded = np.array([_fields(word, bits, p) for word in raw]).reshape(eng["n_out"], chunks * p)
        assert np.array_equal(decoded[:, : eng["n_in"]], w) and not decoded[:, eng["n_in"] :].any()
        bias = graph.params[node.inputs[2]]
        assert _read_mem(tmp_path / eng["b_file"], eng["b_bits"]) == list(bias)
        # the narrowest width that holds them (the engine sign-extends to the accumulator)
        widest = int(abs(bias).max())
        assert -(1 << (eng["b_bits"] - 1)) <= -widest and widest > (1 << (eng["b_bits"] - 2)) - 1
        assert eng["b_bits"] < eng["acc_bits"] and eng["parameters"]["B_BITS"] == eng["b_bits"]
    assert (tmp_path / "files.f").read_text().split() == design["sources"]
    assert json.loads((tmp_path / "design.json").read_text())["n_classes"] == 10


def test_sparse_roms_decode_to_the_same_accumulators(tmp_path, digits_data):
    recipe = {"admm": {"sparsity": 0.85, "bits": 4, "admm_epochs": 2, "retrain_epochs": 1}}
    _, graph = lower_model(EXAMPLES / "digits_mlp.onnx", digits_data, recipe)
    design = write_verilog(graph, tmp_path)
    x = np.random.default_rng(0).integers(-128, 128, size=(16, 64))
    for node, eng in zip(graph.weighted_nodes()[:1], design["engines"]):
        assert eng["engine"] == "sparse" and "sparse_mac.v" in design["sources"]
        w = graph.params[node.inputs[1]]
        entry_bits = eng["w_bits"] + eng["delta_bits"]
        raw = [int(line, 16) for line in (tmp_path / eng["w_file"]).read_text().split()]
        assert len(raw) == eng["n_words"]
        enc = encode_sparse(w, eng["multipliers"], eng["delta_bits"])
        for word, weights, deltas in zip(raw, enc.weights, enc.deltas):
            entries = [(word >> (p * entry_bits)) & ((1 << entry_bits) - 1) for p in range(eng["multipliers"])]
            assert _fields_of(entries, eng["w_bits"]) == (list(weights), list(deltas))
        counts = [int(line, 16) for line in (tmp_path / eng["c_file"]).read_text().split()]
        assert counts == list(enc.row_words)
        assert np.array_equal(sparse_mac(x, enc, None), kernels.dense_mac(x, w, None))


def _fields_of(entries, w_bits):
    weights = [e & ((1 << w_bits) - 1) for e in entries]
    weights = [v - (1 << w_bits) if v >> (w_bits - 1) else v for v in weights]
    return weights, [e >> w_bits for e in entries]


def test_generated_design_passes_verilator_lint(tmp_path, digits_lowered):
    from sim.runner import SimulationError, ensure_verilator_on_path, lint_verilator

    try:
        ensure_verilator_on_path()
    except SimulationError as e:
        pytest.skip(str(e))
    design = write_verilog(digits_lowered[1], tmp_path)
    lint_verilator([tmp_path / s for s in design["sources"]], design["top"])  # raises on any warning


def test_last_layer_must_output_accumulators(digits_lowered):
    _, graph = digits_lowered
    g = graph.copy()
    # make the graph end in a requantize: the design could not output raw logits any more
    from compiler.ir import Node

    last = g.nodes[-1]
    g.nodes.insert(
        len(g.nodes) - 1,
        Node(
            "requantize", "extra", [last.inputs[0]], ["rq"], attrs={"shift": 1, "bits": 8, "relu": False, "out_frac": 0}
        ),
    )
    last.inputs = ["rq"]
    with pytest.raises(VerilogBackendError, match="must output raw accumulators"):
        engine_specs(g)


@pytest.mark.slow
def test_generated_design_synthesizes_without_latches(tmp_path, digits_lowered):
    from compiler.fpga.synth import synthesize

    if shutil.which("yosys") is None:
        pytest.skip("yosys is not installed")
    design = write_verilog(digits_lowered[1], tmp_path / "rtl")
    result = synthesize(tmp_path / "rtl", design, "fpga", tmp_path / "synth")
    assert result["status"] == "ok", result["note"]
    latches = {cell: n for cell, n in result["cell_counts"].items() if "latch" in cell.lower() or cell.startswith("LD")}
    assert not latches and result["dsp"] > 0
