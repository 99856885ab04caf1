"""dequantize: the integer graph's output integers -> float logits (times 2**-frac). The float
softmax / log_softmax that ends a model is argmax-neutral: lower drops it (the design outputs
logits) and so does the float logits module."""

from __future__ import annotations

import numpy as np

import kernels
from compiler.ops.base import Op, register


@register
class Dequantize(Op):
    name = "dequantize"
    ends_graph = True

    def golden(self, graph, node, xs):
        return kernels.dequantize(xs[0], node.attrs["frac"])

    def stand_in(self, graph, node, xs, params, values):
        return xs[0] * 2.0 ** -node.attrs["frac"]

    def emit(self, b, graph, node, xs):
        """`logits_q` (the design's output integers: int32, or int64 after a wide layer) and the
        float `logits`; returns the integers' name."""
        from onnx import TensorProto

        from compiler.ops import base

        logits_q = acc = xs[0]
        producer = graph.producer(node.inputs[0])
        assert producer is not None, f"{node.name}: no producer"  # Graph.validate guarantees one
        if not base.get(producer.op).layer:  # an int8 activation, not an int32 accumulator
            logits_q = b.op("Cast", [acc], f"{node.outputs[0]}__i32", to=TensorProto.INT32)
        b.op("Identity", [logits_q], "logits_q")
        d = b.op("Cast", [logits_q], "logits__f64", to=TensorProto.DOUBLE)
        d = b.op("Mul", [d, b.const(2.0 ** -node.attrs["frac"], np.float64, "dequant")], "logits__scaled")
        b.op("Cast", [d], "logits", to=TensorProto.FLOAT)
        return logits_q


@register
class Softmax(Op):
    name = "softmax"
    dropped_at_output = True

    def forward(self, node, args):
        from torch.nn import functional as F

        return F.softmax(args[0], dim=-1)


@register
class LogSoftmax(Op):
    name = "log_softmax"
    dropped_at_output = True

    def forward(self, node, args):
        from torch.nn import functional as F

        return F.log_softmax(args[0], dim=-1)
