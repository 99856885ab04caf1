"""requantize: an accumulator (or activation) -> a narrower activation, rounding half up with
saturation and an optional fused ReLU (docs/fixed-point.md "requantize"). The float `relu`
lowers to one."""

from __future__ import annotations

import numpy as np

import kernels
from compiler.ops.base import Op, register


def requantize_stand_in(x, node, values):
    """The gradient stand-in of requantize's rounding and saturation (exec/gradient.py): x (the
    value before the shift) times 2**-shift, zero where the output saturated or the ReLU cut it.
    Also add's, whose sum is requantized the same way."""
    import torch

    a = node.attrs
    exact = values[node.outputs[0]]
    lo, hi = -(1 << (a["bits"] - 1)), (1 << (a["bits"] - 1)) - 1
    passes = (exact > (0 if a["relu"] else lo)) & (exact < hi)
    return x * 2.0 ** -a["shift"] * torch.as_tensor(passes, dtype=torch.float64)


@register
class Requantize(Op):
    name = "requantize"

    def golden(self, graph, node, xs):
        a = node.attrs
        return kernels.requantize(xs[0], a["shift"], a["bits"], a["relu"])

    def stand_in(self, graph, node, xs, params, values):
        return requantize_stand_in(xs[0], node, values)

    def emit(self, b, graph, node, xs):
        """An exact float64 floor of (acc + 2**(s-1)) * 2**-s, then a clip (int64 for a wide
        layer's accumulator up to the clip: its shifted value may exceed int32)."""
        from onnx import TensorProto

        from compiler.ops.onnx_util import acc_type, saturate_to_int8

        shift, bits, relu = node.attrs["shift"], node.attrs["bits"], node.attrs["relu"]
        name = node.outputs[0]
        t = acc = xs[0]
        int_type = acc_type(graph, node.inputs[0])
        np_int = np.int64 if int_type == TensorProto.INT64 else np.int32
        if shift == 0 and not _reads_accumulator(graph, node):  # an int8 activation (a ReLU after a join)
            t = b.op("Cast", [acc], f"{name}__wide", to=int_type)
        if shift > 0:  # exact in float64: |acc| < 2**48 (lower's limit) and scaling by powers of two
            d = b.op("Cast", [acc], f"{name}__f64", to=TensorProto.DOUBLE)
            d = b.op("Add", [d, b.const(2.0 ** (shift - 1), np.float64, "round")], f"{name}__round")
            d = b.op("Mul", [d, b.const(2.0**-shift, np.float64, "shift")], f"{name}__scaled")
            d = b.op("Floor", [d], f"{name}__floor")
            t = b.op("Cast", [d], f"{name}__i32", to=int_type)
        return saturate_to_int8(b, t, bits, relu, np_int, name)


def _reads_accumulator(graph, node) -> bool:
    """Whether the requantize's input is a layer's accumulator (int32 / int64 in ONNX), through
    flattens; else it is an activation, carried as int8."""
    src = graph.producer(node.inputs[0])
    while src is not None and src.op == "flatten":
        src = graph.producer(src.inputs[0])
    return src is not None and "acc_bits" in src.attrs


@register
class Relu(Op):
    """Float only: lowers to a requantize with its ReLU fused."""

    name = "relu"

    def forward(self, node, args):
        from torch.nn import functional as F

        return F.relu(args[0])

    def lower(self, lowering, node):
        lowering.requantize(node.name, node.outputs[0], relu=True)
