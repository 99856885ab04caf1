"""global_avgpool: the mean of each channel over the whole image, rounded half up
(kernels.pool2d.global_avg_pool); the float op keeps the [N, C, 1, 1] shape."""

from __future__ import annotations

import numpy as np

import kernels
from compiler.ops.base import Op, register
from compiler.ops.pooling import divide_rounding_half_up, lower_pool


@register
class GlobalAvgPool(Op):
    name = "global_avgpool"

    def golden(self, graph, node, xs):
        return kernels.global_avg_pool(xs[0])

    def forward(self, node, args):
        return args[0].mean(dim=(2, 3), keepdim=True)

    def stand_in(self, graph, node, xs, params, values):
        return xs[0].mean(dim=(2, 3), keepdim=True)  # the golden values' [N, C, 1, 1]

    def emit(self, b, graph, node, xs):
        from onnx import TensorProto

        _, h, w = node.attrs["in_shape"]
        out = node.outputs[0]
        wide = b.op("Cast", [xs[0]], f"{out}__i32", to=TensorProto.INT32)
        s = b.op("ReduceSum", [wide, b.const([2, 3], np.int64, "axes")], f"{out}__sum", keepdims=1)
        return divide_rounding_half_up(b, s, h * w, node.attrs["format"]["bits"], out)

    def lower(self, lowering, node):
        lower_pool(lowering, node)
