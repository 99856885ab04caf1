"""conv2d: a 2-D convolution, an exact integer MAC per output (kernels.conv2d), lowered as a
dense layer is (one weight format per layer, bias at the accumulator's scale, an accumulator
that cannot overflow). A conv the `circulant` pass made block-circulant in its channels keeps
this exact product; lower checks its quantized weights are still exactly block-circulant and
records attrs `circulant` = {"block", "p", "q"}, from which model.int.onnx and the conv engine
store only the defining vectors (docs/fixed-point.md "Block-circulant convolutions"). A depthwise
conv (attr `group` = C_in = C_out, weight [C, 1, kH, kW]) sums each channel's kH*kW products
only; attr `group` absent means 1 (the only other value the IR has)."""

from __future__ import annotations

import numpy as np

import kernels
from compiler.errors import PassError
from compiler.ir import FixedPoint, Graph, Node
from compiler.ops.base import Op, register
from compiler.ops.formats import checked_acc_bits
from compiler.ops.torch_util import pad, pads4
from kernels.circulant_conv import conv_circulant_vectors
from kernels.circulant_mac import circulant_index


@register
class Conv2d(Op):
    name = "conv2d"
    layer = True
    gradient_params = slice(1, 3)  # weight (a circulant conv's expanded weights), bias
    wraps = True
    strided = True

    def golden(self, graph, node, xs):
        bias = graph.params[node.inputs[2]] if len(node.inputs) > 2 else None
        a = node.attrs
        return kernels.conv2d(xs[0], graph.params[node.inputs[1]], bias, a["stride"], a["pads"], group_of(node))

    def forward(self, node, args):
        from torch.nn import functional as F

        x, w, b = args[0], args[1], (args[2] if len(args) > 2 else None)
        top, left, bottom, right = node.attrs["pads"]
        stride, groups = tuple(node.attrs["stride"]), group_of(node)
        if top == bottom and left == right:
            return F.conv2d(x, w, b, stride=stride, padding=(top, left), groups=groups)
        return F.conv2d(pad(x, node), w, b, stride=stride, groups=groups)

    def stand_in(self, graph, node, xs, params, values):
        """The same product in float (a block-circulant conv's gradient is its expanded weights',
        which the conv engine's `stored().pullback` sums onto the vectors)."""
        from torch.nn import functional as F

        t, left, bottom, r = pads4(node.attrs["pads"])
        bias = params.get(node.inputs[2]) if len(node.inputs) > 2 else None
        x = F.pad(xs[0], (left, r, t, bottom))
        return F.conv2d(x, params[node.inputs[1]], bias, stride=node.attrs["stride"], groups=group_of(node))

    def emit(self, b, graph, node, xs):
        return _emit(b, graph, node, xs[0])

    def lower(self, lowering, node):
        lowering.to_activation(node)
        opts = lowering.ctx.layer_options("lower", node.name)
        inputs, attrs, (w_q, b_q) = lowering.quantize_layer(node, opts)
        acc_bits = checked_acc_bits(node, kernels.conv_accumulator_bits(w_q, b_q, lowering.cur_fmt.bits))
        out_shape = lowering.float_shape(node.outputs[0])
        if (circulant := conv_circulant(node, w_q)) is not None:
            attrs["circulant"] = circulant
        if group_of(node) != 1:  # absent means 1: a group = 1 conv's integer node is as before
            attrs["group"] = group_of(node)
        attrs |= {
            "kernel": list(node.attrs["kernel"]),
            "stride": int(node.attrs["stride"][0]),
            "pads": list(node.attrs["pads"]),
            "acc_bits": acc_bits,
            "in_shape": list(lowering.cur_shape),
            "out_shape": list(out_shape),
        }
        annotations = lowering.carried_annotations(node)
        lowering.emit(
            Node("conv2d", node.name, inputs, [node.outputs[0]], attrs=attrs, annotations=annotations),
            FixedPoint(acc_bits, attrs["acc_frac"]),
            is_acc=True,
            shape=out_shape,
        )


def group_of(node: Node) -> int:
    """The conv's `group` attr (absent: 1): 1, or C_in = C_out for a depthwise conv."""
    return int(node.attrs.get("group", 1))


def conv_circulant(node: Node, w_q: np.ndarray) -> dict | None:
    """The channel structure of a conv the `circulant` pass made block-circulant
    (`annotations["block_size"]` = b > 1): {"block": b, "p": p, "q": q}, after checking that the
    quantized weights are still exactly block-circulant at every kernel position (elementwise
    quantization keeps that). None for a dense conv. The product stays conv2d's exact MAC; the
    structure only lets model.int.onnx and the conv engine store the defining vectors."""
    block = int(node.annotations.get("block_size", 1))
    if block <= 1:
        return None
    try:
        vectors = conv_circulant_vectors(w_q, block)
    except ValueError as e:
        raise PassError(
            f"lower: conv layer {node.name!r} was made block-circulant (block size {block}) but its "
            f"weights are no longer ({e}): a pass after circulant changed them (admm? run it before "
            "circulant, giving that layer block_size = 1)"
        ) from None
    p, q = vectors.shape[:2]
    return {"block": block, "p": int(p), "q": int(q)}


# ---- ONNX ---------------------------------------------------------------------------------------
def _emit(b, g: Graph, node: Node, x: str) -> str:
    """ConvInteger (int8 x int8 -> int32, zero padding) + the bias per output channel. A
    block-circulant conv (attrs `circulant`) stores only its defining vectors and expands them
    in the graph (_circulant_conv_weight). A depthwise conv is one ConvInteger with `group` = C:
    its kH*kW products per output always fit int32, so a wide one only adds its bias in int64."""
    from onnx import TensorProto

    from compiler.ops.onnx_util import OnnxBackendError, onnx_pads, slice_, wide

    a = node.attrs
    name, w = node.outputs[0], g.params[node.inputs[1]]
    window = dict(kernel_shape=list(a["kernel"]), strides=[a["stride"]] * 2, pads=onnx_pads(a["pads"]))
    full = _circulant_conv_weight(b, g, node) if "circulant" in a else None

    def weight(c0: int, c1: int, k: str) -> str:
        """The int8 weights of input channels c0..c1-1."""
        if full is None:
            return b.const(w[:, c0:c1], np.int8, "weight")
        return full if (c0, c1) == (0, w.shape[1]) else slice_(b, full, 1, c0, c1, f"{name}__w{k}")

    if group_of(node) != 1:
        if int32_channel_groups(w, int(a["input_format"]["bits"])) != [(0, 1)]:
            raise OnnxBackendError(f"conv {node.name!r}: its depthwise products can exceed int32 (ConvInteger)")
        acc = b.op("ConvInteger", [x, weight(0, w.shape[1], "")], f"{name}__conv", group=group_of(node), **window)
        if wide(node):
            acc = b.op("Cast", [acc], f"{name}__conv_64", to=TensorProto.INT64)
    elif not wide(node):
        acc = b.op("ConvInteger", [x, weight(0, w.shape[1], "")], f"{name}__conv", **window)
    else:  # acc_bits > 32: int32 ConvInteger sums over input-channel groups that cannot wrap, added in int64
        acc = ""
        for k, (c0, c1) in enumerate(int32_channel_groups(w, int(a["input_format"]["bits"]))):
            xs = slice_(b, x, 1, c0, c1, f"{name}__x{k}") if (c0, c1) != (0, w.shape[1]) else x
            part = b.op("ConvInteger", [xs, weight(c0, c1, str(k))], f"{name}__conv{k}", **window)
            part = b.op("Cast", [part], f"{name}__conv{k}_64", to=TensorProto.INT64)
            acc = b.op("Add", [acc, part], f"{name}__sum{k}") if acc else part
    if len(node.inputs) > 2:
        bias = g.params[node.inputs[2]].reshape(-1, 1, 1)
        dtype = np.int64 if wide(node) else np.int32
        acc = b.op("Add", [acc, b.const(bias, dtype, "bias")], f"{name}__acc")
    return acc


def _circulant_conv_weight(b, g: Graph, node: Node) -> str:
    """The [C_out, C_in, kH, kW] int8 weights of a block-circulant conv, from the one stored
    initializer of its defining vectors v [p, q, b, kH, kW] (kernels/circulant_conv.py):
    Gather(v, idx, axis=2) with idx[r, c] = (r - c) mod b gives [p, q, b, b, kH, kW], transposed
    to [p, b, q, b, kH, kW], reshaped to [p*b, q*b, kH, kW] and sliced to [C_out, C_in]."""
    w = g.params[node.inputs[1]]
    c_out, c_in, kh, kw = w.shape
    block = int(node.attrs["circulant"]["block"])
    v = conv_circulant_vectors(w.astype(np.int64), block)
    p, q = v.shape[:2]
    name = node.outputs[0]
    vectors = b.const(v, np.int8, "circulant_vectors")
    t = b.op("Gather", [vectors, b.const(circulant_index(block), np.int64, "circulant_index")], f"{name}__wg", axis=2)
    t = b.op("Transpose", [t], f"{name}__wt", perm=[0, 2, 1, 3, 4, 5])
    t = b.op("Reshape", [t, b.const([p * block, q * block, kh, kw], np.int64, "shape")], f"{name}__wr")
    if (p * block, q * block) != (c_out, c_in):
        ints = lambda v, hint: b.const(v, np.int64, hint)
        t = b.op("Slice", [t, ints([0, 0], "start"), ints([c_out, c_in], "end"), ints([0, 1], "axes")], f"{name}__wc")
    return t


def int32_channel_groups(w: np.ndarray, in_bits: int) -> list[tuple[int, int]]:
    """Consecutive input-channel ranges whose partial sums fit int32 for every input in range."""
    from compiler.ops.onnx_util import ONNX_INT32_ACC_BITS

    per_channel = np.abs(w.astype(np.int64)).sum(axis=(2, 3)).max(axis=0) * (1 << (in_bits - 1))
    groups, start, total = [], 0, 0
    for c, v in enumerate(per_channel):
        if c > start and total + v >= 1 << (ONNX_INT32_ACC_BITS - 1):
            groups.append((start, c))
            start, total = c, 0
        total += int(v)
    return [*groups, (start, len(per_channel))]
