"""flatten: [N, C, H, W] -> [N, C*H*W], row-major or (attr `order` = "hwc") channel-last, the
order the hardware streams an image (docs/fixed-point.md "flatten"). The lowering remembers the
image's [C, H, W] for the dense layer that reads it (its `input_chw`)."""

from __future__ import annotations

import numpy as np

from compiler.ir import Graph, Node
from compiler.ops.base import Op, register


def flatten(node: Node, x: np.ndarray) -> np.ndarray:
    """[N, C, H, W] -> [N, C*H*W]: row-major, or with attr `order` = "hwc" channel-last
    ((y*W + x)*C + c, the order the hardware streams an image; docs/fixed-point.md "flatten")."""
    order = node.attrs.get("order", "row-major")
    if order == "hwc" and x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    elif order not in ("row-major", "hwc"):
        raise ValueError(f"node {node.name!r}: unknown flatten order {order!r}")
    return x.reshape(len(x), -1)


def flatten_order(graph: Graph, node: Node) -> str:
    """The `order` of the integer flatten a layer reads (through elementwise nodes), or
    "row-major" (also when it reads no flatten)."""
    producers = {t: n for n in graph.nodes for t in n.outputs}
    tensor = node.inputs[0]
    while (src := producers.get(tensor)) is not None and src.op in ("requantize", "table", "flatten"):
        if src.op == "flatten":
            return src.attrs.get("order", "row-major")
        tensor = src.inputs[0]
    return "row-major"


@register
class Flatten(Op):
    name = "flatten"

    def golden(self, graph, node, xs):
        return flatten(node, xs[0])

    def forward(self, node, args):
        return args[0].flatten(1)

    def stand_in(self, graph, node, xs, params, values):
        x = xs[0]
        if node.attrs.get("order") == "hwc" and x.dim() == 4:  # channel-last, as flatten()
            x = x.permute(0, 2, 3, 1)
        return x.reshape(len(x), -1)

    def emit(self, b, graph, node, xs):
        """Row-major, or (attr `order` = "hwc") channel-last: Transpose to NHWC first."""
        from compiler.ops.onnx_util import OnnxBackendError

        x = xs[0]
        order = node.attrs.get("order", "row-major")
        if order == "hwc":
            x = b.op("Transpose", [x], f"{node.outputs[0]}__nhwc", perm=[0, 2, 3, 1])
        elif order != "row-major":
            raise OnnxBackendError(f"node {node.name!r}: unknown flatten order {order!r}")
        return b.op("Flatten", [x], f"{node.outputs[0]}__flat", axis=1)

    def lower(self, lowering, node):
        lowering.flattened_chw = list(lowering.cur_shape) if len(lowering.cur_shape) == 3 else None
        lowering.flatten_node = Node("flatten", node.name, [lowering.cur], [node.outputs[0]])
        lowering.emit(
            lowering.flatten_node, lowering.cur_fmt, lowering.cur_is_acc, shape=(int(np.prod(lowering.cur_shape)),)
        )
