"""Integer graph -> `model.int.onnx`, in standard ONNX operators that onnxruntime runs.

Float in, float logits out, integers in between, following docs/fixed-point.md exactly:
QuantizeLinear at the input, MatMulInteger (ConvInteger for a conv2d) + int32 bias per layer,
requantization as an exact float64 floor of (acc + 2**(s-1)) * 2**-s then a clip, int8 MaxPool,
average pooling as int32 window sums (a grouped ConvInteger with a ones kernel, or ReduceSum)
divided with rounding half up by integer Div on a positive numerator, and dequantization.
Outputs: `logits` (float32), `logits_q` (int32, the design's output integers), `class` (argmax).
A layer whose accumulator exceeds 32 bits (lower allows 48) is computed exactly in int64: an
int64 MatMul for dense, int32 ConvInteger sums over input-channel groups that cannot wrap, cast
to int64 and added, for conv; its requantize clips in int64, and `logits_q` is int64 when the
last layer is wide. A 1-D model's input [C, L] (`meta["source_input_shape"]`) is reshaped to the
IR's [C, 1, L] first.

A `circulant` node (block-circulant layer) is the fixed-point FFT of docs/fixed-point.md
"Block-circulant layers", step by step and exactly, in int64: Gather for the bit reversal, one
vectorized radix-2 stage after another (Mul/Add/Sub with the quantized twiddles as constants),
a batched int64 MatMul per frequency bin for the spectral products, and `rshift_round` as
(v + 2**(s-1) - Mod(v + 2**(s-1), 2**s)) / 2**s, an exact division (ONNX Mod with fmod=0 takes
the divisor's sign). Every intermediate fits the widths lower derived (<= 62 bits), so int64
never wraps: the integers equal kernels.circulant_mac's bit for bit.

A block-circulant conv2d (attrs `circulant`) stores only its defining vectors [p, q, b, kH, kW]
(int8) and expands them in the graph by a Gather with the [b, b] index (r - c) mod b, a
Transpose, a Reshape and a Slice to [C_out, C_in, kH, kW], then the same ConvInteger: the same
integers as a dense conv, p*q*b*kH*kW stored weights.

Each node's ONNX is its op's `emit` (compiler/ops/): this module only walks the graph and adds
the input reshaping and the class output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from compiler import ops
from compiler.ir import BINARY_THRESHOLDS, FixedPoint, Graph, binary_output
from compiler.ops.onnx_util import ONNX_INT32_ACC_BITS as ONNX_INT32_ACC_BITS  # re-exported
from compiler.ops.onnx_util import Builder, OnnxBackendError, acc_type
from kernels.argmax import threshold_code

OPSET = 17

# Ops whose ONNX lowering only approximates the integer graph (float-equivalent, not bit-exact):
# none. The report marks each layer `onnx_exact` from this; compile checks all of x_test.
FLOAT_EQUIVALENT_OPS: frozenset[str] = frozenset()

__all__ = ["FLOAT_EQUIVALENT_OPS", "ONNX_INT32_ACC_BITS", "OPSET", "OnnxBackendError", "save_onnx", "to_onnx"]


def to_onnx(graph: Graph) -> onnx.ModelProto:
    if not graph.is_integer:
        raise OnnxBackendError("the ONNX backend emits integer graphs; run the lower pass first")
    b = Builder()
    src = graph.inputs[0]
    onnx_name = {src.name: src.name}  # IR tensor -> the ONNX tensor that carries it
    # a 1-D model's [C, L] input is [C, 1, L] in the IR: model.int.onnx takes the model's own shape
    in_shape = list(graph.meta.get("source_input_shape") or src.shape)
    if in_shape != list(src.shape):
        onnx_name[src.name] = b.op(
            "Reshape", [src.name, b.const([-1, *src.shape], np.int64, "shape")], f"{src.name}__ir_shape"
        )
    elif graph.meta.get("input_layout") == "nhwc":  # the model's own layout: NHWC data in (docs/ir.md)
        onnx_name[src.name] = b.op("Transpose", [src.name], f"{src.name}__nchw", perm=[0, 3, 1, 2])
        in_shape = [in_shape[1], in_shape[2], in_shape[0]]
    logits_q = ""
    for node in graph.nodes:
        op = ops.OPS.get(node.op)
        if op is None or not op.defines("emit"):
            raise OnnxBackendError(f"node {node.name!r}: op {node.op!r} has no ONNX lowering")
        xs = [onnx_name[t] for t in ops.stream_inputs(graph, node)]
        onnx_name[node.outputs[0]] = logits_q = op.emit(b, graph, node, xs)
    # the last node (dequantize) returns the int32 tensor's name; the float output is "logits"
    kind = binary_output(graph)
    if kind is None:
        b.op("ArgMax", [logits_q], "class", axis=1, keepdims=0, select_last_index=0)
    else:  # a binary classifier: class 1 at or above the threshold's code (kernels.argmax.binary_classes)
        frac = FixedPoint.from_dict(graph.meta["output_format"]).frac
        code = b.const([threshold_code(BINARY_THRESHOLDS[kind], frac)], _logits_numpy_type(graph), "threshold")
        above = b.op("GreaterOrEqual", [logits_q, code], "class__above")
        flat = b.op("Reshape", [above, b.const([-1], np.int64, "flat")], "class__flat")
        b.op("Cast", [flat], "class", to=TensorProto.INT64)
    n_classes = graph.outputs[0].shape[0]
    g = helper.make_graph(
        b.nodes,
        "mpc_integer_graph",
        [helper.make_tensor_value_info(src.name, TensorProto.FLOAT, ["batch", *in_shape])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes]),
            # int64 where the last layer's accumulator is wider than int32 (lower allows 48 bits)
            helper.make_tensor_value_info("logits_q", _logits_type(graph), ["batch", n_classes]),
            helper.make_tensor_value_info("class", TensorProto.INT64, ["batch"]),
        ],
        b.inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mpc")
    model.ir_version = 8  # readable by onnxruntime releases of the last few years
    onnx.checker.check_model(model, full_check=True)
    return model


def save_onnx(graph: Graph, path: str | Path) -> None:
    onnx.save(to_onnx(graph), str(path))


def _logits_numpy_type(g: Graph):
    return np.int64 if _logits_type(g) == TensorProto.INT64 else np.int32


def _logits_type(g: Graph):
    output = next(n for n in g.nodes if ops.get(n.op).ends_graph)
    return acc_type(g, output.inputs[0])
