"""The conv engine's depthwise mode (compiler/hw/conv_modes.py, compiler/hw/conv.py): its splits,
cost, plan checks, parameters, ROM files and bit-flip layout on a hand-built depthwise node, the
edge-by-edge timing model against rtl/conv2d.v's documented timing with G = NKS, and the engine's
own parameters and ROM files simulated against the kernel (Icarus)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import kernels
from benchmarks.cnn_graphs import build_cnn, conv, dense, flatten
from compiler.hw import conv as hw_conv
from compiler.hw import timing as hw_timing
from compiler.hw.base import VerilogBackendError
from compiler.hw.conv_modes import is_depthwise
from kernels.conv2d import conv_geometry
from kernels.rom import twos_complement
from sim.runner import SIM_DIR
from tests.sim.test_conv_rtl import run_conv
from tests.sim.test_depthwise_rtl import DEPTHWISE_CASES
from tests.sim.test_rtl_modules import _assert_passed

sys.path.insert(0, str(SIM_DIR))  # sim/test_conv2d.py imports its neighbours by bare name
from test_conv2d import check_timing


def _stage(case: dict):
    pads = (case["PAD_T"], case["PAD_L"], case["PAD_B"], case["PAD_R"])
    c = case["C"]
    shape, kernel = (c, case["H"], case["W"]), (case["KH"], case["KW"])
    return conv_geometry(shape, c, kernel, case["STRIDE"], pads, case["P_CO"], case["P_CO"], case["P_K"], True)


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=list(DEPTHWISE_CASES))
def test_depthwise_model_replays_the_rtl_header_timing(case):
    """The model's handshakes satisfy rtl/conv2d.v's documented timing (G = NKS) edge by edge, by
    the checker the cocotb bench applies to the RTL."""
    spec = DEPTHWISE_CASES[case]
    accepted, outputs = hw_timing.stream_edges((_stage(spec),), None, spec["frames"])
    check_timing(_stage(spec), accepted, outputs, spec["frames"])


def depthwise_graph(c=4, p_co=2, p_k=1, pads=(1, 1, 1, 1), stride=1, seed=0):
    """A planned integer graph quantize -> depthwise 3x3 conv -> requantize -> flatten -> dense: a
    groups = 1 conv from benchmarks/cnn_graphs.py turned depthwise (group = C, weights
    [C, 1, 3, 3], its accumulator width recomputed)."""
    layers = [conv(c, stride=stride, pad=list(pads), p_co=p_co, p_k=p_k), flatten(), dense(3)]
    graph = build_cnn((c, 6, 6), layers, seed)
    node = next(n for n in graph.nodes if n.op == "conv2d")
    rng = np.random.default_rng(seed)
    w_q = rng.integers(-128, 128, size=(c, 1, 3, 3)).astype(np.int32)
    graph.params[node.inputs[1]] = w_q
    node.attrs["group"] = c
    node.attrs["acc_bits"] = kernels.conv_accumulator_bits(w_q, graph.params[node.inputs[2]], 8)
    node.annotations.update(p_ci=p_co, multipliers=p_co * p_k)
    return graph, node


def test_depthwise_splits_tie_p_ci_to_p_co_and_count_p_co_times_p_k():
    graph, node = depthwise_graph(c=8)
    splits = hw_conv.conv_splits(node)
    assert splits and all(s.depthwise and s.p_ci == s.p_co and s.p_co <= -(-9 // s.p_k) for s in splits)
    for s in splits:
        stage = hw_conv.node_geometry(node, s.p_co, s.p_ci, s.p_k)
        assert s.multipliers == s.p_co * s.p_k == stage.multipliers
        assert s.cycles == 6 * 6 * -(-8 // s.p_co) * -(-9 // s.p_k) == stage.compute_cycles
        assert s.rom_bits == -(-8 // s.p_co) * -(-9 // s.p_k) * s.p_co * s.p_k * 8
    fastest = hw_conv.fastest_conv_split(node, 1000)  # one output an edge: all 9 positions a read
    assert (fastest.p_co, fastest.p_k, fastest.multipliers, fastest.cycles) == (1, 9, 9, 6 * 6 * 8)
    assert hw_conv.fastest_conv_split(node, 1) == (1, 1, 1, 6 * 6 * 8 * 9, 8 * 9 * 8, 0, True)


def test_depthwise_plan_reason_and_checks():
    graph, node = depthwise_graph(c=8, p_co=4)
    planned = hw_conv.Conv().plan(graph, node, 6 * 6 * 2 * 9, None, None)
    assert planned.annotations["p_co"] == planned.annotations["p_ci"] == 4
    assert planned.annotations["multipliers"] == 4 and "depthwise (group = C)" in planned.annotations["engine_reason"]
    engine = hw_conv.Conv()
    assert engine.check_plan(graph, node) is None
    node.annotations.update(p_ci=2, multipliers=8)
    assert "p_ci = p_co" in engine.check_plan(graph, node)
    node.annotations.update(p_ci=4, multipliers=16)
    assert "is not p_co x p_k" in engine.check_plan(graph, node)
    node.annotations.update(multipliers=4)
    node.attrs["group"] = 2
    assert "neither 1 nor depthwise" in engine.check_plan(graph, node)


def _decode(mem_text: str, bits: int, lanes: int) -> list[list[int]]:
    mask = (1 << bits) - 1
    return [[(int(word, 16) >> (s * bits)) & mask for s in range(lanes)] for word in mem_text.split()]


@pytest.mark.parametrize("p_co, p_k", [(1, 1), (2, 3), (3, 2)])
def test_depthwise_spec_roms_and_stored_layout(p_co, p_k, tmp_path):
    """DEPTHWISE = 1 and G = NKS in the spec and cost; the weight file's every lane is the weight
    `stored`'s layout names (zero where it names none) and the ROM holds C*kH*kW weights when
    P_CO divides C and P_K divides kH*kW."""
    c = 6
    graph, node = depthwise_graph(c=c, p_co=p_co, p_k=p_k)
    assert is_depthwise(node)
    follow = graph.nodes[graph.nodes.index(node) + 1]
    engine = hw_conv.Conv()
    spec = engine.spec(graph, node, follow, 0, [c, 6, 6])
    assert spec.parameters["DEPTHWISE"] == 1 and spec.parameters["P_CI"] == p_co
    assert spec.multipliers == p_co * p_k and spec.stage.group == -(-9 // p_k)
    words = -(-c // p_co) * -(-9 // p_k)
    assert spec.cost.weight_rom_bits == words * p_co * p_k * 8
    assert spec.cost.rom_bits == spec.cost.weight_rom_bits + -(-c // p_co) * p_co * spec.b_bits
    if p_k in (1, 3):
        assert spec.cost.weight_rom_bits == c * 9 * 8
    assert spec.cost.compute_cycles == 6 * 6 * -(-c // p_co) * -(-9 // p_k)
    assert "depthwise" in engine.describe(spec)
    engine.write_roms(graph, spec, tmp_path)
    stored = engine.stored(graph, spec)
    weights = stored.images[0]
    assert weights.lanes == p_co * p_k and weights.words == words
    index = weights.fields[0].index
    w = graph.params[node.inputs[1]].ravel()
    lanes = _decode((tmp_path / spec.w_file).read_text(), 8, p_co * p_k)
    assert len(lanes) == words
    for word, row in enumerate(lanes):
        for slot, value in enumerate(row):
            i = index[word, slot]
            assert value == (twos_complement(int(w[i]), 8) if i >= 0 else 0), (word, slot)
    assert sorted(i for i in index.ravel() if i >= 0) == list(range(w.size))


def test_a_grouped_conv_that_is_not_depthwise_is_refused():
    graph, node = depthwise_graph(c=4)
    node.attrs["group"] = 2
    with pytest.raises(VerilogBackendError, match="neither 1 nor depthwise"):
        hw_conv.Conv().spec(graph, node, None, 0, [4, 6, 6])


def test_the_engine_parameters_and_roms_run_on_the_rtl(tmp_path):
    """The spec's parameters and the ROM files write_roms wrote, simulated (Icarus): outputs and
    every handshake edge as the kernel and LineGeometry say (stride 2, pads [0, 0, 1, 1])."""
    graph, node = depthwise_graph(c=4, p_co=2, p_k=3, pads=(0, 0, 1, 1), stride=2)
    follow = graph.nodes[graph.nodes.index(node) + 1]
    engine = hw_conv.Conv()
    spec = engine.spec(graph, node, follow, 0, [4, 6, 6])
    engine.write_roms(graph, spec, tmp_path)
    params = dict(spec.parameters, W_FILE=str(tmp_path / spec.w_file), B_FILE=str(tmp_path / spec.b_file))
    x_q = np.random.default_rng(5).integers(-128, 128, size=(2, 4, 6, 6))
    w_q, b_q = graph.params[node.inputs[1]], graph.params[node.inputs[2]]
    np.savez(tmp_path / "stimulus.npz", w_q=w_q, b_q=b_q, x_q=x_q)
    (tmp_path / "params.json").write_text(json.dumps(params))
    _assert_passed(run_conv(params, tmp_path / "stimulus.npz", tmp_path / "build"))
