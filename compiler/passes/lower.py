"""lower: calibrated post-training quantization to the integer graph of docs/fixed-point.md.

Float graph (dense, conv2d, pools, relu, flatten, trailing softmax) -> integer graph:

    quantize -> [conv2d -> requantize(+relu) -> [pool] -> ...] -> [flatten] -> dense
             -> requantize(+relu) -> ... -> dense -> dequantize

A conv2d is lowered as a dense layer is (one weight format per layer, bias at the accumulator's
scale, an accumulator that cannot overflow); pools work on activations, so an accumulator is
requantized before one, and keep their input's format exactly. The dense layer after a flatten
of a [C, H, W] tensor records `input_chw`: the hardware streams that tensor channel-last, so its
engine stores the columns permuted (cost.stream_weight_matrix).

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
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

import kernels
from compiler import cost
from compiler.exec import golden
from compiler.ir import FixedPoint, Graph, Node, TensorSpec
from compiler.passes.base import Option, Pass, PassError, int_in, one_of, register
from kernels.circulant_mac import (FFT_EXTRA_GUARD, IFFT_GUARD, SPECTRUM_BITS, TWIDDLE_FRAC,
                                   circulant_error, circulant_vectors, plan_circulant)
from kernels.circulant_rom import bias_bits

MAX_ONNX_ACC_BITS = 32  # MatMulInteger accumulates in int32
POOL_OPS = ("maxpool2d", "avgpool2d", "global_avgpool")
LOWERABLE_OPS = ("dense", "relu", "flatten", "conv2d", *POOL_OPS)


def _auto_or(check):
    return lambda v: None if v == "auto" else (None if check(v) is None else f"{check(v)} (or \"auto\")")


@register
class Lower(Pass):
    name = "lower"
    needs_data = True
    options = {
        "weight_bits": Option(8, int_in(2, 8), "bits per weight (ignored where admm fixed them)", per_layer=True),
        "activation_bits": Option(8, int_in(2, 8), "bits per activation"),
        "calibration_samples": Option(2048, int_in(1, 10**7), "rows of x_train used to calibrate activations"),
        "multipliers": Option(16, int_in(1, 4096),
                              "parallel multipliers of the largest layer as a dense engine: sets the cycle budget "
                              "every layer is balanced to; per layer: that layer's exact count", per_layer=True),
        "engine": Option("auto", one_of("auto", "dense", "sparse"),
                         "hardware engine: auto gives block-circulant layers (circulant pass) the FFT engine and "
                         "picks sparse for the others where it needs fewer ROM bits and no more cycles; dense or "
                         "sparse on a block-circulant layer computes its exact product with that engine instead",
                         per_layer=True),
        # Precision of the fixed-point FFT of block-circulant layers (docs/fixed-point.md,
        # "Block-circulant layers": T, SB, G, Gy). More bits: smaller FFT error, wider datapath.
        "twiddle_frac": Option(TWIDDLE_FRAC, int_in(2, 30),
                               "circulant layers: fractional bits T of the FFT twiddles, stored in Q(T+2, T)",
                               per_layer=True),
        "spectrum_bits": Option(SPECTRUM_BITS, int_in(2, 32),
                                "circulant layers: bits of each stored weight-spectrum component (real, imaginary)",
                                per_layer=True),
        "fft_guard": Option("auto", _auto_or(int_in(0, 24)),
                            f"circulant layers: forward FFT guard bits G (auto: log2(b) + {FFT_EXTRA_GUARD})",
                            per_layer=True),
        "ifft_guard": Option(IFFT_GUARD, int_in(0, 16),
                             "circulant layers: inverse FFT guard bits Gy below the accumulator LSB", per_layer=True),
    }

    def run(self, graph: Graph, ctx) -> Graph:
        if graph.is_integer:
            raise PassError("lower: the graph is already an integer graph")
        _check_lowerable(graph)
        opts = ctx.options(self.name)
        from compiler.exec import torch as torch_exec  # torch is heavy; load only when lowering
        acts = torch_exec.intermediates(graph, ctx.data.x_train[: opts["calibration_samples"]])
        lowered = _Lowering(graph, ctx, acts, opts["activation_bits"]).build()
        _plan_hardware(lowered, ctx)
        _measure_circulant(lowered, ctx.data, opts["calibration_samples"])
        return lowered


def _check_lowerable(graph: Graph) -> None:
    body = _body(graph)
    norms = [f"{n.name!r}" for n in body if n.op == "batchnorm"]
    if norms:
        raise PassError(f"lower: batch normalization {', '.join(norms)} follows no conv/dense layer it could be "
                        "folded into (canonicalize folds it only right after one), so it has no integer form")
    bad = [f"{n.name!r} ({n.op})" for n in body if n.op not in LOWERABLE_OPS]
    if bad:
        raise PassError(f"lower: cannot lower node(s) {', '.join(bad)}; run canonicalize first "
                        "(a bias add that does not follow a dense or conv layer is not supported)")
    uneven = [f"{n.name!r} (stride {n.attrs['stride']})" for n in body
              if n.op in ("conv2d", "maxpool2d", "avgpool2d") and len(set(n.attrs["stride"])) > 1]
    if uneven:
        raise PassError(f"lower: {', '.join(uneven)}: the line-buffered engines step both axes alike; "
                        "strides must be equal")
    if not any(n.op in ("dense", "conv2d") for n in body):
        raise PassError("lower: the graph has no dense or conv layer")


def _body(graph: Graph) -> list[Node]:
    """The nodes before a trailing softmax / log_softmax."""
    nodes = list(graph.nodes)
    while nodes and nodes[-1].op in ("softmax", "log_softmax"):
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
    errors = [float(np.mean((kernels.dequantize(kernels.quantize(sample, f, bits), f) - sample) ** 2))
              if sample.size else 0.0 for f in candidates]
    return FixedPoint(bits, candidates[int(np.argmin(errors))])


def weight_format(w: np.ndarray, bits: int) -> FixedPoint:
    peak = float(np.max(np.abs(w)))
    frac = bits - 1 if peak == 0 else math.floor(math.log2(((1 << (bits - 1)) - 0.5) / peak))
    return FixedPoint(bits, frac)


class _Lowering:
    """Walks the float body once, emitting integer nodes and tracking the current tensor's format."""

    def __init__(self, graph: Graph, ctx, acts: dict, act_bits: int):
        self.graph, self.ctx, self.acts, self.act_bits = graph, ctx, acts, act_bits
        self.nodes: list[Node] = []
        self.params: dict[str, np.ndarray] = {}
        self.cur: str = ""
        self.cur_fmt: FixedPoint | None = None
        self.cur_is_acc = False
        self.cur_shape: tuple[int, ...] = ()
        self.flattened_chw: list[int] | None = None   # [C, H, W] when the current tensor is a flattened image

    def build(self) -> Graph:
        src = self.graph.inputs[0]
        in_fmt = choose_format(self.acts[src.name], self.act_bits)
        self.cur_shape = tuple(src.shape)
        self._emit(Node("quantize", "quantize_input", [src.name], [f"{src.name}_q"],
                        attrs={"format": in_fmt.to_dict()}), in_fmt, is_acc=False)
        for node in _body(self.graph):
            getattr(self, f"_lower_{node.op}")(node)
        out_frac = self.cur_fmt.frac
        self.nodes.append(Node("dequantize", "dequantize_output", [self.cur], ["logits"], attrs={"frac": out_frac}))
        n_classes = int(np.prod(self.graph.outputs[0].shape))
        meta = dict(self.graph.meta, integer=True, input_format=in_fmt.to_dict(),
                    output_format=self.cur_fmt.to_dict(),
                    output_activation=self.graph.nodes[-1].op if self.graph.nodes[-1].op.endswith("softmax") else None)
        return Graph(inputs=[TensorSpec(src.name, src.shape, "float32")],
                     outputs=[TensorSpec("logits", (n_classes,), "float32")],
                     nodes=self.nodes, params=self.params, meta=meta)

    def _emit(self, node: Node, fmt: FixedPoint, is_acc: bool, shape: tuple[int, ...] | None = None) -> None:
        self.nodes.append(node)
        self.cur, self.cur_fmt, self.cur_is_acc = node.outputs[0], fmt, is_acc
        if shape is not None:
            self.cur_shape = tuple(int(d) for d in shape)

    def _float_shape(self, tensor: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.acts[tensor].shape[1:])

    def _lower_flatten(self, node: Node) -> None:
        self.flattened_chw = list(self.cur_shape) if len(self.cur_shape) == 3 else None
        self._emit(Node("flatten", node.name, [self.cur], [node.outputs[0]]), self.cur_fmt, self.cur_is_acc,
                   shape=(int(np.prod(self.cur_shape)),))

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
        w_q, w_fmt = _quantize_weights(node, w, opts["weight_bits"])
        acc_frac = w_fmt.frac + x_fmt.frac
        inputs = [self.cur, f"{node.name}.weight_q"]
        self.params[inputs[1]] = w_q.astype(np.int32)
        b_q = None
        if b is not None or force_bias:
            b_f = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
            b_q = kernels.round_half_even(b_f * 2.0 ** acc_frac).astype(np.int64)
            inputs.append(f"{node.name}.bias_q")
            self.params[inputs[2]] = b_q
        attrs = {"input_format": x_fmt.to_dict(), "weight_format": w_fmt.to_dict(), "acc_frac": acc_frac}
        return inputs, attrs, (w_q, b_q)

    @staticmethod
    def _carried_annotations(node: Node) -> dict:
        """What earlier passes learned, less admm's weight grid (now the node's weight_format attr)."""
        return {k: v for k, v in node.annotations.items() if k != "weight_format"}

    def _lower_conv2d(self, node: Node) -> None:
        self._to_activation(node)
        opts = self.ctx.layer_options("lower", node.name)
        inputs, attrs, (w_q, b_q) = self._quantize_layer(node, opts)
        acc_bits = _checked_acc_bits(node, kernels.conv_accumulator_bits(w_q, b_q, self.cur_fmt.bits))
        out_shape = self._float_shape(node.outputs[0])
        attrs |= {"kernel": list(node.attrs["kernel"]), "stride": int(node.attrs["stride"][0]),
                  "pads": list(node.attrs["pads"]), "acc_bits": acc_bits,
                  "in_shape": list(self.cur_shape), "out_shape": list(out_shape)}
        self._emit(Node("conv2d", node.name, inputs, [node.outputs[0]], attrs=attrs,
                        annotations=self._carried_annotations(node)),
                   FixedPoint(acc_bits, attrs["acc_frac"]), is_acc=True, shape=out_shape)

    def _lower_pool(self, node: Node) -> None:
        """Pools keep their input's format exactly (max picks an element; average rounds the
        mean, which lies within the input's range)."""
        self._to_activation(node)
        out_shape = self._float_shape(node.outputs[0])
        if node.op == "global_avgpool":
            window = {"kernel": list(self.cur_shape[1:]), "stride": 1, "pads": [0, 0, 0, 0]}
        else:
            window = {"kernel": list(node.attrs["kernel"]), "stride": int(node.attrs["stride"][0]),
                      "pads": list(node.attrs["pads"])}
            if node.op == "avgpool2d":
                window["count_include_pad"] = bool(node.attrs["count_include_pad"])
        attrs = window | {"format": self.cur_fmt.to_dict(), "in_shape": list(self.cur_shape),
                          "out_shape": list(out_shape)}
        self._emit(Node(node.op, node.name, [self.cur], [node.outputs[0]], attrs=attrs), self.cur_fmt,
                   is_acc=False, shape=out_shape)

    _lower_maxpool2d = _lower_avgpool2d = _lower_global_avgpool = _lower_pool

    def _lower_dense(self, node: Node) -> None:
        self._to_activation(node)   # e.g. two dense layers in a row
        opts = self.ctx.layer_options("lower", node.name)
        block = _circulant_block(node, opts)
        # a circulant node always has a bias input (zeros if none)
        inputs, attrs, (w_q, b_q) = self._quantize_layer(node, opts, force_bias=bool(block))
        x_fmt, acc_frac = self.cur_fmt, attrs["acc_frac"]
        if self.flattened_chw:
            if block and cost.stream_reorders(self.flattened_chw):
                raise PassError(f"lower: layer {node.name!r} is block-circulant but reads a flattened "
                                f"{self.flattened_chw[0]}-channel image, which the hardware streams channel-last: "
                                "its columns would be permuted out of the block structure (give it block_size = 1)")
            attrs["input_chw"] = self.flattened_chw   # its input is an image streamed channel-last
            self.flattened_chw = None
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
        self._emit(Node(op, node.name, inputs, [node.outputs[0]], attrs=attrs, annotations=annotations),
                   FixedPoint(acc_bits, acc_frac), is_acc=True, shape=(w_q.shape[0],))

    def _requantize(self, name: str, out: str, relu: bool) -> None:
        """acc (or an activation, for a standalone relu) -> calibrated activation format."""
        src_frac = self.cur_fmt.frac
        float_name = out if out in self.acts else self.cur
        fmt = choose_format(self.acts[float_name], self.act_bits, max_frac=src_frac)
        attrs = {"shift": src_frac - fmt.frac, "bits": fmt.bits, "relu": relu, "out_frac": fmt.frac}
        self._emit(Node("requantize", name, [self.cur], [out], attrs=attrs), fmt, is_acc=False)


def _checked_acc_bits(node: Node, acc_bits: int) -> int:
    if acc_bits > MAX_ONNX_ACC_BITS:
        raise PassError(f"lower: layer {node.name!r} needs a {acc_bits}-bit accumulator; at most "
                        f"{MAX_ONNX_ACC_BITS} are supported (use fewer weight/activation bits)")
    return acc_bits


def _circulant_block(node: Node, opts: dict) -> int | None:
    """The block size of a layer to lower as a `circulant` node, or None (a `dense` node)."""
    block = int(node.annotations.get("block_size", 1))
    if block <= 1 or opts["engine"] in ("dense", "sparse"):
        return None   # not circulant, or the recipe asks for the exact product on another engine
    return block


def _plan_circulant_layer(node: Node, w_q: np.ndarray, b_q: np.ndarray, block: int, in_bits: int, opts: dict):
    """Spectra, shifts and widths of a block-circulant layer (kernels.circulant_mac.plan_circulant)."""
    n_out, n_in = w_q.shape
    try:
        vectors = circulant_vectors(w_q, block)
    except ValueError:
        raise PassError(f"lower: layer {node.name!r} was made block-circulant (block size {block}) but its "
                        "weights are no longer: a pass after circulant changed them (admm? run it before "
                        "circulant, giving that layer block_size = 1)") from None
    guard = None if opts["fft_guard"] == "auto" else opts["fft_guard"]
    try:
        return plan_circulant(vectors, b_q, n_in, n_out, in_bits=in_bits, twiddle_frac=opts["twiddle_frac"],
                              spectrum_bits=opts["spectrum_bits"], fft_guard=guard, ifft_guard=opts["ifft_guard"])
    except ValueError as e:
        raise PassError(f"lower: circulant layer {node.name!r}: {e}") from None


def _quantize_weights(node: Node, w: np.ndarray, bits: int) -> tuple[np.ndarray, FixedPoint]:
    """Round weights onto Q(bits, f); keep admm's grid exactly where it set one."""
    fixed = node.annotations.get("weight_format")
    if fixed is not None:
        fmt = FixedPoint.from_dict(fixed)
        scaled = w.astype(np.float64) * 2.0 ** fmt.frac
        w_q = np.rint(scaled)
        if np.max(np.abs(scaled - w_q), initial=0.0) > 1e-3 or w_q.min(initial=0) < fmt.min_int or w_q.max(initial=0) > fmt.max_int:
            raise PassError(f"lower: layer {node.name!r} claims weight format {fixed} but its weights are off that grid")
        return w_q.astype(np.int64), fmt
    fmt = weight_format(w, bits)
    w_q = kernels.saturate(kernels.round_half_even(w.astype(np.float64) * 2.0 ** fmt.frac), bits)
    return w_q.astype(np.int64), fmt


def _plan_hardware(graph: Graph, ctx) -> None:
    """Engine and parallel multipliers per layer, hardware-aware.

    The largest layer, run by the dense engine with `multipliers` multipliers, sets the cycle
    budget T of a balanced pipeline. Every layer then gets, for each engine, the fewest
    multipliers that finish within T, and `auto` takes the sparse engine where its ROM (values +
    indices) is smaller than the dense one's: irregular sparsity costs index bits, so the sparse
    engine pays off only above a break-even sparsity. Recipe per-layer `multipliers` / `engine`
    override the choice.

    A circulant layer takes the FFT engine, whose schedule and 4 multipliers are fixed; the
    cycle budget of the dense layers rises to the slowest circulant engine's interval (the
    largest dense layer alone sets it when there is none)."""
    weighted = graph.weighted_nodes(include_conv=True)
    circulant = {n.name: _circulant_engine_cost(graph, n) for n in weighted if n.op == "circulant"}
    cycle_target = _largest_layer_cycles(graph, ctx.options("lower")["multipliers"])
    # A circulant engine's schedule is fixed (4 multipliers), and so is a pooling engine's (one
    # window element per cycle): a layer finishing faster than the slowest of them would only
    # wait, so the cycle budget rises to it.
    fixed = [c.interval for c in circulant.values()] + [_pool_cycles(n) for n in graph.nodes if n.op in POOL_OPS]
    cycle_target = max([cycle_target] + fixed)
    for node in weighted:
        if node.op == "circulant":
            if "multipliers" in ctx.recipe.get("lower", {}).get("layers", {}).get(node.name, {}):
                raise PassError(f"lower: layer {node.name!r} is block-circulant: its FFT engine always has "
                                f"{cost.CIRCULANT_MULTIPLIERS} multipliers (remove [lower.layers.\"{node.name}\"] "
                                "multipliers, or give it engine = \"dense\" to compute its exact product)")
            _plan_circulant_engine(graph, node, circulant[node.name], ctx.options("lower")["multipliers"])
        elif node.op == "conv2d":
            _plan_conv(graph, node, ctx.layer_options("lower", node.name), ctx.recipe, cycle_target)
        else:
            _plan_layer(graph, node, ctx.layer_options("lower", node.name), ctx.recipe, cycle_target)


def _largest_layer_cycles(graph: Graph, multipliers: int) -> int:
    """Cycles of the slowest dense or conv layer given `multipliers` multipliers (its best split)."""
    cycles = [0]
    for node in graph.weighted_nodes(include_conv=True):
        if node.op == "dense":
            n_out, n_in = graph.params[node.inputs[1]].shape
            cycles.append(n_out * math.ceil(n_in / min(multipliers, n_in)))
        elif node.op == "conv2d":
            cycles.append(_fastest_conv_split(node, multipliers).cycles)
    return max(cycles)


def _pool_cycles(node: Node) -> int:
    return cost.pool_compute_cycles(node.attrs["in_shape"], node.attrs["kernel"], node.attrs["stride"],
                                    node.attrs["pads"])


class ConvSplit(NamedTuple):
    """A parallelism of rtl/conv2d.v: P_CO output channels x P_CI input channels x P_K kernel
    positions per cycle, with its cycles per frame and weight ROM bits."""
    p_co: int
    p_ci: int
    p_k: int
    cycles: int
    rom_bits: int

    @property
    def multipliers(self) -> int:
        return self.p_co * self.p_ci * self.p_k

    @property
    def hardware(self) -> tuple[int, int, int]:
        """Tie-break after cycles and multipliers: smaller ROM, then fewer accumulators and output
        registers (P_CO), then fewer line-buffer copies (P_K)."""
        return self.rom_bits, self.p_co, self.p_k


def _smallest_per_count(n: int) -> list[int]:
    """The smallest p giving each distinct count ceil(n / p) (of channel groups, channel words or
    kernel steps): a larger p with the same count only adds multipliers and ROM width, never
    saves a cycle."""
    return sorted({math.ceil(n / math.ceil(n / p)) for p in range(1, n + 1)})


def _conv_splits(node: Node) -> list[ConvSplit]:
    """The splits worth considering among those rtl/conv2d.v's timing contract covers:
    P_K <= KH*KW and P_CO <= G = ceil(KH*KW/P_K) * ceil(C_IN/P_CI)."""
    a = node.attrs
    c_in, c_out = a["in_shape"][0], a["out_shape"][0]
    positions = a["kernel"][0] * a["kernel"][1]
    w_bits = a["weight_format"]["bits"]
    splits = []
    for p_k in _smallest_per_count(positions):
        for p_ci in _smallest_per_count(c_in):
            reads = math.ceil(positions / p_k) * math.ceil(c_in / p_ci)
            for p_co in (p for p in _smallest_per_count(c_out) if p <= reads):
                cycles = cost.conv_compute_cycles(a["in_shape"], c_out, a["kernel"], a["stride"], a["pads"],
                                                  p_co, p_ci, p_k)
                rom = cost.conv_weight_rom_bits(a["in_shape"], c_out, a["kernel"], p_co, p_ci, w_bits, p_k)
                splits.append(ConvSplit(p_co, p_ci, p_k, cycles, rom))
    return splits


def _fastest(splits: list[ConvSplit]) -> ConvSplit:
    return min(splits, key=lambda s: (s.cycles, s.multipliers, s.hardware))


def _fastest_conv_split(node: Node, max_multipliers: int) -> ConvSplit:
    """The fewest cycles with at most `max_multipliers` (then fewer multipliers, less hardware)."""
    splits = _conv_splits(node)
    return _fastest([s for s in splits if s.multipliers <= max_multipliers] or splits)


def _cheapest_conv_split(node: Node, cycle_target: int) -> ConvSplit:
    """The fewest multipliers within `cycle_target` cycles (then fewer cycles, less hardware); the
    fastest split if none is."""
    splits = _conv_splits(node)
    meeting = [s for s in splits if s.cycles <= cycle_target]
    if not meeting:
        return _fastest(splits)
    return min(meeting, key=lambda s: (s.multipliers, s.cycles, s.hardware))


def _plan_conv(graph: Graph, node: Node, opts: dict, recipe: dict, cycle_target: int) -> None:
    """The conv engine with the fewest multipliers (P_CO x P_CI x P_K) that meets the cycle
    budget, or the recipe's exact count (split for the fewest cycles). There is no sparse conv
    engine: a pruned conv layer saves cycles and ROM through removed filters/channels (admm's
    `filters`/`channels` structures), not through skipped zeros."""
    if opts["engine"] == "sparse":
        raise PassError(f"lower: layer {node.name!r} is a convolution: there is no sparse convolution engine "
                        "(prune whole filters or channels instead: admm structure = \"filters\" / \"channels\")")
    fixed_p = recipe.get("lower", {}).get("layers", {}).get(node.name, {}).get("multipliers")
    split = _fastest_conv_split(node, int(fixed_p)) if fixed_p else _cheapest_conv_split(node, cycle_target)
    parallelism = {"multipliers": split.multipliers, "p_co": split.p_co, "p_ci": split.p_ci, "p_k": split.p_k}
    node.annotations.update(parallelism | {
        "engine": "conv",
        "engine_reason": (("multipliers chosen by recipe; " if fixed_p else "") +
                          f"line-buffered conv engine, {split.p_co} output channels x {split.p_ci} input channels "
                          f"x {split.p_k} kernel positions per cycle: {split.cycles} cycles per frame "
                          f"(budget {cycle_target}), {split.rom_bits} weight ROM bits"),
        "break_even_sparsity": None, "delta_bits": None,
        "cost": {"conv": parallelism | {"compute_cycles": split.cycles, "weight_rom_bits": split.rom_bits}},
    })


def _circulant_engine_cost(graph: Graph, node: Node) -> cost.EngineCost:
    layer = golden.circulant_layer(graph, node)
    return cost.circulant_cost(layer.n_in, layer.n_out, layer.block, layer.spectrum_bits, layer.twiddle_frac,
                               bias_bits(layer))


def _plan_circulant_engine(graph: Graph, node: Node, circ: cost.EngineCost, multipliers: int) -> None:
    """A circulant layer always takes the FFT engine (no dense/sparse choice); the annotation
    states what a dense engine would cost for the same weights, for comparison."""
    n_out, n_in = graph.params[node.inputs[1]].shape
    block = node.attrs["circulant"]["block"]
    p_dense = min(multipliers, n_in)
    dense = cost.dense_cost(n_in, n_out, p_dense, node.attrs["weight_format"]["bits"], node.attrs["acc_bits"])
    node.annotations.update({
        "engine": "circulant",
        "multipliers": cost.CIRCULANT_MULTIPLIERS,
        "engine_reason": (f"block-circulant (b = {block}): FFT engine, {circ.rom_bits} ROM bits, {circ.interval} "
                          f"cycles per vector with {cost.CIRCULANT_MULTIPLIERS} multipliers; a dense engine would "
                          f"need {dense.rom_bits} ROM bits, {dense.compute_cycles} cycles with {p_dense}"),
        "break_even_sparsity": None,
        "delta_bits": None,
        "cost": {"circulant": circ.__dict__ | {"multipliers": cost.CIRCULANT_MULTIPLIERS},
                 "dense": dense.__dict__ | {"multipliers": p_dense}},
    })


def _fewest_multipliers(cost_at, n_in: int, cycle_target: int):
    """The cheapest parallelism meeting the cycle target (or the fastest, if none does)."""
    for p in range(1, n_in + 1):
        c = cost_at(p)
        if c.compute_cycles <= cycle_target:
            return p, c
    return n_in, cost_at(n_in)


def _plan_layer(graph: Graph, node: Node, opts: dict, recipe: dict, cycle_target: int) -> None:
    w_q = cost.stream_weight_matrix(graph.params[node.inputs[1]], node.attrs.get("input_chw"))
    w_bits, acc_bits = node.attrs["weight_format"]["bits"], node.attrs["acc_bits"]
    n_out, n_in = w_q.shape
    fixed_p = recipe.get("lower", {}).get("layers", {}).get(node.name, {}).get("multipliers")
    encodings = {}

    def dense_at(p):
        return cost.dense_cost(n_in, n_out, p, w_bits, acc_bits)

    def sparse_at(p):
        encodings[p] = encodings.get(p) or cost.sparse_encoding(w_q, p, w_bits)
        return cost.sparse_cost(encodings[p], w_bits, acc_bits)

    if fixed_p:
        p_dense = p_sparse = min(int(fixed_p), n_in)
        dense, sparse = dense_at(p_dense), sparse_at(p_sparse)
    else:
        p_dense, dense = _fewest_multipliers(dense_at, n_in, cycle_target)
        p_sparse, sparse = _fewest_multipliers(sparse_at, n_in, cycle_target)
    pays = sparse.rom_bits < dense.rom_bits and sparse.compute_cycles <= max(dense.compute_cycles, cycle_target)
    engine = opts["engine"] if opts["engine"] != "auto" else ("sparse" if pays else "dense")
    enc = encodings[p_sparse]
    sparsity = float(np.mean(w_q == 0))
    break_even = cost.break_even_sparsity(enc, w_q, w_bits)
    why = (f"sparsity {sparsity:.1%} vs break-even {break_even:.1%}: sparse {sparse.rom_bits} ROM bits, "
           f"{sparse.compute_cycles} cycles with {p_sparse} multipliers; dense {dense.rom_bits} ROM bits, "
           f"{dense.compute_cycles} cycles with {p_dense}")
    node.annotations.update({
        "engine": engine,
        "multipliers": p_sparse if engine == "sparse" else p_dense,
        "engine_reason": ("chosen by recipe; " if opts["engine"] != "auto" else "") + why,
        "break_even_sparsity": round(break_even, 4),
        "delta_bits": enc.delta_bits if engine == "sparse" else None,
        "cost": {"dense": dense.__dict__ | {"multipliers": p_dense}, "sparse": sparse.__dict__ | {"multipliers": p_sparse}},
    })


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
    inputs = {}
    for split, x in splits.items():
        inputs[split] = {}
        golden.run_integer(graph, golden.quantize_input(graph, x), record=inputs[split])
    for node in circulant:
        layer = golden.circulant_layer(graph, node)
        node.annotations["fft_error"] = {
            split: circulant_error(inputs[split][node.name], layer) | {"samples": len(splits[split])}
            for split in splits}
        exact = golden.run(graph, data.x_test, exact={node.name})
        node.annotations["test_accuracy_exact_product"] = float(np.mean(exact.classes == data.y_test))
    graph.meta["circulant_test_accuracy_exact_product"] = float(
        np.mean(golden.run(graph, data.x_test, exact=names).classes == data.y_test))
