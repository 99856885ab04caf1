"""add: the residual join of two activation streams of one shape. Both are aligned exactly to the
finer scale, summed exactly, then requantized (round half up, saturate, fused ReLU) to the
calibrated output format (docs/fixed-point.md "add (residual join)"; kernels.add).

The float `add` (a + b) has no lowering rule yet: lower walks a chain, one current tensor, and a
join needs the DAG lowering of the branching-graph work."""

from __future__ import annotations

import numpy as np

import kernels
from compiler.ops.base import Op, register
from compiler.ops.requantize import requantize_stand_in


@register
class Add(Op):
    name = "add"
    unlowerable = (
        "lower: add {names} joins two streams, but lower walks a single chain (one current tensor); "
        "graphs with a join (residual connections) cannot be lowered yet"
    )

    def golden(self, graph, node, xs):
        a = node.attrs
        return kernels.add(xs[0], xs[1], a["shift_a"], a["shift_b"], a["shift"], a["bits"], a["relu"])

    def forward(self, node, args):
        return args[0] + args[1]

    def stand_in(self, graph, node, xs, params, values):
        """The aligned sum through requantize's stand-in: times 2**-shift where the output did
        not saturate and the ReLU did not cut it."""
        a = node.attrs
        aligned = xs[0] * 2.0 ** a["shift_a"] + xs[1] * 2.0 ** a["shift_b"]
        return requantize_stand_in(aligned, node, values)

    def emit(self, b, graph, node, xs):
        """int64 throughout, exactly: both inputs cast and shifted left (a Mul by 2**shift), an Add,
        requantize's rounding as rshift_round, the clip, int8 out."""
        from compiler.ops.onnx_util import rshift_round, saturate_to_int8

        a, name = node.attrs, node.outputs[0]
        shifts = (a["shift_a"], a["shift_b"])
        aligned = [_aligned(b, x, shift, f"{name}__{side}") for x, shift, side in zip(xs, shifts, "ab")]
        total = b.op("Add", aligned, f"{name}__sum")
        return saturate_to_int8(b, rshift_round(b, total, a["shift"], name), a["bits"], a["relu"], np.int64, name)


def _aligned(b, x: str, shift: int, name: str) -> str:
    """x as int64, times 2**shift."""
    from onnx import TensorProto

    x64 = b.op("Cast", [x], f"{name}__i64", to=TensorProto.INT64)
    return b.op("Mul", [x64, b.const(1 << shift, np.int64, "align")], f"{name}__aligned") if shift else x64
