"""concat: two activation streams joined along the channel axis (axis 1 of [N, C, H, W] or
[N, F]). Both are brought to one common format, the coarser of the two (the larger scale; the
wider bits), by requantize's rounding, which never saturates there; then joined
(docs/fixed-point.md "concat (channel join)"; kernels.concat).

Lowering: each input an activation (an accumulator requantized first); no calibration: the
format follows from the inputs'. A flattened image is refused (its stream is channel-last, the
integer graph row-major): join the images before the flatten."""

from __future__ import annotations

import numpy as np

import kernels
from compiler.errors import PassError
from compiler.ir import FixedPoint, Node
from compiler.ops.base import Op, register
from compiler.ops.join import join_inputs
from kernels.concat import concat_format


@register
class Concat(Op):
    name = "concat"

    def golden(self, graph, node, xs):
        return kernels.concat(xs, node.attrs["shifts"], node.attrs["bits"])

    def forward(self, node, args):
        import torch

        return torch.cat(args, dim=1)

    def stand_in(self, graph, node, xs, params, values):
        """Each input times 2**-shift (the rounding passes straight through; nothing saturates)."""
        import torch

        return torch.cat([x * 2.0**-s for x, s in zip(xs, node.attrs["shifts"])], dim=1)

    def emit(self, b, graph, node, xs):
        """Each input cast to int64 and shifted right by requantize's rounding (rshift_round), a
        Concat on axis 1, the clip to `bits` (never active), int8 out."""
        from onnx import TensorProto

        from compiler.ops.onnx_util import rshift_round, saturate_to_int8

        name = node.outputs[0]
        parts = []
        for i, (x, s) in enumerate(zip(xs, node.attrs["shifts"])):
            x64 = b.op("Cast", [x], f"{name}__in{i}_i64", to=TensorProto.INT64)
            parts.append(rshift_round(b, x64, s, f"{name}__in{i}"))
        joined = b.op("Concat", parts, f"{name}__cat", axis=1)
        return saturate_to_int8(b, joined, node.attrs["bits"], False, np.int64, name)

    def lower(self, lowering, node):
        if node.attrs.get("axis", 1) != 1:
            raise PassError(f"lower: concat {node.name!r} joins along axis {node.attrs['axis']}; only 1 (channels)")
        a, b = join_inputs(lowering, node)
        if a.shape[1:] != b.shape[1:] or len(a.shape) != len(b.shape):
            raise PassError(
                f"lower: concat {node.name!r} joins tensors of shapes {list(a.shape)} and {list(b.shape)}; "
                "they must agree but in the channel axis"
            )
        bits, frac, shifts = concat_format([a.fmt.bits, b.fmt.bits], [a.fmt.frac, b.fmt.frac])
        out_shape = (a.shape[0] + b.shape[0], *a.shape[1:])
        attrs = {
            "axis": 1,
            "shifts": shifts,
            "bits": bits,
            "input_formats": [a.fmt.to_dict(), b.fmt.to_dict()],
            "format": FixedPoint(bits, frac).to_dict(),
            "in_shapes": [list(a.shape), list(b.shape)],
            "out_shape": list(out_shape),
        }
        lowering.load(node.inputs[0], a)
        concat = Node("concat", node.name, [a.name, b.name], [node.outputs[0]], attrs=attrs)
        lowering.emit(concat, FixedPoint(bits, frac), is_acc=False, shape=out_shape)
