"""The Verilog backend on convolutional graphs: conv/pool engines, ROM images, the permuted dense
ROM after a flatten, parameters, design.json and the errors that name a node. Fast (no simulator)."""

import json
import re

import numpy as np
import pytest

import kernels
import rtl
from benchmarks.cnn_graphs import avgpool, build_cnn, conv, dense, flatten, global_avgpool, maxpool, random_inputs
from compiler.backends.verilog import VerilogBackendError, engine_specs, write_verilog
from compiler.exec import golden
from compiler.simulate import stream_order
from kernels.sparse_mac import encode_sparse, sparse_mac
from kernels.stream_order import stream_weight_matrix
from tests.conftest import EXAMPLES, lower_model


def _words(path):
    return [int(line, 16) for line in path.read_text().split()]


def _fields(word, bits, count):
    values = [(word >> (i * bits)) & ((1 << bits) - 1) for i in range(count)]
    return [v - (1 << bits) if v >> (bits - 1) else v for v in values]


def _cnn(p_k: int):
    """3 input channels in words of 2, 5 output channels in groups of 3, 9 kernel positions in
    steps of p_k: all padded (but the steps when p_k divides 9)."""
    return build_cnn(
        (3, 6, 6),
        [conv(5, p_co=3, p_ci=2, p_k=p_k), maxpool(2), avgpool(3, 1, 1), flatten(), dense(4, multipliers=3)],
        seed=7,
    )


@pytest.fixture(scope="module")
def cnn():
    return _cnn(p_k=4)


@pytest.fixture(scope="module")
def digits_cnn():
    from compiler.data import load_data

    return lower_model(EXAMPLES / "digits_cnn.onnx", load_data(EXAMPLES / "digits.npz", (1, 8, 8), 10))[1]


@pytest.mark.parametrize("p_k", [1, 3, 4, 9])
def test_conv_roms_hold_the_weights_in_group_order(tmp_path, p_k):
    """Word (g*NKS + ks)*NCW + cw holds W[g*3 + p, cw*2 + l, position ks*P_K + j] at field
    (p*P_K + j)*P_CI + l (rtl/conv2d.v, kernels/conv_rom.py); missing positions are zero."""
    graph = _cnn(p_k)
    design = write_verilog(graph, tmp_path)
    eng = design["engines"][0]
    node = graph.node(eng["name"])
    w, b = graph.params[node.inputs[1]], graph.params[node.inputs[2]]
    p_co, p_ci, bits, nks = 3, 2, eng["w_bits"], -(-9 // p_k)
    raw = _words(tmp_path / eng["w_file"])
    assert len(raw) == 2 * nks * 2  # NCG * NKS * NCW
    padded = np.zeros((6, 4, nks * p_k), np.int64)  # [C_out, C_in, position] to whole groups
    padded[:5, :3, :9] = w.reshape(5, 3, 9)
    for g in range(2):
        for ks in range(nks):
            for cw in range(2):
                word = raw[(g * nks + ks) * 2 + cw]
                fields = np.array(_fields(word, bits, p_co * p_k * p_ci)).reshape(p_co, p_k, p_ci)
                want = padded[g * 3 : (g + 1) * 3, cw * 2 : (cw + 1) * 2, ks * p_k : (ks + 1) * p_k]
                assert np.array_equal(fields, want.transpose(0, 2, 1))
    biases = [_fields(word, eng["b_bits"], p_co) for word in _words(tmp_path / eng["b_file"])]
    assert np.array_equal(np.ravel(biases), np.append(b, 0))
    assert eng["weight_rom_bits"] == len(raw) * p_co * p_k * p_ci * bits == eng["cost"]["weight_rom_bits"]
    assert eng["rom_bits"] == eng["weight_rom_bits"] + 2 * p_co * eng["b_bits"] and eng["b_bits"] < eng["acc_bits"]
    assert eng["multipliers"] == p_co * p_ci * p_k and eng["parameters"]["P_K"] == p_k


def test_dense_after_flatten_stores_its_columns_channel_last(tmp_path, digits_cnn):
    design = write_verilog(digits_cnn, tmp_path)
    eng = design["engines"][-1]
    node = digits_cnn.node(eng["name"])
    assert eng["input_chw"] == node.attrs["input_chw"] == [16, 2, 2]
    w = digits_cnn.params[node.inputs[1]]
    rom = np.array([_fields(word, eng["w_bits"], eng["multipliers"]) for word in _words(tmp_path / eng["w_file"])])
    w_hw = rom.reshape(eng["n_out"], -1)[:, : eng["n_in"]]
    assert np.array_equal(w_hw, stream_weight_matrix(w, [16, 2, 2])) and not np.array_equal(w_hw, w)
    # the engine sees the pooled image channel-last: same accumulators as the graph's flatten
    x = np.random.default_rng(0).integers(-128, 128, size=(5, 16, 2, 2))
    assert np.array_equal(
        kernels.dense_mac(x.transpose(0, 2, 3, 1).reshape(5, -1), w_hw, None),
        kernels.dense_mac(x.reshape(5, -1), w, None),
    )


def test_sparse_dense_after_flatten_encodes_the_permuted_matrix(tmp_path):
    graph = build_cnn(
        (4, 4, 4),
        [conv(8, p_co=8, p_ci=4), maxpool(2), flatten(), dense(10, multipliers=2, engine="sparse", sparsity=0.8)],
        seed=3,
    )
    design = write_verilog(graph, tmp_path)
    eng = design["engines"][-1]
    assert eng["engine"] == "sparse" and "sparse_mac.v" in design["sources"]
    w = graph.params[graph.node(eng["name"]).inputs[1]]
    w_hw = stream_weight_matrix(w, [8, 2, 2])
    enc = encode_sparse(w_hw, 2, eng["delta_bits"])
    assert _words(tmp_path / eng["c_file"]) == list(enc.row_words) and eng["n_words"] == int(enc.row_words.sum())
    x = np.random.default_rng(1).integers(-128, 128, size=(3, 8, 2, 2))
    assert np.array_equal(
        sparse_mac(x.transpose(0, 2, 3, 1).reshape(3, -1), enc, None), kernels.dense_mac(x.reshape(3, -1), w, None)
    )


def test_engines_parameters_and_design_json(tmp_path, cnn):
    design = write_verilog(cnn, tmp_path)
    assert json.loads((tmp_path / "design.json").read_text()) == design
    assert [e["engine"] for e in design["engines"]] == ["conv", "pool", "pool", "dense"]
    assert [e["kind"] for e in design["engines"]] == ["conv2d", "maxpool2d", "avgpool2d", "dense"]
    assert design["input_shape"] == [3, 6, 6] and design["input_order"] == "hwc" and design["n_in"] == 108
    # each engine's module with the library modules it instantiates (rtl.DEPENDENCIES), dependencies first
    assert design["sources"] == rtl.sources("conv2d.v", "dense_mac.v", "pool2d.v", "argmax.v") + ["mpc_top.v"]
    assert design["sources"][-5:] == ["conv2d.v", "dense_mac.v", "pool2d.v", "argmax.v", "mpc_top.v"]
    conv_e, max_e, avg_e, dense_e = design["engines"]
    assert conv_e["parameters"] | {"W_FILE": "", "B_FILE": ""} == {
        "C_IN": 3,
        "H": 6,
        "W": 6,
        "KH": 3,
        "KW": 3,
        "STRIDE": 1,
        "PAD_T": 1,
        "PAD_L": 1,
        "PAD_B": 1,
        "PAD_R": 1,
        "C_OUT": 5,
        "P_CO": 3,
        "P_CI": 2,
        "P_K": 4,
        "IN_BITS": 8,
        "W_BITS": 8,
        "B_BITS": conv_e["b_bits"],
        "ACC_BITS": conv_e["acc_bits"],
        "OUT_BITS": 8,
        "SHIFT": conv_e["shift"],
        "RELU": 1,
        "REQUANT": 1,
        "W_FILE": "",
        "B_FILE": "",
    }
    assert conv_e["multipliers"] == 24 and conv_e["out_shape"] == [5, 6, 6] and conv_e["n_out"] == 180
    assert max_e["parameters"]["MODE"] == 0 and avg_e["parameters"]["MODE"] == 1
    assert (max_e["out_shape"], avg_e["out_shape"]) == ([5, 3, 3], [5, 3, 3])
    assert max_e["multipliers"] == max_e["rom_bits"] == 0 and max_e["cost"]["compute_cycles"] == 9 * 5 * 4
    assert dense_e["n_in"] == 45 and dense_e["input_chw"] == [5, 3, 3]
    for e in design["engines"]:
        assert e["cost"]["latency"] == e["latency"] and e["cost"]["interval"] == e["interval"]
    top = (tmp_path / "mpc_top.v").read_text()
    conv_instance = re.search(r"conv2d #\((.*?)\) layer0 \(", top, re.S).group(1)
    for item in (".C_IN(3)", ".C_OUT(5)", ".P_CO(3)", ".P_CI(2)", ".P_K(4)", ".RELU(1)", '.W_FILE("layer0_w.mem")'):
        assert item in conv_instance
    assert top.count("pool2d #(") == 2 and ".MODE(1)" in top
    assert design["estimated_latency"] > design["estimated_interval"] > 0 and "timing.py" in design["timing_model"]


def test_mlp_designs_keep_their_sources_and_closed_form(tmp_path, digits_lowered):
    design = write_verilog(digits_lowered[1], tmp_path)
    assert "conv2d.v" not in design["sources"] and "pool2d.v" not in design["sources"]
    assert design["input_order"] == "row-major" and design["input_shape"] == [8, 8]
    assert "closed form" in design["timing_model"]


def test_stream_order_is_channel_last_for_images():
    x = np.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)
    hwc = stream_order(x, {"input_order": "hwc", "input_shape": [3, 2, 2]})
    assert hwc.shape == (2, 12) and list(hwc[0, :4]) == [x[0, 0, 0, 0], x[0, 1, 0, 0], x[0, 2, 0, 0], x[0, 0, 0, 1]]
    assert np.array_equal(stream_order(x, {"input_order": "row-major"}), x.reshape(2, -1))


def test_golden_runs_the_hand_built_graphs(cnn):
    """The graphs of benchmarks/cnn_graphs.py are valid integer graphs for the golden executor."""
    out = golden.run_integer(cnn, random_inputs(cnn, 3))
    assert out.logits_q.shape == (3, 4) and out.classes.shape == (3,)


# ------------------------------------------------------------------------ errors name the node
def test_average_pool_without_padding_counted_is_refused_only_with_padding():
    padded = build_cnn((2, 6, 6), [conv(4), avgpool(3, 1, 1, count_include_pad=False), flatten(), dense(3)])
    with pytest.raises(VerilogBackendError, match=r"'L1_avgpool2d'.*count_include_pad = 0"):
        engine_specs(padded)
    unpadded = build_cnn((2, 6, 6), [conv(4), avgpool(2, count_include_pad=False), flatten(), dense(3)])
    assert engine_specs(unpadded)[1].parameters["MODE"] == 1


def test_padding_as_large_as_the_kernel_is_refused():
    graph = build_cnn((2, 6, 6), [conv(4), maxpool(2), flatten(), dense(3)])
    graph.node("L1_maxpool2d").attrs["pads"] = [2, 0, 0, 0]
    with pytest.raises(VerilogBackendError, match=r"'L1_maxpool2d'.*smaller than the 2x2 kernel"):
        engine_specs(graph)


def test_an_image_output_is_refused():
    graph = build_cnn((2, 6, 6), [conv(4), conv(3, pad=0)])
    with pytest.raises(VerilogBackendError, match=r"'L1_conv2d'.*must be a vector"):
        engine_specs(graph)
    one_pixel = build_cnn((2, 6, 6), [conv(4), global_avgpool(), flatten()])  # a pool may end the design
    assert engine_specs(one_pixel)[-1].out_width == 8


def test_a_dense_after_an_image_needs_input_chw():
    graph = build_cnn((2, 6, 6), [conv(4), maxpool(2), flatten(), dense(3)])
    del graph.node("L3_dense").attrs["input_chw"]
    with pytest.raises(VerilogBackendError, match=r"'L3_dense'.*no input_chw"):
        engine_specs(graph)
    graph.node("L3_dense").attrs["input_chw"] = [4, 9, 1]
    with pytest.raises(VerilogBackendError, match=r"'L3_dense'.*input_chw \[4, 9, 1\]"):
        engine_specs(graph)


def test_a_circulant_layer_after_an_image_is_refused():
    graph = build_cnn((2, 6, 6), [conv(4), maxpool(2), flatten(), dense(3)])
    graph.node("L3_dense").op = "circulant"
    graph.node("L3_dense").attrs["circulant"] = {"block": 2}
    # a consistent plan: one complex multiplier (3 real), BF = SM = 1
    graph.node("L3_dense").annotations.update(engine="circulant", multipliers=3, butterfly_units=1, spectral_lanes=1)
    with pytest.raises(VerilogBackendError, match=r"'L3_dense'.*circulant layer cannot take"):
        engine_specs(graph)


def test_a_conv_on_the_wrong_image_or_width_is_refused():
    graph = build_cnn((2, 6, 6), [conv(4), conv(3), flatten(), dense(3)])
    graph.node("L1_conv2d").attrs["in_shape"] = [4, 5, 5]
    with pytest.raises(VerilogBackendError, match=r"'L1_conv2d'.*expects a \[4, 5, 5\] image"):
        engine_specs(graph)
    graph = build_cnn((2, 6, 6), [conv(4), conv(3), flatten(), dense(3)])
    graph.node("L1_conv2d").attrs["input_format"] = {"bits": 6, "frac": 4}
    with pytest.raises(VerilogBackendError, match=r"'L1_conv2d'.*6-bit inputs.*8-bit values"):
        engine_specs(graph)
