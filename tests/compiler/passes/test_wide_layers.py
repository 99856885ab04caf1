"""Wide layers (issue 13, part 5): accumulators up to 48 bits (FPGA DSP slices accumulate 48).

A 6-layer MatMul+Add MLP (16-64-64-64-64-64-5) whose third layer has a dead unit with a large
negative bias needs an accumulator wider than int32: it compiles, model.int.onnx computes that
layer in int64 and equals the golden executor, and the Verilog simulates bit-exact. Beyond 48
bits, lower narrows the layer's weights by itself and says so (annotations, report)."""

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from compiler import api
from compiler.ir import Graph
from compiler.ops.formats import MAX_ACC_BITS

WIDTHS = [16, 64, 64, 64, 64, 64, 5]


def _mlp(seed: int = 0) -> nn.Sequential:
    """Briefly trained on random data labelled by a random linear map."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(WIDTHS, WIDTHS[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(WIDTHS) - 2 else [])
    model = nn.Sequential(*layers)
    x, y = _dataset(512)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    return model.eval()


def _dataset(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, WIDTHS[0])).astype(np.float32)
    y = np.argmax(x @ np.random.default_rng(99).normal(size=(WIDTHS[0], WIDTHS[-1])), axis=1)
    return x, y.astype(np.int64)


def _export_matmul_add(model: nn.Sequential, path, dead_bias: float, layer: int = 2) -> None:
    """MatMul + Add per layer (as exported from Keras / other tools); the third layer's unit 0 is
    dead: a bias of -dead_bias, so ReLU always gives 0 (the model's function is unchanged when
    that unit was already off) but its accumulator must hold the bias."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    nodes, inits, cur = [], [], "x"
    for i, lin in enumerate(linears):
        w = lin.weight.detach().numpy().T.copy()
        b = lin.bias.detach().numpy().copy()
        if i == layer:
            b[0] = -dead_bias
            if i + 1 < len(linears):
                linears[i + 1].weight.data[:, 0] = 0.0  # nothing downstream reads the dead unit
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"B{i}")]
        nodes += [
            helper.make_node("MatMul", [cur, f"W{i}"], [f"mm{i}"], name=f"fc{i}"),
            helper.make_node("Add", [f"mm{i}", f"B{i}"], [f"z{i}"], name=f"fc{i}_bias"),
        ]
        cur = f"z{i}"
        if i < len(linears) - 1:
            nodes.append(helper.make_node("Relu", [cur], [f"h{i}"], name=f"relu{i}"))
            cur = f"h{i}"
    nodes.append(helper.make_node("Identity", [cur], ["y"], name="out"))
    g = helper.make_graph(
        nodes,
        "wide_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTHS[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", WIDTHS[-1]])],
        inits,
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _build(tmp_path, dead_bias: float, layer: int = 2):
    model = _mlp()
    _export_matmul_add(model, tmp_path / "m.onnx", dead_bias, layer)
    x, y = _dataset(768, seed=2)
    np.savez(tmp_path / "d.npz", x_train=x[:512], y_train=y[:512], x_test=x[512:], y_test=y[512:])
    out = tmp_path / "out"
    report = api.compile(
        tmp_path / "m.onnx", tmp_path / "d.npz", out, log=lambda *_: None, progress=False, synth_timeout=None
    )
    return out, report


def _acc_bits(out) -> dict[str, int]:
    return {n.name: n.attrs["acc_bits"] for n in Graph.load(out).nodes if "acc_bits" in n.attrs}


@pytest.fixture(scope="module")
def wide_build(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("wide"), dead_bias=2e6)


def test_wide_mlp_compiles_with_an_int64_layer_identical_to_golden(wide_build):
    out, report = wide_build
    acc = _acc_bits(out)
    assert len(acc) == 6
    wide = {name: bits for name, bits in acc.items() if bits > 32}
    assert list(wide) == ["fc2"] and wide["fc2"] <= MAX_ACC_BITS
    assert all(bits <= 32 for name, bits in acc.items() if name != "fc2")
    check = report["compiled"]["onnx_matches_golden"]
    assert check["identical"] is True and check["checked_samples"] == 256
    model = onnx.load(str(out / "model.int.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMul") == 1 and ops.count("MatMulInteger") == 5  # fc2 in int64, the rest in int32
    (logits_q,) = [o for o in model.graph.output if o.name == "logits_q"]
    assert logits_q.type.tensor_type.elem_type == TensorProto.INT32  # the last layer is narrow
    assert "narrowed" not in report["model"]
    assert report["compiled"]["test_accuracy"] >= report["float"]["test_accuracy"] - 0.05
    assert "narrowed" not in (out / "report.md").read_text()


@pytest.mark.slow
def test_wide_mlp_simulates_bit_exact(wide_build):
    out, _ = wide_build
    result = api.simulate(out, samples=8, log=lambda *_: None)
    assert result["mismatches"] == 0 and result["error"] is None
    design = json.loads((out / "rtl" / "design.json").read_text())
    assert result["cycles_per_inference"] == design["estimated_latency"]


def test_a_layer_beyond_48_bits_gets_narrower_weights_and_a_report_line(tmp_path):
    out, report = _build(tmp_path, dead_bias=1e11)
    acc = _acc_bits(out)
    assert max(acc.values()) <= MAX_ACC_BITS and acc["fc2"] > 32
    node = next(n for n in Graph.load(out).nodes if n.name == "fc2")
    narrowed = node.annotations["narrowed"]
    assert narrowed["needed_acc_bits"] > MAX_ACC_BITS and narrowed["max_acc_bits"] == MAX_ACC_BITS
    before, after = narrowed["weight_format_from"], narrowed["weight_format_to"]
    assert after["bits"] < before["bits"] and after["frac"] < before["frac"]
    assert node.attrs["weight_format"] == after
    assert 0.0 <= narrowed["float_test_accuracy_narrowed"] <= 1.0
    assert report["compiled"]["onnx_matches_golden"]["identical"] is True
    md = (out / "report.md").read_text()
    line = next(x for x in md.splitlines() if "narrowed" in x)
    assert "`fc2`" in line and f"Q({after['bits']}, {after['frac']})" in line and "accuracy" in line


def test_a_wide_last_layer_outputs_int64_logits_identical_to_golden(tmp_path):
    """Class 0 gets a huge negative bias: the output layer's accumulator is wider than int32, so
    model.int.onnx's logits_q are int64."""
    out, report = _build(tmp_path, dead_bias=2e6, layer=5)
    assert _acc_bits(out)["fc5"] > 32
    assert report["compiled"]["onnx_matches_golden"]["identical"] is True
    (logits_q,) = [o for o in onnx.load(str(out / "model.int.onnx")).graph.output if o.name == "logits_q"]
    assert logits_q.type.tensor_type.elem_type == TensorProto.INT64


def test_wide_conv_sums_split_into_int32_channel_groups():
    from compiler.ops.conv2d import int32_channel_groups as _int32_channel_groups

    w = np.full((2, 300_000, 1, 1), 127, np.int64)
    w[1, 5] = -128
    groups = _int32_channel_groups(w, 8)
    assert len(groups) == 3 and groups[0][0] == 0 and groups[-1][1] == 300_000
    assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))
    for c0, c1 in groups:
        assert np.abs(w[:, c0:c1]).sum(axis=(1, 2, 3)).max() * 128 < 2**31
