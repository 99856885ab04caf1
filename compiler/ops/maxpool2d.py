"""maxpool2d: the largest element of each window; padding never wins (kernels.pool2d.max_pool2d)."""

from __future__ import annotations

import kernels
from compiler.ops.base import Op, register
from compiler.ops.pooling import lower_pool
from compiler.ops.torch_util import pad, pool_stand_in, symmetric


@register
class MaxPool2d(Op):
    name = "maxpool2d"
    strided = True

    def golden(self, graph, node, xs):
        a = node.attrs
        return kernels.max_pool2d(xs[0], a["kernel"], a["stride"], a["pads"])

    def forward(self, node, args):
        from torch.nn import functional as F

        k, s = tuple(node.attrs["kernel"]), tuple(node.attrs["stride"])
        if symmetric(node):  # torch pads max pooling with -inf, as ONNX does
            return F.max_pool2d(args[0], k, s, padding=tuple(node.attrs["pads"][:2]))
        return F.max_pool2d(pad(args[0], node, float("-inf")), k, s)

    def stand_in(self, graph, node, xs, params, values):
        from torch.nn import functional as F

        return pool_stand_in(node, xs[0], F.max_pool2d)

    def emit(self, b, graph, node, xs):
        from compiler.ops.onnx_util import onnx_pads

        a = node.attrs  # int8 MaxPool: padding never wins, as in kernels.pool2d.max_pool2d
        return b.op(
            "MaxPool",
            [xs[0]],
            f"{node.outputs[0]}__max",
            kernel_shape=list(a["kernel"]),
            strides=[a["stride"]] * 2,
            pads=onnx_pads(a["pads"]),
        )

    def lower(self, lowering, node):
        lower_pool(lowering, node)
