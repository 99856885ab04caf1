"""Integer graph -> `model.int.onnx`, in standard ONNX operators that onnxruntime runs.

Float in, float logits out, integers in between, following docs/fixed-point.md exactly:
QuantizeLinear at the input, MatMulInteger + int32 bias per dense layer, requantization as an
exact float64 floor of (acc + 2**(s-1)) * 2**-s then a clip, and dequantization at the output.
Outputs: `logits` (float32), `logits_q` (int32, the design's output integers), `class` (argmax).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from compiler.ir import FixedPoint, Graph

OPSET = 17


class OnnxBackendError(ValueError):
    pass


class _Builder:
    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0

    def const(self, value, dtype, name_hint: str) -> str:
        self._count += 1
        name = f"{name_hint}__c{self._count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def to_onnx(graph: Graph) -> onnx.ModelProto:
    if not graph.is_integer:
        raise OnnxBackendError("the ONNX backend emits integer graphs; run the lower pass first")
    b = _Builder()
    src = graph.inputs[0]
    cur = ""
    for node in graph.nodes:
        emit = _EMIT.get(node.op)
        if emit is None:
            raise OnnxBackendError(f"node {node.name!r}: op {node.op!r} has no ONNX lowering")
        cur = emit(b, graph, node, cur or src.name)
    logits_q = cur  # dequantize returns the int32 tensor's name; the float output is "logits"
    b.op("ArgMax", [logits_q], "class", axis=1, keepdims=0, select_last_index=0)
    n_classes = graph.outputs[0].shape[0]
    g = helper.make_graph(
        b.nodes, "mpc_integer_graph",
        [helper.make_tensor_value_info(src.name, TensorProto.FLOAT, ["batch", *src.shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes]),
         helper.make_tensor_value_info("logits_q", TensorProto.INT32, ["batch", n_classes]),
         helper.make_tensor_value_info("class", TensorProto.INT64, ["batch"])],
        b.inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mpc")
    model.ir_version = 8  # readable by onnxruntime releases of the last few years
    onnx.checker.check_model(model, full_check=True)
    return model


def save_onnx(graph: Graph, path: str | Path) -> None:
    onnx.save(to_onnx(graph), str(path))


def _quantize(b: _Builder, g: Graph, node, x: str) -> str:
    fmt = FixedPoint.from_dict(node.attrs["format"])
    q = b.op("QuantizeLinear", [x, b.const(2.0 ** -fmt.frac, np.float32, "scale"), b.const(0, np.int8, "zero")],
             f"{node.outputs[0]}__int8")
    if fmt.bits < 8:
        q = b.op("Clip", [q, b.const(fmt.min_int, np.int8, "lo"), b.const(fmt.max_int, np.int8, "hi")],
                 f"{node.outputs[0]}__clip")
    return q


def _flatten(b: _Builder, g: Graph, node, x: str) -> str:
    return b.op("Flatten", [x], f"{node.outputs[0]}__flat", axis=1)


def _dense(b: _Builder, g: Graph, node, x: str) -> str:
    w_t = g.params[node.inputs[1]].astype(np.int8).T  # MatMulInteger wants [in, out]
    acc = b.op("MatMulInteger", [x, b.const(w_t, np.int8, "weight")], f"{node.outputs[0]}__mm")
    if len(node.inputs) > 2:
        acc = b.op("Add", [acc, b.const(g.params[node.inputs[2]], np.int32, "bias")], f"{node.outputs[0]}__acc")
    return acc


def _requantize(b: _Builder, g: Graph, node, acc: str) -> str:
    shift, bits, relu = node.attrs["shift"], node.attrs["bits"], node.attrs["relu"]
    name = node.outputs[0]
    t = acc
    if shift > 0:  # exact in float64: |acc| < 2**32 and scaling by powers of two
        d = b.op("Cast", [acc], f"{name}__f64", to=TensorProto.DOUBLE)
        d = b.op("Add", [d, b.const(2.0 ** (shift - 1), np.float64, "round")], f"{name}__round")
        d = b.op("Mul", [d, b.const(2.0 ** -shift, np.float64, "shift")], f"{name}__scaled")
        d = b.op("Floor", [d], f"{name}__floor")
        t = b.op("Cast", [d], f"{name}__i32", to=TensorProto.INT32)
    fmt = FixedPoint(bits, 0)
    lo = 0 if relu else fmt.min_int  # clip then ReLU == clip to [0, hi]
    t = b.op("Clip", [t, b.const(lo, np.int32, "lo"), b.const(fmt.max_int, np.int32, "hi")], f"{name}__clip")
    return b.op("Cast", [t], f"{name}__int8", to=TensorProto.INT8)


def _dequantize(b: _Builder, g: Graph, node, acc: str) -> str:
    logits_q = acc
    if g.producer(node.inputs[0]).op != "dense":  # an int8 activation rather than an int32 accumulator
        logits_q = b.op("Cast", [acc], f"{node.outputs[0]}__i32", to=TensorProto.INT32)
    b.op("Identity", [logits_q], "logits_q")
    d = b.op("Cast", [logits_q], "logits__f64", to=TensorProto.DOUBLE)
    d = b.op("Mul", [d, b.const(2.0 ** -node.attrs["frac"], np.float64, "dequant")], "logits__scaled")
    b.op("Cast", [d], "logits", to=TensorProto.FLOAT)
    return logits_q


_EMIT = {"quantize": _quantize, "flatten": _flatten, "dense": _dense,
         "requantize": _requantize, "dequantize": _dequantize}
