"""add: the residual join of two activation streams of one shape. Both are aligned exactly to the
finer scale, summed exactly, then requantized (round half up, saturate, fused ReLU) to the
calibrated output format (docs/fixed-point.md "add (residual join)"; kernels.add).

Lowering: each input an activation (an accumulator requantized first); the output format is
calibrated on the float sum, or on the ReLU's output where a ReLU that is the add's only
consumer is fused (`relu`), as after a layer; a QONNX-fixed format wins over calibration."""

from __future__ import annotations

import numpy as np

import kernels
from compiler.errors import PassError
from compiler.ir import Node
from compiler.ops.base import Op, register
from compiler.ops.formats import MAX_SHIFT, checked_activation_format, quant_format
from compiler.ops.join import join_inputs
from compiler.ops.requantize import requantize_stand_in
from kernels.add import MAX_ALIGN_SHIFT


@register
class Add(Op):
    name = "add"

    def lower(self, lowering, node):
        a, b = join_inputs(lowering, node)
        if a.shape != b.shape:
            raise PassError(f"lower: add {node.name!r} joins tensors of shapes {list(a.shape)} and {list(b.shape)}")
        relu = lowering.only_consumer(node.outputs[0])
        relu = relu if relu is not None and relu.op == "relu" else None
        out = relu.outputs[0] if relu else node.outputs[0]
        fc = max(a.fmt.frac, b.fmt.frac)
        fmt = quant_format(lowering.graph, (out,), max_frac=fc) or checked_activation_format(
            lowering.acts[out], lowering.act_bits, f"the output of {node.name!r}", max_frac=fc
        )
        attrs = {
            "shift_a": fc - a.fmt.frac,
            "shift_b": fc - b.fmt.frac,
            "shift": fc - fmt.frac,
            "bits": fmt.bits,
            "relu": relu is not None,
            "input_formats": [a.fmt.to_dict(), b.fmt.to_dict()],
            "format": fmt.to_dict(),
        }
        _check_shifts(node, attrs)
        if relu:
            lowering.fuse(relu)
        lowering.load(node.inputs[0], a)
        lowering.emit(Node("add", node.name, [a.name, b.name], [out], attrs=attrs), fmt, is_acc=False)

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


def _check_shifts(node: Node, attrs: dict) -> None:
    """The kernel's limits (every step exact in int64), refused by name."""
    align = max(attrs["shift_a"], attrs["shift_b"])
    if align > MAX_ALIGN_SHIFT or attrs["shift"] > MAX_SHIFT:
        formats = " and ".join(f"Q({f['bits']}, {f['frac']})" for f in attrs["input_formats"])
        raise PassError(
            f"lower: add {node.name!r}: its inputs in {formats} and output in Q({attrs['bits']}, "
            f"{attrs['format']['frac']}) need shifts of {align} and {attrs['shift']} bits; at most "
            f"{MAX_ALIGN_SHIFT} and {MAX_SHIFT} are supported (the two branches' scales are too far apart)"
        )


def _aligned(b, x: str, shift: int, name: str) -> str:
    """x as int64, times 2**shift."""
    from onnx import TensorProto

    x64 = b.op("Cast", [x], f"{name}__i64", to=TensorProto.INT64)
    return b.op("Mul", [x64, b.const(1 << shift, np.int64, "align")], f"{name}__aligned") if shift else x64
