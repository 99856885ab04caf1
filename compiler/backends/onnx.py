"""Integer graph -> `model.int.onnx`, in standard ONNX operators that onnxruntime runs.

Float in, float logits out, integers in between, following docs/fixed-point.md exactly:
QuantizeLinear at the input, MatMulInteger (ConvInteger for a conv2d) + int32 bias per layer,
requantization as an exact float64 floor of (acc + 2**(s-1)) * 2**-s then a clip, int8 MaxPool,
average pooling as int32 window sums (a grouped ConvInteger with a ones kernel, or ReduceSum)
divided with rounding half up by integer Div on a positive numerator, and dequantization.
Outputs: `logits` (float32), `logits_q` (int32, the design's output integers), `class` (argmax).
A layer whose accumulator exceeds 32 bits (lower allows 48) is computed exactly in int64: an
int64 MatMul for dense, int32 ConvInteger sums over input-channel groups that cannot wrap, cast
to int64 and added, for conv; its requantize clips in int64, and `logits_q` is int64 when the
last layer is wide. A 1-D model's input [C, L] (`meta["source_input_shape"]`) is reshaped to the
IR's [C, 1, L] first.

A `circulant` node (block-circulant layer) is the fixed-point FFT of docs/fixed-point.md
"Block-circulant layers", step by step and exactly, in int64: Gather for the bit reversal, one
vectorized radix-2 stage after another (Mul/Add/Sub with the quantized twiddles as constants),
a batched int64 MatMul per frequency bin for the spectral products, and `rshift_round` as
(v + 2**(s-1) - Mod(v + 2**(s-1), 2**s)) / 2**s, an exact division (ONNX Mod with fmod=0 takes
the divisor's sign). Every intermediate fits the widths lower derived (<= 62 bits), so int64
never wraps: the integers equal kernels.circulant_mac's bit for bit.

A block-circulant conv2d (attrs `circulant`) stores only its defining vectors [p, q, b, kH, kW]
(int8) and expands them in the graph by a Gather with the [b, b] index (r - c) mod b, a
Transpose, a Reshape and a Slice to [C_out, C_in, kH, kW], then the same ConvInteger: the same
integers as a dense conv, p*q*b*kH*kW stored weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from compiler.errors import MpcError
from compiler.exec.golden import circulant_layer
from compiler.ir import BINARY_THRESHOLDS, LAYER_OPS, FixedPoint, Graph, binary_output
from kernels.argmax import threshold_code
from kernels.circulant_conv import conv_circulant_vectors
from kernels.circulant_mac import bit_reverse, circulant_index, twiddles
from kernels.pool2d import window_counts

OPSET = 17

# Ops whose ONNX lowering only approximates the integer graph (float-equivalent, not bit-exact):
# none. The report marks each layer `onnx_exact` from this; compile checks all of x_test.
FLOAT_EQUIVALENT_OPS: frozenset[str] = frozenset()


class OnnxBackendError(MpcError, ValueError):
    pass


class _Builder:
    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0

    def const(self, value, dtype, name_hint: str) -> str:
        self._count += 1
        name = f"{name_hint}__c{self._count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def to_onnx(graph: Graph) -> onnx.ModelProto:
    if not graph.is_integer:
        raise OnnxBackendError("the ONNX backend emits integer graphs; run the lower pass first")
    b = _Builder()
    src = graph.inputs[0]
    cur = ""
    # a 1-D model's [C, L] input is [C, 1, L] in the IR: model.int.onnx takes the model's own shape
    in_shape = list(graph.meta.get("source_input_shape") or src.shape)
    if in_shape != list(src.shape):
        cur = b.op("Reshape", [src.name, b.const([-1, *src.shape], np.int64, "shape")], f"{src.name}__ir_shape")
    elif graph.meta.get("input_layout") == "nhwc":  # the model's own layout: NHWC data in (docs/ir.md)
        cur = b.op("Transpose", [src.name], f"{src.name}__nchw", perm=[0, 3, 1, 2])
        in_shape = [in_shape[1], in_shape[2], in_shape[0]]
    for node in graph.nodes:
        emit = _EMIT.get(node.op)
        if emit is None:
            raise OnnxBackendError(f"node {node.name!r}: op {node.op!r} has no ONNX lowering")
        cur = emit(b, graph, node, cur or src.name)
    logits_q = cur  # dequantize returns the int32 tensor's name; the float output is "logits"
    kind = binary_output(graph)
    if kind is None:
        b.op("ArgMax", [logits_q], "class", axis=1, keepdims=0, select_last_index=0)
    else:  # a binary classifier: class 1 at or above the threshold's code (kernels.argmax.binary_classes)
        frac = FixedPoint.from_dict(graph.meta["output_format"]).frac
        code = b.const([threshold_code(BINARY_THRESHOLDS[kind], frac)], _logits_numpy_type(graph), "threshold")
        above = b.op("GreaterOrEqual", [logits_q, code], "class__above")
        flat = b.op("Reshape", [above, b.const([-1], np.int64, "flat")], "class__flat")
        b.op("Cast", [flat], "class", to=TensorProto.INT64)
    n_classes = graph.outputs[0].shape[0]
    g = helper.make_graph(
        b.nodes,
        "mpc_integer_graph",
        [helper.make_tensor_value_info(src.name, TensorProto.FLOAT, ["batch", *in_shape])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes]),
            # int64 where the last layer's accumulator is wider than int32 (lower allows 48 bits)
            helper.make_tensor_value_info("logits_q", _logits_type(graph), ["batch", n_classes]),
            helper.make_tensor_value_info("class", TensorProto.INT64, ["batch"]),
        ],
        b.inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mpc")
    model.ir_version = 8  # readable by onnxruntime releases of the last few years
    onnx.checker.check_model(model, full_check=True)
    return model


def save_onnx(graph: Graph, path: str | Path) -> None:
    onnx.save(to_onnx(graph), str(path))


def _quantize(b: _Builder, g: Graph, node, x: str) -> str:
    fmt = FixedPoint.from_dict(node.attrs["format"])
    q = b.op(
        "QuantizeLinear",
        [x, b.const(2.0**-fmt.frac, np.float32, "scale"), b.const(0, np.int8, "zero")],
        f"{node.outputs[0]}__int8",
    )
    if fmt.bits < 8:
        q = b.op(
            "Clip",
            [q, b.const(fmt.min_int, np.int8, "lo"), b.const(fmt.max_int, np.int8, "hi")],
            f"{node.outputs[0]}__clip",
        )
    return q


def _flatten(b: _Builder, g: Graph, node, x: str) -> str:
    """Row-major, or (attr `order` = "hwc") channel-last: Transpose to NHWC first."""
    order = node.attrs.get("order", "row-major")
    if order == "hwc":
        x = b.op("Transpose", [x], f"{node.outputs[0]}__nhwc", perm=[0, 2, 3, 1])
    elif order != "row-major":
        raise OnnxBackendError(f"node {node.name!r}: unknown flatten order {order!r}")
    return b.op("Flatten", [x], f"{node.outputs[0]}__flat", axis=1)


ONNX_INT32_ACC_BITS = 32  # MatMulInteger / ConvInteger accumulate in int32


def _wide(node) -> bool:
    """A layer whose accumulator exceeds int32 (lower allows up to 48 bits): computed in int64."""
    return int(node.attrs.get("acc_bits", 0)) > ONNX_INT32_ACC_BITS


def _acc_type(g: Graph, tensor: str):
    """The ONNX integer type carrying `tensor` if it is an accumulator: int64 for a wide layer's."""
    producer = g.producer(tensor)
    return TensorProto.INT64 if producer is not None and _wide(producer) else TensorProto.INT32


def _dense(b: _Builder, g: Graph, node, x: str) -> str:
    if _wide(node):  # exact int64 MatMul (onnxruntime runs it on CPU); |acc| < 2**47 never wraps
        w64 = g.params[node.inputs[1]].astype(np.int64).T
        x64 = b.op("Cast", [x], f"{node.outputs[0]}__x64", to=TensorProto.INT64)
        acc = b.op("MatMul", [x64, b.const(w64, np.int64, "weight")], f"{node.outputs[0]}__mm")
        if len(node.inputs) > 2:
            acc = b.op("Add", [acc, b.const(g.params[node.inputs[2]], np.int64, "bias")], f"{node.outputs[0]}__acc")
        return acc
    w_t = g.params[node.inputs[1]].astype(np.int8).T  # MatMulInteger wants [in, out]
    acc = b.op("MatMulInteger", [x, b.const(w_t, np.int8, "weight")], f"{node.outputs[0]}__mm")
    if len(node.inputs) > 2:
        acc = b.op("Add", [acc, b.const(g.params[node.inputs[2]], np.int32, "bias")], f"{node.outputs[0]}__acc")
    return acc


def _requantize(b: _Builder, g: Graph, node, acc: str) -> str:
    shift, bits, relu = node.attrs["shift"], node.attrs["bits"], node.attrs["relu"]
    name = node.outputs[0]
    t = acc
    # a wide layer's accumulator is int64: stays int64 up to the clip (its shifted value may exceed int32)
    int_type = _acc_type(g, node.inputs[0])
    np_int = np.int64 if int_type == TensorProto.INT64 else np.int32
    if shift > 0:  # exact in float64: |acc| < 2**48 (lower's limit) and scaling by powers of two
        d = b.op("Cast", [acc], f"{name}__f64", to=TensorProto.DOUBLE)
        d = b.op("Add", [d, b.const(2.0 ** (shift - 1), np.float64, "round")], f"{name}__round")
        d = b.op("Mul", [d, b.const(2.0**-shift, np.float64, "shift")], f"{name}__scaled")
        d = b.op("Floor", [d], f"{name}__floor")
        t = b.op("Cast", [d], f"{name}__i32", to=int_type)
    fmt = FixedPoint(bits, 0)
    lo = 0 if relu else fmt.min_int  # clip then ReLU == clip to [0, hi]
    t = b.op("Clip", [t, b.const(lo, np_int, "lo"), b.const(fmt.max_int, np_int, "hi")], f"{name}__clip")
    return b.op("Cast", [t], f"{name}__int8", to=TensorProto.INT8)


def _logits_numpy_type(g: Graph):
    return np.int64 if _logits_type(g) == TensorProto.INT64 else np.int32


def _logits_type(g: Graph):
    dequantize = next(n for n in g.nodes if n.op == "dequantize")
    return _acc_type(g, dequantize.inputs[0])


def _dequantize(b: _Builder, g: Graph, node, acc: str) -> str:
    logits_q = acc
    producer = g.producer(node.inputs[0])
    assert producer is not None, f"{node.name}: no producer"  # Graph.validate guarantees one
    if producer.op not in LAYER_OPS:  # an int8 activation, not an int32 accumulator
        logits_q = b.op("Cast", [acc], f"{node.outputs[0]}__i32", to=TensorProto.INT32)
    b.op("Identity", [logits_q], "logits_q")
    d = b.op("Cast", [logits_q], "logits__f64", to=TensorProto.DOUBLE)
    d = b.op("Mul", [d, b.const(2.0 ** -node.attrs["frac"], np.float64, "dequant")], "logits__scaled")
    b.op("Cast", [d], "logits", to=TensorProto.FLOAT)
    return logits_q


# ---- circulant (fixed-point FFT), all int64 ----------------------------------------------------
def _slice(b: _Builder, x: str, axis: int, start: int, end: int, name: str) -> str:
    ints = lambda v, hint: b.const([v], np.int64, hint)
    return b.op("Slice", [x, ints(start, "start"), ints(end, "end"), ints(axis, "axis")], name)


def _rshift_round(b: _Builder, v: str, s: int, name: str) -> str:
    """rshift_round(v, s) of docs/fixed-point.md on int64, exactly."""
    if s == 0:
        return v
    if s < 0:
        return b.op("Mul", [v, b.const(1 << -s, np.int64, "lshift")], f"{name}__lsh")
    t = b.op("Add", [v, b.const(1 << (s - 1), np.int64, "round")], f"{name}__rnd")
    r = b.op("Mod", [t, b.const(1 << s, np.int64, "mod")], f"{name}__mod", fmod=0)  # in [0, 2**s)
    d = b.op("Sub", [t, r], f"{name}__sub")
    return b.op("Div", [d, b.const(1 << s, np.int64, "div")], f"{name}__rsh")  # exact division


def _fft(
    b: _Builder, re: str, im: str, rows: int, n: int, twiddle_frac: int, inverse: bool, name: str
) -> tuple[str, str]:
    """kernels.circulant_mac.fft_fixed over the last axis of [N, rows, n] int64 tensors."""
    order = b.const(bit_reverse(n), np.int64, "bitrev")
    re = b.op("Gather", [re, order], f"{name}__rev_re", axis=2)
    im = b.op("Gather", [im, order], f"{name}__rev_im", axis=2)
    cos_q, sin_q = twiddles(n, twiddle_frac)
    if not inverse:
        sin_q = -sin_q
    stages = n.bit_length() - 1
    for s in range(1, stages + 1):
        half = 1 << (s - 1)
        groups = n // (2 * half)
        tag = f"{name}__s{s}"
        shape = b.const([0, rows, groups, 2, half], np.int64, "shape")
        parts = {}
        for part, t in (("re", re), ("im", im)):
            t = b.op("Reshape", [t, shape], f"{tag}_{part}_grp")
            for k, pos in (("a", 0), ("c", 1)):
                parts[k + part] = _slice(b, t, 3, pos, pos + 1, f"{tag}_{k}{part}")
        wr = b.const(cos_q[np.arange(half) * groups], np.int64, "tw_re")
        wi = b.const(sin_q[np.arange(half) * groups], np.int64, "tw_im")
        mul = lambda x, w, k, tag=tag: b.op("Mul", [x, w], f"{tag}_{k}")
        tr = b.op("Sub", [mul(parts["cre"], wr, "rr"), mul(parts["cim"], wi, "ii")], f"{tag}_tr")
        ti = b.op("Add", [mul(parts["cim"], wr, "ir"), mul(parts["cre"], wi, "ri")], f"{tag}_ti")
        tr = _rshift_round(b, tr, twiddle_frac, f"{tag}_tr")
        ti = _rshift_round(b, ti, twiddle_frac, f"{tag}_ti")
        out = {}
        for part, t in (("re", tr), ("im", ti)):
            top = _rshift_round(b, b.op("Add", [parts["a" + part], t], f"{tag}_{part}_sum"), 1, f"{tag}_{part}_top")
            bot = _rshift_round(b, b.op("Sub", [parts["a" + part], t], f"{tag}_{part}_dif"), 1, f"{tag}_{part}_bot")
            cat = b.op("Concat", [top, bot], f"{tag}_{part}_cat", axis=3)
            out[part] = b.op("Reshape", [cat, b.const([0, rows, n], np.int64, "shape")], f"{tag}_{part}")
        re, im = out["re"], out["im"]
    return re, im


def _circulant(b: _Builder, g: Graph, node, x: str) -> str:
    layer = circulant_layer(g, node)
    n, (p, q) = layer.block, layer.grid
    half = n // 2 + 1
    name = node.outputs[0]
    # 1. forward FFT of each zero-padded input block, times 2**G
    xf = b.op("Cast", [x], f"{name}__x64", to=TensorProto.INT64)
    if q * n > layer.n_in:
        xf = b.op("Pad", [xf, b.const([0, 0, 0, q * n - layer.n_in], np.int64, "pads")], f"{name}__pad")
    xf = b.op("Mul", [xf, b.const(1 << layer.fft_guard, np.int64, "guard")], f"{name}__guard")
    x_re = b.op("Reshape", [xf, b.const([0, q, n], np.int64, "shape")], f"{name}__blocks")
    x_im = b.op("Mul", [x_re, b.const(0, np.int64, "zero")], f"{name}__zeros")
    x_re, x_im = _fft(b, x_re, x_im, q, n, layer.twiddle_frac, False, f"{name}__fwd")
    # 2. spectral products, bins 0..b/2, summed over input blocks: one [N, q] x [q, p] per bin
    bins = lambda t, part: b.op(
        "Transpose", [_slice(b, t, 2, 0, half, f"{name}__{part}_bins")], f"{name}__{part}_hnq", perm=[2, 0, 1]
    )  # [H, N, q]
    xr, xi = bins(x_re, "xr"), bins(x_im, "xi")
    w_re = b.const(layer.spectra_re.transpose(2, 1, 0), np.int64, "spectra_re")  # [H, q, p]
    w_im = b.const(layer.spectra_im.transpose(2, 1, 0), np.int64, "spectra_im")
    mm = lambda a, w, k: b.op("MatMul", [a, w], f"{name}__mm_{k}")
    s_re = b.op("Sub", [mm(xr, w_re, "rr"), mm(xi, w_im, "ii")], f"{name}__s_re")
    s_im = b.op("Add", [mm(xr, w_im, "ri"), mm(xi, w_re, "ir")], f"{name}__s_im")
    # 3. rounded by R, back to [N, p, H], mirrored to the full spectrum of a real signal
    v = {}
    for part, t in (("re", s_re), ("im", s_im)):
        t = _rshift_round(b, t, layer.spectral_shift, f"{name}__v_{part}")
        v[part] = b.op("Transpose", [t], f"{name}__v_{part}_nph", perm=[1, 2, 0])
    if n > 2:
        mirror = b.const(np.arange(n // 2 - 1, 0, -1), np.int64, "mirror")
        m_re = b.op("Gather", [v["re"], mirror], f"{name}__m_re", axis=2)
        m_im = b.op("Neg", [b.op("Gather", [v["im"], mirror], f"{name}__m_im", axis=2)], f"{name}__m_conj")
        v["re"] = b.op("Concat", [v["re"], m_re], f"{name}__full_re", axis=2)
        v["im"] = b.op("Concat", [v["im"], m_im], f"{name}__full_im", axis=2)
    # 4. inverse FFT; 5. real part rounded by Gy, rows < n_out, plus bias
    y_re, _ = _fft(b, v["re"], v["im"], p, n, layer.twiddle_frac, True, f"{name}__inv")
    y = b.op("Reshape", [y_re, b.const([0, p * n], np.int64, "shape")], f"{name}__rows")
    if p * n > layer.n_out:
        y = _slice(b, y, 1, 0, layer.n_out, f"{name}__crop")
    y = _rshift_round(b, y, layer.ifft_guard, f"{name}__acc")
    y = b.op("Add", [y, b.const(g.params[node.inputs[2]], np.int64, "bias")], f"{name}__biased")
    return b.op("Cast", [y], f"{name}__acc", to=_acc_type(g, name))  # int32, or int64 if acc_bits > 32


# ---- convolution and pooling -------------------------------------------------------------------
def _conv2d(b: _Builder, g: Graph, node, x: str) -> str:
    """ConvInteger (int8 x int8 -> int32, zero padding) + the bias per output channel. A
    block-circulant conv (attrs `circulant`) stores only its defining vectors and expands them
    in the graph (_circulant_conv_weight)."""
    a = node.attrs
    name, w = node.outputs[0], g.params[node.inputs[1]]
    window = dict(kernel_shape=list(a["kernel"]), strides=[a["stride"]] * 2, pads=_onnx_pads(a["pads"]))
    full = _circulant_conv_weight(b, g, node) if "circulant" in a else None

    def weight(c0: int, c1: int, k: str) -> str:
        """The int8 weights of input channels c0..c1-1."""
        if full is None:
            return b.const(w[:, c0:c1], np.int8, "weight")
        return full if (c0, c1) == (0, w.shape[1]) else _slice(b, full, 1, c0, c1, f"{name}__w{k}")

    if not _wide(node):
        acc = b.op("ConvInteger", [x, weight(0, w.shape[1], "")], f"{name}__conv", **window)
    else:  # acc_bits > 32: int32 ConvInteger sums over input-channel groups that cannot wrap, added in int64
        acc = ""
        for k, (c0, c1) in enumerate(_int32_channel_groups(w, int(a["input_format"]["bits"]))):
            xs = _slice(b, x, 1, c0, c1, f"{name}__x{k}") if (c0, c1) != (0, w.shape[1]) else x
            part = b.op("ConvInteger", [xs, weight(c0, c1, str(k))], f"{name}__conv{k}", **window)
            part = b.op("Cast", [part], f"{name}__conv{k}_64", to=TensorProto.INT64)
            acc = b.op("Add", [acc, part], f"{name}__sum{k}") if acc else part
    if len(node.inputs) > 2:
        bias = g.params[node.inputs[2]].reshape(-1, 1, 1)
        dtype = np.int64 if _wide(node) else np.int32
        acc = b.op("Add", [acc, b.const(bias, dtype, "bias")], f"{name}__acc")
    return acc


def _circulant_conv_weight(b: _Builder, g: Graph, node) -> str:
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


def _int32_channel_groups(w: np.ndarray, in_bits: int) -> list[tuple[int, int]]:
    """Consecutive input-channel ranges whose partial sums fit int32 for every input in range."""
    per_channel = np.abs(w.astype(np.int64)).sum(axis=(2, 3)).max(axis=0) * (1 << (in_bits - 1))
    groups, start, total = [], 0, 0
    for c, v in enumerate(per_channel):
        if c > start and total + v >= 1 << (ONNX_INT32_ACC_BITS - 1):
            groups.append((start, c))
            start, total = c, 0
        total += int(v)
    return [*groups, (start, len(per_channel))]


def _onnx_pads(pads) -> list[int]:
    t, l, bottom, r = pads
    return [t, l, bottom, r]  # ONNX: [x1_begin, x2_begin, x1_end, x2_end], the IR's order


def _maxpool2d(b: _Builder, g: Graph, node, x: str) -> str:
    a = node.attrs  # int8 MaxPool: padding never wins, as in kernels.pool2d.max_pool2d
    return b.op(
        "MaxPool",
        [x],
        f"{node.outputs[0]}__max",
        kernel_shape=list(a["kernel"]),
        strides=[a["stride"]] * 2,
        pads=_onnx_pads(a["pads"]),
    )


def _window_sums(b: _Builder, node, x: str, channels: int) -> str:
    """int32 sums of each window with zero padding: ConvInteger with a ones kernel per channel."""
    a = node.attrs
    ones = np.ones((channels, 1, *a["kernel"]), np.int8)
    return b.op(
        "ConvInteger",
        [x, b.const(ones, np.int8, "ones")],
        f"{node.outputs[0]}__sum",
        kernel_shape=list(a["kernel"]),
        strides=[a["stride"]] * 2,
        pads=_onnx_pads(a["pads"]),
        group=channels,
    )


def _divide_rounding_half_up(b: _Builder, s: str, n, bits: int, name: str) -> str:
    """floor((2s + n) / (2n)) in int32, exactly: u = 2s + n + 2nM > 0 (M = 2**(bits-1), |s| <= nM),
    so integer Div (truncation) is floor; then subtract M. `n`: an int or an int array."""
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


def _avgpool2d(b: _Builder, g: Graph, node, x: str) -> str:
    a = node.attrs
    channels, h, w = a["in_shape"]
    s = _window_sums(b, node, x, channels)
    kh, kw = a["kernel"]
    n = kh * kw
    if not a["count_include_pad"]:  # in-image cells per window, [1, 1, H_out, W_out]
        n = window_counts((h, w), (kh, kw), a["stride"], a["pads"])
    return _divide_rounding_half_up(b, s, n, a["format"]["bits"], node.outputs[0])


def _global_avgpool(b: _Builder, g: Graph, node, x: str) -> str:
    _, h, w = node.attrs["in_shape"]
    wide = b.op("Cast", [x], f"{node.outputs[0]}__i32", to=TensorProto.INT32)
    s = b.op("ReduceSum", [wide, b.const([2, 3], np.int64, "axes")], f"{node.outputs[0]}__sum", keepdims=1)
    return _divide_rounding_half_up(b, s, h * w, node.attrs["format"]["bits"], node.outputs[0])


_EMIT = {
    "quantize": _quantize,
    "flatten": _flatten,
    "dense": _dense,
    "circulant": _circulant,
    "requantize": _requantize,
    "dequantize": _dequantize,
    "conv2d": _conv2d,
    "maxpool2d": _maxpool2d,
    "avgpool2d": _avgpool2d,
    "global_avgpool": _global_avgpool,
    "table": lambda b, g, node, x: _table(b, g, node, x),
}


def _table(b: _Builder, g: Graph, node, x: str) -> str:
    """An activation table (docs/fixed-point.md "table"): Gather(table, code + 2**(in_bits-1)),
    int8 in and out, bit-exact."""
    table = g.params[node.inputs[1]]
    name = node.outputs[0]
    idx = b.op("Cast", [x], f"{name}__i64", to=TensorProto.INT64)
    idx = b.op("Add", [idx, b.const(len(table) // 2, np.int64, "offset")], f"{name}__index")
    return b.op("Gather", [b.const(table, np.int8, "table"), idx], f"{name}__int8", axis=0)
