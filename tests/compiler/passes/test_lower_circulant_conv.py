"""Block-circulant convolutions (docs/fixed-point.md "Block-circulant convolutions"): lower keeps
them exact integer convs with attrs `circulant`, model.int.onnx stores only the defining vectors
and equals the golden executor bit for bit, the conv engine gets P_CO, P_CI multiples of b and a
vector ROM b times narrower, and the whole flow simulates with 0 mismatches."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from compiler import api, hw
from compiler.backends.onnx import to_onnx
from compiler.data import load_data
from compiler.exec import golden
from compiler.frontend.onnx import load_onnx
from compiler.hw import conv as hw_conv
from compiler.ir import Graph
from compiler.passes.base import Context, PassError
from compiler.passes.circulant import annotate, project_weight
from compiler.passes.manager import run_flow
from kernels.circulant_conv import (
    conv_circulant_expand,
    conv_circulant_pullback,
    conv_circulant_vectors,
    fft_conv_multiplies,
)
from kernels.circulant_mac import block_grid
from kernels.conv_rom import circulant_conv_rom_words, conv_weight_rom_words, expand_circulant_word
from tests.conftest import EXAMPLES

QUIET = dict(log=lambda *_: None, progress=False)
BLOCKS = {"/0/Conv": 2, "/3/Conv": 8}  # digits CNN: conv 1 -> 8 (3x3), conv 8 -> 16 (3x3)


def circulant_cnn(blocks=None, cnn_data=None) -> Graph:
    """The canonicalized digits CNN with its convs projected to block-circulant channels and
    annotated as the `circulant` pass marks them."""
    ctx = Context(data=cnn_data, recipe={}, log=lambda *_: None, progress=False)
    graph, _ = run_flow(load_onnx(EXAMPLES / "digits_cnn.onnx"), ["canonicalize"], ctx)
    graph = graph.copy()
    for node in graph.nodes:
        b = (blocks or BLOCKS).get(node.name)
        if node.op != "conv2d" or not b:
            continue
        w = graph.params[node.inputs[1]]
        graph.params[node.inputs[1]] = project_weight(w, b)
        annotate(node, w.shape, b)
    return graph


def lower_plan(graph: Graph, data, recipe=None) -> Graph:
    ctx = Context(data=data, recipe=recipe or {}, log=lambda *_: None, progress=False)
    return run_flow(graph, ["lower", "plan"], ctx)[0]


@pytest.fixture(scope="module")
def cnn_data():
    return load_data(EXAMPLES / "digits.npz", (1, 8, 8), 10)


@pytest.fixture(scope="module")
def lowered(cnn_data):
    return lower_plan(circulant_cnn(cnn_data=cnn_data), cnn_data)


def test_lower_keeps_an_exact_integer_conv_and_records_the_structure(lowered):
    convs = [n for n in lowered.nodes if n.op == "conv2d"]
    assert [n.name for n in convs] == list(BLOCKS)
    for node in convs:
        b = BLOCKS[node.name]
        w_q = lowered.params[node.inputs[1]]
        c_out, c_in = w_q.shape[:2]
        p, q = block_grid(c_out, c_in, b)
        assert node.attrs["circulant"] == {"block": b, "p": p, "q": q}
        v = conv_circulant_vectors(w_q.astype(np.int64), b)  # still exactly block-circulant
        assert v.shape == (p, q, b, 3, 3)
        assert np.array_equal(conv_circulant_expand(v, c_out, c_in), w_q)


def test_lower_refuses_weights_that_are_no_longer_block_circulant(cnn_data):
    graph = circulant_cnn(cnn_data=cnn_data)
    node = graph.node("/3/Conv")
    w = graph.params[node.inputs[1]].copy()
    w[0, 0, 0, 0] += 0.5 * float(np.abs(w).max())  # a pass after circulant changed one weight
    graph.params[node.inputs[1]] = w
    with pytest.raises(PassError, match=r"conv layer '/3/Conv' was made block-circulant \(block size 8\)"):
        lower_plan(graph, cnn_data)


def test_onnx_stores_only_the_vectors_and_is_bit_exact(lowered, cnn_data):
    model = to_onnx(lowered)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    vectors = {n: a for n, a in inits.items() if n.startswith("circulant_vectors")}
    sizes = sorted(a.size for a in vectors.values())
    # /0/Conv: p, q, b = 4, 1, 2; /3/Conv: 2, 1, 8; 3x3 kernels
    assert sizes == sorted([4 * 1 * 2 * 9, 2 * 1 * 8 * 9])
    assert not any(a.shape in ((8, 1, 3, 3), (16, 8, 3, 3)) for a in inits.values())  # no dense weight stored
    x = cnn_data.x_test[:200].reshape(-1, *lowered.inputs[0].shape).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(["logits_q"], {lowered.inputs[0].name: x})[0]
    want = golden.run(lowered, x).logits_q
    assert np.array_equal(got, want)


def test_onnx_wide_circulant_conv_is_bit_exact():
    """An accumulator past 32 bits: int32 ConvInteger over channel groups of the expanded,
    sliced weights, added in int64."""
    from compiler.backends import onnx as backend

    assert backend.ONNX_INT32_ACC_BITS == 32
    from benchmarks.cnn_graphs import build_cnn, conv, dense, flatten, random_inputs

    graph = build_cnn((8, 5, 5), [conv(8, k=3, pad=1), flatten(), dense(10)], seed=3)
    node = graph.node("L0_conv2d")
    rng = np.random.default_rng(0)
    v = rng.integers(-128, 128, size=(2, 2, 4, 3, 3))
    w = conv_circulant_expand(v, 8, 8).astype(np.int32)
    graph.params[node.inputs[1]] = w
    node.attrs["circulant"] = {"block": 4, "p": 2, "q": 2}
    graph.params[node.inputs[2]] = np.full(8, 1 << 34, dtype=np.int64)  # forces int64
    node.attrs["acc_bits"] = 40
    x_q = random_inputs(graph, 5)
    model = to_onnx(graph)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    scale = 2.0 ** -graph.meta["input_format"]["frac"]
    got = session.run(["logits_q"], {"x": (x_q * scale).astype(np.float32)})[0]
    assert np.array_equal(got, golden.run_integer(graph, x_q).logits_q)


def test_plan_gives_multiples_of_b_and_a_vector_rom(lowered):
    for node in (n for n in lowered.nodes if n.op == "conv2d"):
        a, b = node.annotations, BLOCKS[node.name]
        assert a["p_co"] % b == 0 and a["p_ci"] % b == 0
        cost = a["cost"]["conv"]
        assert cost["circ_block"] == b
        dense = hw_conv.conv_weight_rom_bits(
            node.attrs["in_shape"], node.attrs["out_shape"][0], node.attrs["kernel"], a["p_co"], a["p_ci"], 8, a["p_k"]
        )
        assert cost["weight_rom_bits"] * b == dense
        assert f"block-circulant (b = {b})" in a["engine_reason"]


def test_a_recipe_below_b_squared_multipliers_keeps_a_dense_rom(cnn_data):
    graph = circulant_cnn(cnn_data=cnn_data)
    planned = lower_plan(graph, cnn_data, {"plan": {"layers": {"/3/Conv": {"multipliers": 16}}}})
    a = planned.node("/3/Conv").annotations
    assert a["multipliers"] <= 16 and a["cost"]["conv"]["circ_block"] == 0
    assert "dense weight ROM" in a["engine_reason"]


def test_engine_stored_arrays_are_the_vectors(lowered, tmp_path):
    from compiler.backends.verilog import engine_specs

    specs = {s.name: s for s in engine_specs(lowered)}
    for name, b in BLOCKS.items():
        spec, node = specs[name], lowered.node(name)
        assert spec.parameters["CIRC_B"] == b
        assert f"block-circulant b = {b}" in hw.engine("conv").describe(spec)
        stored = hw.engine("conv").stored(lowered, spec)
        w = lowered.params[node.inputs[1]]
        v = stored.arrays["weights"]
        assert v.shape == (node.attrs["circulant"]["p"], node.attrs["circulant"]["q"], b, 3, 3)
        assert np.array_equal(stored.to_params(stored.arrays)[node.inputs[1]], w)
        g = np.random.default_rng(0).normal(size=w.shape)
        # pullback is the adjoint of the (linear) expansion
        assert np.isclose(
            (stored.pullback({node.inputs[1]: g, node.inputs[2]: np.zeros(len(w))})["weights"] * v).sum(),
            (g * w).sum(),
        )


def test_the_rom_layout_round_trips_through_the_wiring():
    """Every vector word, expanded as rtl/conv2d.v wires it, is the dense word of the padded
    expanded weights."""
    rng = np.random.default_rng(1)
    for c_out, c_in, kh, kw, b, p_co, p_ci, p_k in [(16, 6, 5, 5, 4, 8, 4, 1), (5, 6, 3, 3, 8, 8, 8, 2)]:
        p, q = block_grid(c_out, c_in, b)
        v = rng.integers(-128, 128, size=(p, q, b, kh, kw))
        words = circulant_conv_rom_words(v, p_co, p_ci, 8, p_k)
        dense = conv_weight_rom_words(conv_circulant_expand(v, p * b, q * b), p_co, p_ci, 8, p_k)
        assert [expand_circulant_word(w, p_co, p_ci, p_k, b, 8) for w in words] == dense
        assert max(words).bit_length() <= p_co * p_ci * p_k // b * 8
    g = rng.normal(size=(5, 6, 3, 3))
    v = rng.normal(size=(1, 1, 8, 3, 3))
    assert np.isclose((conv_circulant_pullback(g, 8) * v).sum(), (g * conv_circulant_expand(v, 5, 6)).sum())


def test_fft_alternative_costs_lenet_conv2():
    """LeNet-5's conv2 (6x14x14 -> 16x10x10, 5x5): direct vs FFT real multiplies per output
    pixel (the table of docs/fixed-point.md)."""
    b4 = fft_conv_multiplies((6, 14, 14), 16, (5, 5), 4, (10, 10))
    b8 = fft_conv_multiplies((6, 14, 14), 16, (5, 5), 8, (10, 10))
    assert (b4.direct, b4.spectral, b4.inverse, round(b4.forward, 2)) == (3200, 2400, 64, 62.72)
    assert (b8.direct, b8.spectral, b8.inverse, round(b8.forward, 2)) == (3200, 1000, 96, 94.08)
    assert (round(b4.fft), round(b8.fft), round(b8.ratio, 1)) == (2527, 1190, 2.7)


def test_lenet5_conv2_plan_figures():
    """benchmarks/circulant_conv.py: at the default 16 multipliers, conv2 dense and at b = 4, 8."""
    from benchmarks.circulant_conv import CONV2, lenet5_planned

    figures = {}
    for b in (1, 4, 8):
        a = lenet5_planned(b, 16).node(CONV2).annotations
        figures[b] = (
            a["p_co"],
            a["p_ci"],
            a["p_k"],
            a["cost"]["conv"]["compute_cycles"],
            a["cost"]["conv"]["weight_rom_bits"],
        )
    assert figures == {1: (8, 2, 1, 15000, 19200), 4: (4, 8, 1, 10000, 6400), 8: (8, 8, 1, 5000, 3200)}


@pytest.mark.slow
def test_compile_and_simulate_a_circulant_cnn(cnn_data, digits_npz, tmp_path):
    """The whole flow from a checkpoint of the circulant CNN: 0 mismatches in Icarus, ROM files
    that decode to the graph (the bit-flip audit's layouts)."""
    from compiler.audit.rom_bits import StoredDesign
    from compiler.build import open_build

    checkpoints = tmp_path / "ck"
    load_onnx(EXAMPLES / "digits_cnn.onnx").save(checkpoints / "00-import")
    circulant_cnn(cnn_data=cnn_data).save(checkpoints / "01-circulant")
    out = tmp_path / "out"
    api.compile(checkpoints / "01-circulant", digits_npz, out, synth_timeout=None, **QUIET)
    design = json.loads((out / "rtl" / "design.json").read_text())
    circ = [e["parameters"].get("CIRC_B", 0) for e in design["engines"] if e["engine"] == "conv"]
    assert circ == list(BLOCKS.values())
    result = api.simulate(out, samples=4, simulator="icarus", log=lambda *_: None)
    assert result["mismatches"] == 0 and result["error"] is None
    assert result["cycles_per_inference"] == design["estimated_latency"]
    stored = StoredDesign(open_build(out, rtl=True))  # raises unless every ROM file decodes
    assert {layer.engine for layer in stored.layers} >= {"conv"}
