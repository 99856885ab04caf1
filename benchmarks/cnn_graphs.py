"""Small integer CNN graphs built by hand, as `lower` emits them (docs/fixed-point.md), with
random weights: for the Verilog backend's tests, independent of training and calibration.

    build_cnn((2, 6, 6), [conv(4, p_co=2, p_k=3), maxpool(2), flatten(), dense(10)])

Every conv/dense but the last is followed by a requantize (+ReLU) to 8 bits whose shift is
chosen from random inputs so that the activations spread over the 8-bit range.
"""

from __future__ import annotations

import numpy as np

import kernels
from compiler.hw import sparse as hw_sparse
from compiler.ir import FixedPoint, Graph, Node, TensorSpec
from kernels.conv2d import conv_output_size
from kernels.stream_order import stream_weight_matrix

ACT = FixedPoint(8, 5)  # every activation (and the input)
WEIGHT = FixedPoint(8, 6)


def conv(c_out, k=3, stride=1, pad=1, p_co=1, p_ci=1, p_k=1, relu=True):
    return {
        "op": "conv2d",
        "c_out": c_out,
        "kernel": [k, k] if isinstance(k, int) else list(k),
        "stride": stride,
        "pads": [pad] * 4 if isinstance(pad, int) else list(pad),
        "p_co": p_co,
        "p_ci": p_ci,
        "p_k": p_k,
        "relu": relu,
    }


def maxpool(k=2, stride=None, pad=0):
    return {
        "op": "maxpool2d",
        "kernel": [k, k],
        "stride": stride or k,
        "pads": [pad] * 4 if isinstance(pad, int) else list(pad),
    }


def avgpool(k=2, stride=None, pad=0, count_include_pad=True):
    return maxpool(k, stride, pad) | {"op": "avgpool2d", "count_include_pad": count_include_pad}


def global_avgpool():
    return {"op": "global_avgpool"}


def flatten():
    return {"op": "flatten"}


def dense(n_out, multipliers=1, engine="dense", relu=True, sparsity=0.0):
    return {
        "op": "dense",
        "n_out": n_out,
        "multipliers": multipliers,
        "engine": engine,
        "relu": relu,
        "sparsity": sparsity,
    }


class _Builder:
    def __init__(self, in_shape, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes = [Node("quantize", "quantize_input", ["x"], ["x_q"], attrs={"format": ACT.to_dict()})]
        self.params = {}
        self.cur, self.shape = "x_q", tuple(in_shape)
        # calibration samples, carried through the layers to choose requantize shifts
        self.sample = self.rng.integers(ACT.min_int, ACT.max_int + 1, size=(16, *in_shape))
        self.flat_chw = None

    def weights(self, shape, sparsity=0.0):
        w = self.rng.integers(-40, 41, size=shape)
        w[self.rng.random(shape) < sparsity] = 0
        return w.astype(np.int32)

    def emit(self, node, value, shape):
        self.nodes.append(node)
        self.cur, self.sample, self.shape = node.outputs[0], value, tuple(shape)

    def requantize(self, name, relu):
        acc = self.sample
        top = int(np.percentile(np.abs(acc), 99)) or 1
        shift = max(0, top.bit_length() - 7)
        out = kernels.requantize(acc, shift, ACT.bits, relu)
        node = Node(
            "requantize",
            f"{name}.requantize",
            [self.cur],
            [f"{name}_act"],
            attrs={"shift": shift, "bits": ACT.bits, "relu": relu, "out_frac": ACT.frac},
        )
        self.emit(node, out, self.shape)

    def layer_attrs(self, acc_bits):
        return {
            "input_format": ACT.to_dict(),
            "weight_format": WEIGHT.to_dict(),
            "acc_frac": ACT.frac + WEIGHT.frac,
            "acc_bits": acc_bits,
        }

    def conv(self, name, spec, last):
        c_in, h, w = self.shape
        kh, kw = spec["kernel"]
        w_q = self.weights((spec["c_out"], c_in, kh, kw))
        b_q = self.rng.integers(-300, 301, size=spec["c_out"]).astype(np.int64)
        self.params[f"{name}.weight_q"], self.params[f"{name}.bias_q"] = w_q, b_q
        acc_bits = kernels.conv_accumulator_bits(w_q, b_q, ACT.bits)
        t, l, b, r = spec["pads"]
        h_out = conv_output_size(h, spec["kernel"][0], spec["stride"], t, b)
        w_out = conv_output_size(w, spec["kernel"][1], spec["stride"], l, r)
        out_shape = (spec["c_out"], h_out, w_out)
        attrs = self.layer_attrs(acc_bits) | {
            "kernel": spec["kernel"],
            "stride": spec["stride"],
            "pads": spec["pads"],
            "in_shape": list(self.shape),
            "out_shape": list(out_shape),
        }
        p_co, p_ci, p_k = spec["p_co"], spec["p_ci"], spec["p_k"]
        node = Node(
            "conv2d",
            name,
            [self.cur, f"{name}.weight_q", f"{name}.bias_q"],
            [f"{name}_acc"],
            attrs=attrs,
            annotations={"engine": "conv", "p_co": p_co, "p_ci": p_ci, "p_k": p_k, "multipliers": p_co * p_ci * p_k},
        )
        self.emit(node, kernels.conv2d(self.sample, w_q, b_q, spec["stride"], spec["pads"]), out_shape)
        if not last:
            self.requantize(name, spec["relu"])

    def pool(self, name, spec):
        c, h, w = self.shape
        if spec["op"] == "global_avgpool":
            window = {"kernel": [h, w], "stride": 1, "pads": [0, 0, 0, 0]}
            value = kernels.global_avg_pool(self.sample)
        else:
            window = {k: spec[k] for k in ("kernel", "stride", "pads")}
            if spec["op"] == "maxpool2d":
                value = kernels.max_pool2d(self.sample, spec["kernel"], spec["stride"], spec["pads"])
            else:
                window["count_include_pad"] = spec["count_include_pad"]
                value = kernels.avg_pool2d(
                    self.sample, spec["kernel"], spec["stride"], spec["pads"], spec["count_include_pad"]
                )
        attrs = window | {"format": ACT.to_dict(), "in_shape": list(self.shape), "out_shape": list(value.shape[1:])}
        self.emit(
            Node(spec["op"], name, [self.cur], [f"{name}_out"], attrs=attrs, annotations={"engine": "pool"}),
            value,
            value.shape[1:],
        )

    def flatten(self, name):
        self.flat_chw = list(self.shape) if len(self.shape) == 3 else None
        value = self.sample.reshape(len(self.sample), -1)
        self.emit(Node("flatten", name, [self.cur], [f"{name}_out"]), value, value.shape[1:])

    def dense(self, name, spec, last):
        n_in = self.shape[0]
        w_q = self.weights((spec["n_out"], n_in), spec["sparsity"])
        b_q = self.rng.integers(-300, 301, size=spec["n_out"]).astype(np.int64)
        self.params[f"{name}.weight_q"], self.params[f"{name}.bias_q"] = w_q, b_q
        attrs = self.layer_attrs(kernels.dense_accumulator_bits(w_q, b_q, ACT.bits))
        annotations = {"engine": spec["engine"], "multipliers": spec["multipliers"]}
        if self.flat_chw:
            attrs["input_chw"], self.flat_chw = self.flat_chw, None
        if spec["engine"] == "sparse":
            w_hw = stream_weight_matrix(w_q, attrs.get("input_chw"))
            annotations["delta_bits"] = int(
                hw_sparse.sparse_encoding(w_hw, spec["multipliers"], WEIGHT.bits).delta_bits
            )
        node = Node(
            "dense",
            name,
            [self.cur, f"{name}.weight_q", f"{name}.bias_q"],
            [f"{name}_acc"],
            attrs=attrs,
            annotations=annotations,
        )
        self.emit(node, kernels.dense_mac(self.sample, w_q, b_q), (spec["n_out"],))
        if not last:
            self.requantize(name, spec["relu"])


def build_cnn(in_shape, layers, seed: int = 0) -> Graph:
    """An integer graph: quantize -> the layers -> dequantize; the last layer outputs raw accumulators."""
    b = _Builder(in_shape, seed)
    # the last conv/dense outputs raw accumulators, unless a pool follows (pools take activations)
    last_weighted = max(k for k, spec in enumerate(layers) if spec["op"] in ("conv2d", "dense"))
    if any(spec["op"] not in ("conv2d", "dense", "flatten") for spec in layers[last_weighted:]):
        last_weighted = None
    for k, spec in enumerate(layers):
        name, last = f"L{k}_{spec['op']}", k == last_weighted
        if spec["op"] == "conv2d":
            b.conv(name, spec, last)
        elif spec["op"] == "dense":
            b.dense(name, spec, last)
        elif spec["op"] == "flatten":
            b.flatten(name)
        else:
            b.pool(name, spec)
    out_frac = ACT.frac + WEIGHT.frac if last_weighted is not None else ACT.frac
    b.nodes.append(Node("dequantize", "dequantize_output", [b.cur], ["logits"], attrs={"frac": out_frac}))
    n_classes = int(np.prod(b.shape))
    acc_bits = b.nodes[-2 if b.nodes[-2].op != "flatten" else -3].attrs.get("acc_bits", ACT.bits)
    graph = Graph(
        inputs=[TensorSpec("x", tuple(in_shape))],
        outputs=[TensorSpec("logits", (n_classes,))],
        nodes=b.nodes,
        params=b.params,
        meta={
            "integer": True,
            "planned": True,
            "input_format": ACT.to_dict(),
            "output_format": {"bits": acc_bits, "frac": out_frac},
        },
    )
    graph.validate()
    return graph


def random_inputs(graph: Graph, n: int, seed: int = 1) -> np.ndarray:
    """Integer input samples [n, *input shape] over the whole input range."""
    rng = np.random.default_rng(seed)
    return rng.integers(ACT.min_int, ACT.max_int + 1, size=(n, *graph.inputs[0].shape))


def simulate_graph(graph: Graph, x_q: np.ndarray, folder, simulator: str = "icarus") -> tuple[dict, dict]:
    """Write the graph's Verilog into folder/rtl and run sim/test_design.py on x_q against the
    golden executor, as `mpc simulate` does; return (design, the bench's result)."""
    import json
    from pathlib import Path

    from compiler.backends.verilog import write_verilog
    from compiler.simulate import _write_stimulus
    from sim.runner import run_cocotb

    folder = Path(folder).resolve()
    design = write_verilog(graph, folder / "rtl")
    work = folder / "sim"
    stimulus = _write_stimulus(work, folder, graph, design, np.asarray(x_q, dtype=np.int64))
    result_path = work / "result.json"
    run_cocotb(
        [folder / "rtl" / s for s in design["sources"]],
        design["top"],
        "test_design",
        work,
        simulator=simulator,
        extra_env={"MPC_STIMULUS": str(stimulus), "MPC_SIM_RESULT": str(result_path)},
    )
    return design, json.loads(result_path.read_text())
