"""dense: y = W x + b, an exact integer MAC (kernels.dense_mac) into an accumulator that cannot
overflow (docs/fixed-point.md). A dense layer the `circulant` pass made block-circulant lowers to
a `circulant` node instead (compiler/ops/circulant_lower.py)."""

from __future__ import annotations

import numpy as np

import kernels
from compiler.ir import FixedPoint, Node
from compiler.ops.base import Op, register
from compiler.ops.circulant_lower import circulant_block, lower_circulant, stream_order_input
from compiler.ops.formats import checked_acc_bits
from kernels.stream_order import stream_reorders


def dense_golden(graph, node, x: np.ndarray) -> np.ndarray:
    """The exact integer product of a layer with a weight matrix (dense, or circulant's exact one)."""
    bias = graph.params[node.inputs[2]] if len(node.inputs) > 2 else None
    return kernels.dense_mac(x, graph.params[node.inputs[1]], bias)


@register
class Dense(Op):
    name = "dense"
    layer = True
    gradient_params = slice(1, 3)  # weight, bias
    wraps = True

    def golden(self, graph, node, xs):
        return dense_golden(graph, node, xs[0])

    def forward(self, node, args):
        from torch.nn import functional as F

        return F.linear(args[0], args[1], args[2] if len(args) > 2 else None)

    def stand_in(self, graph, node, xs, params, values):
        """The same product in float."""
        import torch

        w = params.get(node.inputs[1])
        out = xs[0] @ (w if w is not None else torch.tensor(graph.params[node.inputs[1]], dtype=torch.float64)).T
        return out + params[node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] in params else out

    def emit(self, b, graph, node, xs):
        """MatMulInteger + an int32 bias; past 32 accumulator bits an exact int64 MatMul
        (onnxruntime runs it on CPU; |acc| < 2**47 never wraps)."""
        from onnx import TensorProto

        from compiler.ops.onnx_util import wide

        x, out = xs[0], node.outputs[0]
        if wide(node):
            w64 = graph.params[node.inputs[1]].astype(np.int64).T
            x64 = b.op("Cast", [x], f"{out}__x64", to=TensorProto.INT64)
            acc = b.op("MatMul", [x64, b.const(w64, np.int64, "weight")], f"{out}__mm")
            if len(node.inputs) > 2:
                acc = b.op("Add", [acc, b.const(graph.params[node.inputs[2]], np.int64, "bias")], f"{out}__acc")
            return acc
        w_t = graph.params[node.inputs[1]].astype(np.int8).T  # MatMulInteger wants [in, out]
        acc = b.op("MatMulInteger", [x, b.const(w_t, np.int8, "weight")], f"{out}__mm")
        if len(node.inputs) > 2:
            acc = b.op("Add", [acc, b.const(graph.params[node.inputs[2]], np.int32, "bias")], f"{out}__acc")
        return acc

    def lower(self, lowering, node):
        """Weights on their grid, bias at the accumulator's scale; after a flattened image the
        engine's input order is recorded (`input_chw`), or a block-circulant layer reads it in
        stream order."""
        lowering.to_activation(node)  # e.g. two dense layers in a row
        opts = lowering.ctx.layer_options("lower", node.name)
        block = circulant_block(node, lowering.ctx.layer_options("plan", node.name)["engine"])
        # a circulant node always has a bias input (zeros if none)
        inputs, attrs, (w_q, b_q) = lowering.quantize_layer(node, opts, force_bias=bool(block))
        x_fmt, acc_frac = lowering.cur_fmt, attrs["acc_frac"]
        if lowering.flattened_chw:
            chw, lowering.flattened_chw = lowering.flattened_chw, None
            if block and stream_reorders(chw):
                w_q = stream_order_input(lowering, node, chw, inputs[1], w_q)
            else:
                attrs["input_chw"] = chw  # its input is an image streamed channel-last
        annotations = lowering.carried_annotations(node)
        op = "dense"
        if block:
            op = "circulant"
            acc_bits = lower_circulant(lowering, node, inputs, attrs, (w_q, b_q), block, opts)
        else:
            acc_bits = kernels.dense_accumulator_bits(w_q, b_q, x_fmt.bits)
        attrs["acc_bits"] = checked_acc_bits(node, acc_bits)
        lowering.emit(
            Node(op, node.name, inputs, [node.outputs[0]], attrs=attrs, annotations=annotations),
            FixedPoint(acc_bits, acc_frac),
            is_acc=True,
            shape=(w_q.shape[0],),
        )
