"""quantize: the host's float input -> the integer stream (docs/fixed-point.md "quantize")."""

from __future__ import annotations

import numpy as np

import kernels
from compiler.ir import FixedPoint
from compiler.ops.base import Op, register


@register
class Quantize(Op):
    name = "quantize"

    def golden(self, graph, node, xs):
        fmt = FixedPoint.from_dict(node.attrs["format"])
        return kernels.quantize(xs[0], fmt.frac, fmt.bits)

    def stand_in(self, graph, node, xs, params, values):
        import torch  # no param comes before it: its integers are constants

        return torch.tensor(values[node.outputs[0]], dtype=torch.float64)

    def emit(self, b, graph, node, xs):
        """QuantizeLinear (int8, zero point 0), clipped to a narrower format."""
        fmt = FixedPoint.from_dict(node.attrs["format"])
        out = node.outputs[0]
        q = b.op(
            "QuantizeLinear",
            [xs[0], b.const(2.0**-fmt.frac, np.float32, "scale"), b.const(0, np.int8, "zero")],
            f"{out}__int8",
        )
        if fmt.bits < 8:
            q = b.op(
                "Clip", [q, b.const(fmt.min_int, np.int8, "lo"), b.const(fmt.max_int, np.int8, "hi")], f"{out}__clip"
            )
        return q
