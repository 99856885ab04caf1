"""lower: calibrated post-training quantization to the integer graph of docs/fixed-point.md.

Float graph (dense, conv2d, pools, relu, flatten, trailing softmax) -> integer graph:

    quantize -> [conv2d -> requantize(+relu) -> [pool] -> ...] -> [flatten] -> dense
             -> requantize(+relu) -> ... -> dense -> dequantize

A conv2d is lowered as a dense layer is (one weight format per layer, bias at the accumulator's
scale, an accumulator that cannot overflow); pools work on activations, so an accumulator is
requantized before one, and keep their input's format exactly. The dense layer after a flatten
of a [C, H, W] tensor records `input_chw`: the hardware streams that tensor channel-last, so its
engine stores the columns permuted (compiler.hw.dense.stream_weight_matrix). A block-circulant
layer there (C > 1 and H*W > 1) cannot take permuted columns: the `circulant` pass made its
stream-order matrix block-circulant (annotations["circulant"]["input_chw"]), so the integer
flatten gets `order` = "hwc" (it emits the channel-last vector, docs/fixed-point.md "flatten")
and the `circulant` node stores the stream-order weights, without `input_chw`.

Hardware planning (engines, multipliers) is the next pass, `plan` (compiler/passes/plan.py).

Every scale is a power of two. Activation formats are calibrated on x_train; weight formats
cover each layer's largest weight, unless `admm` already put the layer on a fixed-point grid,
whose levels are kept exactly. The trailing softmax is dropped (the design outputs logits).

A dense layer that the `circulant` pass made block-circulant (`annotations["block_size"]`)
becomes a `circulant` node: its weights are quantized elementwise as for dense (which keeps them
exactly circulant), and the fixed-point FFT's weight spectra, shifts and widths are planned by
kernels.circulant_mac.plan_circulant with the `[lower]` precision options. Its output is an
accumulator at the dense layer's scale, so the same requantize follows. The FFT's accuracy cost
(accumulator error against the exact product, and test accuracy with the exact product in its
place) is measured on the calibration and test data and kept in the node's annotations.

A conv2d made block-circulant in its channels (`annotations["block_size"]`, every kernel
position's [C_out, C_in] slice block-circulant) stays an integer `conv2d` with the same exact
product; lower checks that its quantized weights are still exactly block-circulant and records
attrs `circulant` = {"block", "p", "q"}, from which model.int.onnx and the conv engine store
only the defining vectors (docs/fixed-point.md "Block-circulant convolutions").
"""

from __future__ import annotations

import math

import numpy as np

import kernels
from compiler.exec import golden
from compiler.hw.dense import stream_order, stream_reorders, stream_weight_matrix, unstream
from compiler.ir import ACTIVATION_OPS, POOL_OPS, SOFTMAX_OPS, FixedPoint, Graph, Node, TensorSpec, binary_output
from compiler.passes.base import Option, Pass, PassError, int_in, register
from kernels.activation import activation_table
from kernels.circulant_conv import conv_circulant_vectors
from kernels.circulant_mac import (
    FFT_EXTRA_GUARD,
    IFFT_GUARD,
    SPECTRUM_BITS,
    TWIDDLE_FRAC,
    circulant_error,
    circulant_vectors,
    plan_circulant,
)

# FPGA DSP slices accumulate 48 bits. The ONNX backend computes a layer wider than 32 bits (where
# MatMulInteger / ConvInteger accumulate) in int64; lower narrows a layer's weights beyond this.
MAX_ACC_BITS = 48
# Every format's frac (weights, activations, accumulators) lies in -MAX_FRAC..MAX_FRAC: its step
# 2**-frac is exact in float32 (ONNX QuantizeLinear's scale) and every shift fits int64.
MAX_FRAC = 60
MAX_SHIFT = 62  # requantize shifts: 1 << shift must be an int64 (the integer ONNX graph)
LOWERABLE_OPS = ("dense", "relu", "flatten", "conv2d", *POOL_OPS, *ACTIVATION_OPS)


def _auto_or(check):
    return lambda v: None if v == "auto" else (None if check(v) is None else f'{check(v)} (or "auto")')


@register
class Lower(Pass):
    name = "lower"
    needs_data = True
    options = {
        "weight_bits": Option(8, int_in(2, 8), "bits per weight (ignored where admm fixed them)", per_layer=True),
        "activation_bits": Option(8, int_in(2, 8), "bits per activation"),
        "calibration_samples": Option(2048, int_in(1, 10**7), "rows of x_train used to calibrate activations"),
        # Precision of the fixed-point FFT of block-circulant layers (docs/fixed-point.md,
        # "Block-circulant layers": T, SB, G, Gy). More bits: smaller FFT error, wider datapath.
        "twiddle_frac": Option(
            TWIDDLE_FRAC,
            int_in(2, 30),
            "circulant layers: fractional bits T of the FFT twiddles, stored in Q(T+2, T)",
            per_layer=True,
        ),
        "spectrum_bits": Option(
            SPECTRUM_BITS,
            int_in(2, 32),
            "circulant layers: bits of each stored weight-spectrum component (real, imaginary)",
            per_layer=True,
        ),
        "fft_guard": Option(
            "auto",
            _auto_or(int_in(0, 24)),
            f"circulant layers: forward FFT guard bits G (auto: log2(b) + {FFT_EXTRA_GUARD})",
            per_layer=True,
        ),
        "ifft_guard": Option(
            IFFT_GUARD,
            int_in(0, 16),
            "circulant layers: inverse FFT guard bits Gy below the accumulator LSB",
            per_layer=True,
        ),
    }

    def apply(self, graph: Graph, ctx) -> Graph:
        _check_lowerable(graph)
        opts = ctx.options(self.name)
        from compiler.exec import torch as torch_exec  # torch is heavy; load only when lowering

        acts = torch_exec.intermediates(graph, ctx.data.x_train[: opts["calibration_samples"]])
        lowered = _Lowering(graph, ctx, acts, opts["activation_bits"]).build()
        _measure_circulant(lowered, ctx.data, opts["calibration_samples"])
        _measure_narrowed(graph, lowered, ctx.data)
        return lowered


def _check_lowerable(graph: Graph) -> None:
    body = _body(graph)
    norms = [f"{n.name!r}" for n in body if n.op == "batchnorm"]
    if norms:
        raise PassError(
            f"lower: batch normalization {', '.join(norms)} follows no conv/dense layer it could be "
            "folded into (canonicalize folds it only right after one), so it has no integer form"
        )
    bad = [f"{n.name!r} ({n.op})" for n in body if n.op not in LOWERABLE_OPS]
    if bad:
        raise PassError(
            f"lower: cannot lower node(s) {', '.join(bad)}; run canonicalize first "
            "(a bias add that does not follow a dense or conv layer is not supported)"
        )
    uneven = [
        f"{n.name!r} (stride {n.attrs['stride']})"
        for n in body
        if n.op in ("conv2d", "maxpool2d", "avgpool2d") and len(set(n.attrs["stride"])) > 1
    ]
    if uneven:
        raise PassError(
            f"lower: {', '.join(uneven)}: the line-buffered engines step both axes alike; strides must be equal"
        )
    if not any(n.op in ("dense", "conv2d") for n in body):
        raise PassError("lower: the graph has no dense or conv layer")


def _body(graph: Graph) -> list[Node]:
    """The nodes before a trailing softmax / log_softmax."""
    nodes = list(graph.nodes)
    while nodes and nodes[-1].op in SOFTMAX_OPS:
        nodes.pop()
    return nodes


def choose_format(values: np.ndarray, bits: int, max_frac: int | None = None) -> FixedPoint:
    """Power-of-two format for `values`: the covering format or one with up to 2 more fractional
    bits (clipping rare outliers), whichever has the least mean squared error."""
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    if peak == 0.0:
        f0 = bits - 1
    else:
        f0 = math.floor(math.log2(((1 << (bits - 1)) - 0.5) / peak))
    candidates = [f0, f0 + 1, f0 + 2]
    if max_frac is not None:
        candidates = sorted({min(f, max_frac) for f in candidates})
    sample = np.asarray(values, dtype=np.float32).ravel()
    errors = [
        float(np.mean((kernels.dequantize(kernels.quantize(sample, f, bits), f) - sample) ** 2)) if sample.size else 0.0
        for f in candidates
    ]
    return FixedPoint(bits, candidates[int(np.argmin(errors))])


def weight_format(w: np.ndarray, bits: int) -> FixedPoint:
    peak = float(np.max(np.abs(w), initial=0.0))
    frac = bits - 1 if peak == 0 else math.floor(math.log2(((1 << (bits - 1)) - 0.5) / peak))
    return FixedPoint(bits, frac)


class _Lowering:
    """Walks the float body once, emitting integer nodes and tracking the current tensor's format."""

    def __init__(self, graph: Graph, ctx, acts: dict, act_bits: int):
        self.graph, self.ctx, self.acts, self.act_bits = graph, ctx, acts, act_bits
        self.nodes: list[Node] = []
        self.params: dict[str, np.ndarray] = {}
        self.cur: str = ""
        self.cur_fmt = FixedPoint(act_bits, 0)  # the input's, once build() has quantized it
        self.cur_is_acc = False
        self.cur_shape: tuple[int, ...] = ()
        self.flattened_chw: list[int] | None = None  # [C, H, W] when the current tensor is a flattened image
        self.flatten_node: Node | None = None  # the integer flatten that made it
        self.narrowed: dict[str, dict] = {}  # layer -> the narrower weights _fit_accumulator chose

    def build(self) -> Graph:
        src = self.graph.inputs[0]
        in_fmt = _quant_format(self.graph, (src.name,)) or _checked_activation_format(
            self.acts[src.name], self.act_bits, f"the input {src.name!r}"
        )
        self.cur_shape = tuple(src.shape)
        self._emit(
            Node("quantize", "quantize_input", [src.name], [f"{src.name}_q"], attrs={"format": in_fmt.to_dict()}),
            in_fmt,
            is_acc=False,
        )
        for node in _body(self.graph):
            getattr(self, f"_lower_{node.op}")(node)
        out_frac = self.cur_fmt.frac
        self.nodes.append(Node("dequantize", "dequantize_output", [self.cur], ["logits"], attrs={"frac": out_frac}))
        n_classes = int(np.prod(self.graph.outputs[0].shape))
        meta = dict(
            self.graph.meta,
            integer=True,
            input_format=in_fmt.to_dict(),
            output_format=self.cur_fmt.to_dict(),
            output_activation=self.graph.nodes[-1].op if self.graph.nodes[-1].op.endswith("softmax") else None,
        )
        if (kind := binary_output(self.graph)) is not None:
            meta["binary_output"] = kind  # class = output >= 0.5 (probability) or >= 0 (logit)
        return Graph(
            inputs=[TensorSpec(src.name, src.shape, "float32")],
            outputs=[TensorSpec("logits", (n_classes,), "float32")],
            nodes=self.nodes,
            params=self.params,
            meta=meta,
        )

    def _emit(self, node: Node, fmt: FixedPoint, is_acc: bool, shape: tuple[int, ...] | None = None) -> None:
        self.nodes.append(node)
        self.cur, self.cur_fmt, self.cur_is_acc = node.outputs[0], fmt, is_acc
        if shape is not None:
            self.cur_shape = tuple(int(d) for d in shape)

    def _float_shape(self, tensor: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.acts[tensor].shape[1:])

    def _lower_flatten(self, node: Node) -> None:
        self.flattened_chw = list(self.cur_shape) if len(self.cur_shape) == 3 else None
        self.flatten_node = Node("flatten", node.name, [self.cur], [node.outputs[0]])
        self._emit(
            self.flatten_node,
            self.cur_fmt,
            self.cur_is_acc,
            shape=(int(np.prod(self.cur_shape)),),
        )

    def _lower_relu(self, node: Node) -> None:
        self._requantize(node.name, node.outputs[0], relu=True)

    def _to_activation(self, node: Node) -> None:
        """An accumulator feeding another layer or a pool comes back to activation width first."""
        if self.cur_is_acc:
            self._requantize(f"{node.name}.input", f"{node.inputs[0]}_q", relu=False)

    def _quantize_layer(self, node: Node, opts: dict, force_bias: bool = False) -> tuple[list, dict, tuple]:
        """Weights on their grid, bias at the accumulator's scale; the layer's inputs and attrs."""
        w = self.graph.params[node.inputs[1]]
        b = self.graph.params[node.inputs[2]] if len(node.inputs) > 2 else None
        x_fmt = self.cur_fmt
        _check_finite(node, w, b)
        w_q, w_fmt = _quantize_weights(node, w, opts["weight_bits"])
        w_q, w_fmt = self._fit_accumulator(node, w, b, w_q, w_fmt, x_fmt)
        acc_frac = w_fmt.frac + x_fmt.frac
        _check_layer_scale(node, w, b, w_fmt, x_fmt)
        inputs = [self.cur, f"{node.name}.weight_q"]
        self.params[inputs[1]] = w_q.astype(np.int32)
        b_q = None
        if b is not None or force_bias:
            b_f = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
            b_q = kernels.round_half_even(b_f * 2.0**acc_frac).astype(np.int64)
            inputs.append(f"{node.name}.bias_q")
            self.params[inputs[2]] = b_q
        attrs = {"input_format": x_fmt.to_dict(), "weight_format": w_fmt.to_dict(), "acc_frac": acc_frac}
        return inputs, attrs, (w_q, b_q)

    def _fit_accumulator(
        self, node: Node, w: np.ndarray, b: np.ndarray | None, w_q: np.ndarray, w_fmt: FixedPoint, x_fmt: FixedPoint
    ) -> tuple[np.ndarray, FixedPoint]:
        """Narrower weights where the accumulator would exceed MAX_ACC_BITS: one weight bit fewer
        (one fractional bit fewer) at a time down to 2 bits, then coarser 2-bit steps, until it
        fits. Recorded in self.narrowed (the node's annotations and the report); refused when no
        weight would be left nonzero (the bias alone is too large) or a format leaves mpc's range."""
        need = _acc_bits_bound(w_q, b, w_fmt.frac + x_fmt.frac, x_fmt.bits)
        if need <= MAX_ACC_BITS:
            return w_q, w_fmt
        first, fmt, q = need, w_fmt, w_q
        while need > MAX_ACC_BITS:
            nxt = weight_format(w, fmt.bits - 1) if fmt.bits > 2 else FixedPoint(2, fmt.frac - 1)
            fmt = nxt if nxt.frac < fmt.frac else FixedPoint(nxt.bits, fmt.frac - 1)
            q = kernels.saturate(kernels.round_half_even(w.astype(np.float64) * 2.0**fmt.frac), fmt.bits)
            if not np.any(q) or fmt.frac < -MAX_FRAC or fmt.frac + x_fmt.frac < -MAX_FRAC:
                _check_layer_scale(node, w, b, w_fmt, x_fmt)  # names the bias, when it is the reason
                raise PassError(
                    f"lower: layer {node.name!r} needs a {first}-bit accumulator; at most {MAX_ACC_BITS} are "
                    "supported, and no narrower weight format leaves a nonzero weight (rescale the model)"
                )
            need = _acc_bits_bound(q, b, fmt.frac + x_fmt.frac, x_fmt.bits)
        self.narrowed[node.name] = {
            "needed_acc_bits": first,
            "max_acc_bits": MAX_ACC_BITS,
            "weight_format_from": w_fmt.to_dict(),
            "weight_format_to": fmt.to_dict(),
        }
        return q.astype(np.int64), fmt

    def _carried_annotations(self, node: Node) -> dict:
        """What earlier passes learned, less admm's weight grid (now the node's weight_format attr),
        plus `narrowed` where lower chose narrower weights to fit the accumulator."""
        carried = {k: v for k, v in node.annotations.items() if k != "weight_format"}
        if node.name in self.narrowed:
            carried["narrowed"] = self.narrowed[node.name]
        return carried

    def _lower_conv2d(self, node: Node) -> None:
        self._to_activation(node)
        opts = self.ctx.layer_options("lower", node.name)
        inputs, attrs, (w_q, b_q) = self._quantize_layer(node, opts)
        acc_bits = _checked_acc_bits(node, kernels.conv_accumulator_bits(w_q, b_q, self.cur_fmt.bits))
        out_shape = self._float_shape(node.outputs[0])
        if (circulant := _conv_circulant(node, w_q)) is not None:
            attrs["circulant"] = circulant
        attrs |= {
            "kernel": list(node.attrs["kernel"]),
            "stride": int(node.attrs["stride"][0]),
            "pads": list(node.attrs["pads"]),
            "acc_bits": acc_bits,
            "in_shape": list(self.cur_shape),
            "out_shape": list(out_shape),
        }
        self._emit(
            Node(
                "conv2d", node.name, inputs, [node.outputs[0]], attrs=attrs, annotations=self._carried_annotations(node)
            ),
            FixedPoint(acc_bits, attrs["acc_frac"]),
            is_acc=True,
            shape=out_shape,
        )

    def _lower_pool(self, node: Node) -> None:
        """Pools keep their input's format exactly (max picks an element; average rounds the
        mean, which lies within the input's range)."""
        self._to_activation(node)
        out_shape = self._float_shape(node.outputs[0])
        if node.op == "global_avgpool":
            window = {"kernel": list(self.cur_shape[1:]), "stride": 1, "pads": [0, 0, 0, 0]}
        else:
            window = {
                "kernel": list(node.attrs["kernel"]),
                "stride": int(node.attrs["stride"][0]),
                "pads": list(node.attrs["pads"]),
            }
            if node.op == "avgpool2d":
                window["count_include_pad"] = bool(node.attrs["count_include_pad"])
        attrs = window | {
            "format": self.cur_fmt.to_dict(),
            "in_shape": list(self.cur_shape),
            "out_shape": list(out_shape),
        }
        self._emit(
            Node(node.op, node.name, [self.cur], [node.outputs[0]], attrs=attrs),
            self.cur_fmt,
            is_acc=False,
            shape=out_shape,
        )

    _lower_maxpool2d = _lower_avgpool2d = _lower_global_avgpool = _lower_pool

    def _lower_activation(self, node: Node) -> None:
        """An activation (docs/fixed-point.md "table"): an accumulator is requantized to the
        calibrated format of the activation's input first; then a `table` maps every input code
        to the calibrated output format (relu stays the requantize's fused ReLU)."""
        self._to_activation(node)
        attrs = dict(node.attrs)
        if node.op == "prelu":
            slope = np.asarray(self.graph.params[node.inputs[1]], dtype=np.float64).ravel()
            if slope.size == 0 or np.any(slope != slope[0]):
                raise PassError(
                    f"lower: PRelu {node.name!r} has {slope.size} different slopes (one per channel); "
                    "only a single slope is supported (one table per activation)"
                )
            attrs["slope"] = float(slope[0])
        in_fmt = self.cur_fmt
        out_fmt = _checked_activation_format(self.acts[node.outputs[0]], self.act_bits, f"the output of {node.name!r}")
        table = activation_table(node.op, attrs, in_fmt.bits, in_fmt.frac, out_fmt.bits, out_fmt.frac)
        self.params[f"{node.name}.table"] = table.astype(np.int32)
        attrs = {
            "function": node.op,
            "function_attrs": attrs,
            "input_format": in_fmt.to_dict(),
            "format": out_fmt.to_dict(),
            "shape": list(self.cur_shape),
        }
        table_node = Node("table", node.name, [self.cur, f"{node.name}.table"], [node.outputs[0]], attrs=attrs)
        self._emit(table_node, out_fmt, is_acc=False)

    _lower_sigmoid = _lower_tanh = _lower_leaky_relu = _lower_prelu = _lower_elu = _lower_activation
    _lower_selu = _lower_hard_sigmoid = _lower_hard_swish = _lower_clip = _lower_activation

    def _lower_dense(self, node: Node) -> None:
        self._to_activation(node)  # e.g. two dense layers in a row
        opts = self.ctx.layer_options("lower", node.name)
        block = _circulant_block(node, self.ctx.layer_options("plan", node.name)["engine"])
        # a circulant node always has a bias input (zeros if none)
        inputs, attrs, (w_q, b_q) = self._quantize_layer(node, opts, force_bias=bool(block))
        x_fmt, acc_frac = self.cur_fmt, attrs["acc_frac"]
        if self.flattened_chw:
            chw, self.flattened_chw = self.flattened_chw, None
            if block and stream_reorders(chw):
                w_q = self._stream_order_input(node, chw, inputs[1], w_q)
            else:
                attrs["input_chw"] = chw  # its input is an image streamed channel-last
        annotations = self._carried_annotations(node)
        op = "dense"
        if block:
            op = "circulant"
            layer = _plan_circulant_layer(node, w_q, b_q, block, x_fmt.bits, opts)
            acc_bits = layer.acc_bits
            inputs += [f"{node.name}.spectra_re", f"{node.name}.spectra_im"]
            self.params[inputs[3]], self.params[inputs[4]] = layer.spectra_re, layer.spectra_im
            attrs["circulant"] = layer.attrs()
        else:
            acc_bits = kernels.dense_accumulator_bits(w_q, b_q, x_fmt.bits)
        attrs["acc_bits"] = _checked_acc_bits(node, acc_bits)
        self._emit(
            Node(op, node.name, inputs, [node.outputs[0]], attrs=attrs, annotations=annotations),
            FixedPoint(acc_bits, acc_frac),
            is_acc=True,
            shape=(w_q.shape[0],),
        )

    def _stream_order_input(self, node: Node, chw: list[int], weight: str, w_q: np.ndarray) -> np.ndarray:
        """A block-circulant layer after a flatten of a [C, H, W] image the hardware streams
        channel-last: the `circulant` pass made its stream-order matrix block-circulant
        (annotations["circulant"]["input_chw"]), so the integer flatten emits the channel-last
        order (attr `order` = "hwc") and the layer stores its columns in that order: the same
        products, and a weight matrix the FFT engine takes as it is."""
        made = node.annotations.get("circulant", {}).get("input_chw")
        if made is None or list(made) != list(chw):
            how = "in the graph's row-major column order" if made is None else f"for a {list(made)} image"
            raise PassError(
                f"lower: layer {node.name!r} was made block-circulant {how}, but reads a flattened "
                f"{chw} image, which the hardware streams channel-last: run the circulant pass on this "
                "graph again (it defines the structure in stream order), or give the layer block_size = 1"
            )
        assert self.flatten_node is not None
        self.flatten_node.attrs["order"] = "hwc"
        w_s = stream_weight_matrix(w_q, chw)
        self.params[weight] = w_s.astype(np.int32)
        return w_s

    def _requantize(self, name: str, out: str, relu: bool) -> None:
        """acc (or an activation, for a standalone relu) -> calibrated activation format."""
        src_frac = self.cur_fmt.frac
        float_name = out if out in self.acts else self.cur
        fmt = _quant_format(self.graph, (out, float_name), max_frac=src_frac) or _checked_activation_format(
            self.acts[float_name], self.act_bits, f"the output of {name!r}", max_frac=src_frac
        )
        if src_frac - fmt.frac > MAX_SHIFT:
            raise PassError(
                f"lower: {name!r}: requantizing its accumulator (steps of 2**{-src_frac}) to its calibrated "
                f"output format Q({fmt.bits}, {fmt.frac}) shifts by {src_frac - fmt.frac} bits; at most "
                f"{MAX_SHIFT} are supported (the layer's outputs are far larger than its weights' and "
                "inputs' steps: rescale the model)"
            )
        attrs = {"shift": src_frac - fmt.frac, "bits": fmt.bits, "relu": relu, "out_frac": fmt.frac}
        self._emit(Node("requantize", name, [self.cur], [out], attrs=attrs), fmt, is_acc=False)


def _quant_format(graph: Graph, tensors: tuple[str, ...], max_frac: int | None = None) -> FixedPoint | None:
    """The activation format a QONNX Quant fixed for one of `tensors` (compiler/frontend/qonnx.py),
    instead of calibration; its frac capped at `max_frac` (a requantize never shifts left)."""
    fixed = graph.meta.get("qonnx", {}).get("activations", {})
    name = next((t for t in tensors if t in fixed), None)
    if name is None:
        return None
    fmt = FixedPoint.from_dict(fixed[name])
    return fmt if max_frac is None or fmt.frac <= max_frac else FixedPoint(fmt.bits, max_frac)


def _frac_range(bits: int) -> tuple[float, float]:
    """The largest magnitudes a power-of-two format of `bits` covers with frac MAX_FRAC and
    -MAX_FRAC: a tensor's peak must lie between them."""
    top = (1 << (bits - 1)) - 0.5
    return top * 2.0 ** -(MAX_FRAC + 1), top * 2.0**MAX_FRAC


def _checked_activation_format(values: np.ndarray, bits: int, what: str, max_frac: int | None = None) -> FixedPoint:
    """choose_format, refusing values no format of mpc can hold (NaN/Inf, or beyond 2**±MAX_FRAC steps)."""
    if values.size and not np.all(np.isfinite(values)):
        raise PassError(
            f"lower: {what}: the float model's values on the calibration data (x_train) reach NaN or Inf "
            "(weights or inputs too large for float32?)"
        )
    fmt = choose_format(values, bits, max_frac)
    if abs(fmt.frac) > MAX_FRAC:
        lo, hi = _frac_range(bits)
        peak = float(np.max(np.abs(values)))
        raise PassError(
            f"lower: {what}: calibrated values up to {peak:.3g} need the format Q({bits}, {fmt.frac}); "
            f"mpc's formats have |frac| <= {MAX_FRAC}, so a tensor's largest value must lie in "
            f"[{lo:.3g}, {hi:.3g}] (rescale the model or the data)"
        )
    return fmt


def _check_finite(node: Node, w: np.ndarray, b: np.ndarray | None) -> None:
    for what, v in (("weights", w), ("biases", b)):
        if v is not None and not np.all(np.isfinite(v)):
            raise PassError(f"lower: layer {node.name!r}: its {what} contain NaN or Inf")


def _check_layer_scale(node: Node, w: np.ndarray, b: np.ndarray | None, w_fmt: FixedPoint, x_fmt: FixedPoint) -> None:
    """The layer's weights and biases must fit the formats mpc has: a weight format with
    |frac| <= MAX_FRAC, an accumulator scale 2**-(w_frac + x_frac) within the same range, and
    biases at that scale within the MAX_ACC_BITS-bit accumulator."""
    peak = float(np.max(np.abs(w), initial=0.0))
    acc_frac = w_fmt.frac + x_fmt.frac
    if abs(w_fmt.frac) > MAX_FRAC:
        lo, hi = _frac_range(w_fmt.bits)
        raise PassError(
            f"lower: layer {node.name!r}: its largest weight {peak:.3g} needs the format "
            f"Q({w_fmt.bits}, {w_fmt.frac}); mpc's formats have |frac| <= {MAX_FRAC}, so a layer's largest "
            f"weight must lie in [{lo:.3g}, {hi:.3g}] (rescale the model's weights)"
        )
    if abs(acc_frac) > MAX_FRAC:
        raise PassError(
            f"lower: layer {node.name!r}: weights in Q({w_fmt.bits}, {w_fmt.frac}) times inputs in "
            f"Q({x_fmt.bits}, {x_fmt.frac}) give an accumulator with steps of 2**{-acc_frac}; mpc's formats "
            f"have |frac| <= {MAX_FRAC} (largest weight {peak:.3g}: rescale the model's weights)"
        )
    b_peak = float(np.max(np.abs(b), initial=0.0)) if b is not None else 0.0
    limit = 2.0 ** (MAX_ACC_BITS - 1)
    if b_peak * 2.0**acc_frac >= limit - 0.5:
        raise PassError(
            f"lower: layer {node.name!r}: its largest bias {b_peak:.3g} does not fit the "
            f"{MAX_ACC_BITS}-bit accumulator at the layer's scale 2**{-acc_frac} (weights Q({w_fmt.bits}, "
            f"{w_fmt.frac}) times inputs Q({x_fmt.bits}, {x_fmt.frac})), which holds biases below "
            f"{(limit - 0.5) * 2.0**-acc_frac:.3g}: the biases are too large for the weights"
        )


def _checked_acc_bits(node: Node, acc_bits: int) -> int:
    if acc_bits > MAX_ACC_BITS:
        raise PassError(
            f"lower: layer {node.name!r} needs a {acc_bits}-bit accumulator; at most "
            f"{MAX_ACC_BITS} are supported (use fewer weight/activation bits)"
        )
    return acc_bits


def _acc_bits_bound(w_q: np.ndarray, b: np.ndarray | None, acc_frac: int, in_bits: int) -> int:
    """The accumulator width of docs/fixed-point.md (kernels.dense_accumulator_bits, per output
    row of a dense or conv weight) in float64, so that a bias far beyond int64 is measured, not
    wrapped: exact wherever it decides (below 2**53)."""
    rows = np.abs(np.asarray(w_q, dtype=np.float64)).reshape(len(w_q), -1).sum(axis=1)
    worst = rows * float(1 << (in_bits - 1))
    if b is not None:
        worst = worst + np.abs(np.rint(np.asarray(b, dtype=np.float64).reshape(-1) * 2.0**acc_frac))
    peak = float(np.max(worst, initial=0.0))
    return math.ceil(math.log2(peak + 1)) + 1


def _circulant_block(node: Node, engine: str) -> int | None:
    """The block size of a layer to lower as a `circulant` node, or None (a `dense` node): the
    plan's `engine` option dense or sparse asks for its exact product on that engine instead."""
    block = int(node.annotations.get("block_size", 1))
    if block <= 1 or engine in ("dense", "sparse"):
        return None  # not circulant, or the recipe asks for the exact product on another engine
    return block


def _conv_circulant(node: Node, w_q: np.ndarray) -> dict | None:
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


def _plan_circulant_layer(node: Node, w_q: np.ndarray, b_q: np.ndarray, block: int, in_bits: int, opts: dict):
    """Spectra, shifts and widths of a block-circulant layer (kernels.circulant_mac.plan_circulant)."""
    n_out, n_in = w_q.shape
    try:
        vectors = circulant_vectors(w_q, block)
    except ValueError:
        raise PassError(
            f"lower: layer {node.name!r} was made block-circulant (block size {block}) but its "
            "weights are no longer: a pass after circulant changed them (admm? run it before "
            "circulant, giving that layer block_size = 1)"
        ) from None
    guard = None if opts["fft_guard"] == "auto" else opts["fft_guard"]
    try:
        return plan_circulant(
            vectors,
            b_q,
            n_in,
            n_out,
            in_bits=in_bits,
            twiddle_frac=opts["twiddle_frac"],
            spectrum_bits=opts["spectrum_bits"],
            fft_guard=guard,
            ifft_guard=opts["ifft_guard"],
        )
    except ValueError as e:
        raise PassError(f"lower: circulant layer {node.name!r}: {e}") from None


def _quantize_weights(node: Node, w: np.ndarray, bits: int) -> tuple[np.ndarray, FixedPoint]:
    """Round weights onto Q(bits, f); keep admm's grid exactly where it set one."""
    fixed = node.annotations.get("weight_format")
    if fixed is not None:
        fmt = FixedPoint.from_dict(fixed)
        scaled = w.astype(np.float64) * 2.0**fmt.frac
        w_q = np.rint(scaled)
        if (
            np.max(np.abs(scaled - w_q), initial=0.0) > 1e-3
            or w_q.min(initial=0) < fmt.min_int
            or w_q.max(initial=0) > fmt.max_int
        ):
            raise PassError(
                f"lower: layer {node.name!r} claims weight format {fixed} but its weights are off that grid"
            )
        return w_q.astype(np.int64), fmt
    fmt = weight_format(w, bits)
    w_q = kernels.saturate(kernels.round_half_even(w.astype(np.float64) * 2.0**fmt.frac), bits)
    return w_q.astype(np.int64), fmt


def _measure_circulant(graph: Graph, data, calibration_samples: int) -> None:
    """The fixed-point FFT's accuracy cost, per circulant layer, in its annotations:
    `fft_error` = kernels.circulant_error (accumulator LSBs against the exact integer product) on
    the layer's integer inputs from the calibration rows of x_train and from x_test, and
    `test_accuracy_exact_product` = the integer graph's test accuracy with this layer's exact
    product in place of its FFT (the graph's own accuracy is the FFT's)."""
    circulant = [n for n in graph.nodes if n.op == "circulant"]
    if not circulant or data is None:
        return
    names = {n.name for n in circulant}
    splits = {"calibration": data.x_train[:calibration_samples], "test": data.x_test}
    inputs: dict[str, dict] = {}
    for split, x in splits.items():
        inputs[split] = {}
        golden.run_integer(graph, golden.quantize_input(graph, x), record=inputs[split])
    for node in circulant:
        layer = golden.circulant_layer(graph, node)
        node.annotations["fft_error"] = {
            split: circulant_error(inputs[split][node.name], layer) | {"samples": len(splits[split])}
            for split in splits
        }
        exact = golden.run(graph, data.x_test, exact={node.name})
        node.annotations["test_accuracy_exact_product"] = float(np.mean(exact.classes == data.y_test))
    graph.meta["circulant_test_accuracy_exact_product"] = float(
        np.mean(golden.run(graph, data.x_test, exact=names).classes == data.y_test)
    )


def _flatten_order(graph: Graph, node: Node) -> str:
    """The `order` of the integer flatten a layer reads (through elementwise nodes), or
    "row-major" (also when it reads no flatten)."""
    producers = {t: n for n in graph.nodes for t in n.outputs}
    tensor = node.inputs[0]
    while (src := producers.get(tensor)) is not None and src.op in ("requantize", "table", "flatten"):
        if src.op == "flatten":
            return src.attrs.get("order", "row-major")
        tensor = src.inputs[0]
    return "row-major"


def _measure_narrowed(float_graph: Graph, lowered: Graph, data) -> None:
    """The accuracy cost of each layer whose weights lower narrowed to fit MAX_ACC_BITS, in its
    `narrowed` annotation: the float model's test accuracy, and the same with only this layer's
    weights on the narrower grid. All of them also go to meta["narrowed_layers"] (the report)."""
    narrowed = [n for n in lowered.nodes if "narrowed" in n.annotations]
    if not narrowed:
        return
    from compiler.exec import torch as torch_exec

    def accuracy(graph: Graph) -> float | None:
        if data is None or not len(data.x_test):
            return None
        return float(np.mean(np.argmax(torch_exec.run(graph, data.x_test), axis=1) == data.y_test))

    base = accuracy(float_graph)
    for node in narrowed:
        info = node.annotations["narrowed"]
        weight = next(n for n in float_graph.nodes if n.name == node.name).inputs[1]
        trial = float_graph.copy()
        frac = info["weight_format_to"]["frac"]
        w_q = lowered.params[node.inputs[1]]
        if _flatten_order(lowered, node) == "hwc":  # stored in stream order: back to the graph's
            w_q = unstream(w_q, stream_order(w_q.shape, node.annotations["circulant"]["input_chw"]))
        trial.params[weight] = (w_q * 2.0**-frac).astype(np.float32)
        info["float_test_accuracy"] = base
        info["float_test_accuracy_narrowed"] = accuracy(trial)
    lowered.meta["narrowed_layers"] = {n.name: n.annotations["narrowed"] for n in narrowed}
