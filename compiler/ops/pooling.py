"""What the three pools share: their lowering rule (a pool keeps its input's format exactly:
max picks an element; average rounds the mean, which lies within the input's range) and the
ONNX of an average: int32 window sums divided with rounding half up (docs/fixed-point.md)."""

from __future__ import annotations

import numpy as np

from compiler.ir import Node


def lower_pool(lowering, node: Node) -> None:
    """The integer pool of a float one: the window, the input's format and the shapes."""
    lowering.to_activation(node)
    out_shape = lowering.float_shape(node.outputs[0])
    if node.op == "global_avgpool":
        window = {"kernel": list(lowering.cur_shape[1:]), "stride": 1, "pads": [0, 0, 0, 0]}
    else:
        window = {
            "kernel": list(node.attrs["kernel"]),
            "stride": int(node.attrs["stride"][0]),
            "pads": list(node.attrs["pads"]),
        }
        if node.op == "avgpool2d":
            window["count_include_pad"] = bool(node.attrs["count_include_pad"])
    attrs = window | {
        "format": lowering.cur_fmt.to_dict(),
        "in_shape": list(lowering.cur_shape),
        "out_shape": list(out_shape),
    }
    lowering.emit(
        Node(node.op, node.name, [lowering.cur], [node.outputs[0]], attrs=attrs),
        lowering.cur_fmt,
        is_acc=False,
        shape=out_shape,
    )


def window_sums(b, node: Node, x: str, channels: int) -> str:
    """int32 sums of each window with zero padding: ConvInteger with a ones kernel per channel."""
    from compiler.ops.onnx_util import onnx_pads

    a = node.attrs
    ones = np.ones((channels, 1, *a["kernel"]), np.int8)
    return b.op(
        "ConvInteger",
        [x, b.const(ones, np.int8, "ones")],
        f"{node.outputs[0]}__sum",
        kernel_shape=list(a["kernel"]),
        strides=[a["stride"]] * 2,
        pads=onnx_pads(a["pads"]),
        group=channels,
    )


def divide_rounding_half_up(b, s: str, n, bits: int, name: str) -> str:
    """floor((2s + n) / (2n)) in int32, exactly: u = 2s + n + 2nM > 0 (M = 2**(bits-1), |s| <= nM),
    so integer Div (truncation) is floor; then subtract M. `n`: an int or an int array."""
    from onnx import TensorProto

    m = 1 << (bits - 1)
    n = np.asarray(n, dtype=np.int32)
    u = b.op(
        "Add",
        [b.op("Mul", [s, b.const(2, np.int32, "two")], f"{name}__2s"), b.const(n + 2 * n * m, np.int32, "offset")],
        f"{name}__u",
    )
    q = b.op("Div", [u, b.const(2 * n, np.int32, "den")], f"{name}__q")
    y = b.op("Sub", [q, b.const(m, np.int32, "m")], f"{name}__y")
    return b.op("Cast", [y], f"{name}__int8", to=TensorProto.INT8)
