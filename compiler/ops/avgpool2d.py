"""avgpool2d: the mean of each window, rounded half up, counting the padding or only the image's
cells (attr `count_include_pad`; kernels.pool2d.avg_pool2d)."""

from __future__ import annotations

import kernels
from compiler.ops.base import Op, register
from compiler.ops.pooling import divide_rounding_half_up, lower_pool, window_sums
from compiler.ops.torch_util import pad, pool_stand_in, symmetric
from kernels.pool2d import window_counts


@register
class AvgPool2d(Op):
    name = "avgpool2d"
    strided = True

    def golden(self, graph, node, xs):
        a = node.attrs
        return kernels.avg_pool2d(xs[0], a["kernel"], a["stride"], a["pads"], a["count_include_pad"])

    def forward(self, node, args):
        import torch
        from torch.nn import functional as F

        k, s = tuple(node.attrs["kernel"]), tuple(node.attrs["stride"])
        include = bool(node.attrs.get("count_include_pad", False))
        x = args[0]
        if symmetric(node):
            return F.avg_pool2d(x, k, s, padding=tuple(node.attrs["pads"][:2]), count_include_pad=include)
        total = F.avg_pool2d(pad(x, node), k, s)  # sum / (kH * kW), padding counted
        if include:
            return total
        inside = F.avg_pool2d(pad(torch.ones_like(x[:1, :1]), node), k, s)  # real pixels / (kH * kW)
        return total / inside

    def stand_in(self, graph, node, xs, params, values):
        from torch.nn import functional as F

        return pool_stand_in(node, xs[0], F.avg_pool2d)

    def emit(self, b, graph, node, xs):
        a = node.attrs
        channels, h, w = a["in_shape"]
        s = window_sums(b, node, xs[0], channels)
        kh, kw = a["kernel"]
        n = kh * kw
        if not a["count_include_pad"]:  # in-image cells per window, [1, 1, H_out, W_out]
            n = window_counts((h, w), (kh, kw), a["stride"], a["pads"])
        return divide_rounding_half_up(b, s, n, a["format"]["bits"], node.outputs[0])

    def lower(self, lowering, node):
        lower_pool(lowering, node)
