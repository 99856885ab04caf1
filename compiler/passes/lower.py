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

Branching graphs (forks and joins): the walk is in the graph's topological order and keeps the
state per float tensor (`TensorState`: its integer tensor, format, whether an accumulator, its
shape, a flattened image's [C, H, W]). Before a node's rule it loads the state of the node's
first input; a join's rule (add, concat) loads each of its inputs itself (`load`); after the rule
the node's output gets the current state. An accumulator that several consumers need as an
activation is requantized once (`activated`); a rule may fuse the node after it (the ReLU after
an add, when it is the add's only consumer), which the walk then skips (`fuse`).

Hardware planning (engines, multipliers) is the next pass, `plan` (compiler/passes/plan.py).

Where each piece lives: this module walks the float body and keeps the state (the current
tensor, its format, whether it is an accumulator); each float op's rule is its op's `lower`
(compiler/ops/); the formats and their checks are compiler/ops/formats.py; the block-circulant
lowering is compiler/ops/circulant_lower.py; the measurements on the test set are
compiler/passes/lower_measure.py.

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

from dataclasses import dataclass

import numpy as np

import kernels
from compiler import ops
from compiler.ir import FixedPoint, Graph, Node, TensorSpec, binary_output
from compiler.ops.formats import (
    MAX_SHIFT,
    check_finite,
    check_layer_scale,
    checked_activation_format,
    fit_accumulator,
    quant_format,
    quantize_weights,
)
from compiler.passes.base import Option, Pass, PassError, int_in, register
from compiler.passes.lower_measure import measure_circulant, measure_narrowed
from kernels.circulant_mac import FFT_EXTRA_GUARD, IFFT_GUARD, SPECTRUM_BITS, TWIDDLE_FRAC


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
        measure_circulant(lowered, ctx.data, opts["calibration_samples"])
        measure_narrowed(graph, lowered, ctx.data)
        return lowered


def _check_lowerable(graph: Graph) -> None:
    body = _body(graph)
    for op in ops.OPS.values():
        named = [f"{n.name!r}" for n in body if n.op == op.name]
        if op.unlowerable and named:
            raise PassError(op.unlowerable.format(names=", ".join(named)))
    bad = [f"{n.name!r} ({n.op})" for n in body if not ops.get(n.op).defines("lower")]
    if bad:
        raise PassError(
            f"lower: cannot lower node(s) {', '.join(bad)}; run canonicalize first "
            "(a bias add that does not follow a dense or conv layer is not supported)"
        )
    uneven = [
        f"{n.name!r} (stride {n.attrs['stride']})"
        for n in body
        if ops.get(n.op).strided and len(set(n.attrs["stride"])) > 1
    ]
    if uneven:
        raise PassError(
            f"lower: {', '.join(uneven)}: the line-buffered engines step both axes alike; strides must be equal"
        )
    if not any(ops.get(n.op).layer for n in body):
        raise PassError("lower: the graph has no dense or conv layer")


def _body(graph: Graph) -> list[Node]:
    """The nodes before a trailing softmax / log_softmax."""
    nodes = list(graph.nodes)
    while nodes and ops.get(nodes[-1].op).dropped_at_output:
        nodes.pop()
    return nodes


@dataclass(frozen=True)
class TensorState:
    """What lower knows of one float tensor once lowered: the integer tensor that carries it."""

    name: str  # the integer tensor
    fmt: FixedPoint
    is_acc: bool
    shape: tuple[int, ...]
    flattened_chw: list[int] | None  # [C, H, W] when it is a flattened image
    flatten_node: Node | None  # the integer flatten that made it


class _Lowering:
    """Walks the float body once in topological order, each node by its op's lowering rule
    (compiler/ops/), emitting integer nodes. The rules read and set the current state below and
    call the public methods; the walk keeps that state per float tensor (`states`)."""

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
        self.narrowed: dict[str, dict] = {}  # layer -> the narrower weights fit_accumulator chose
        self.cur_src: str = ""  # the float tensor the current state stands for
        self.states: dict[str, TensorState] = {}  # float tensor -> its lowered state
        self.activated: dict[str, TensorState] = {}  # float accumulator -> its requantized activation
        self.fused: set[str] = set()  # nodes a rule took into the node before them

    def build(self) -> Graph:
        src = self.graph.inputs[0]
        in_fmt = quant_format(self.graph, (src.name,)) or checked_activation_format(
            self.acts[src.name], self.act_bits, f"the input {src.name!r}"
        )
        self.cur_shape = tuple(src.shape)
        self.emit(
            Node("quantize", "quantize_input", [src.name], [f"{src.name}_q"], attrs={"format": in_fmt.to_dict()}),
            in_fmt,
            is_acc=False,
        )
        self.record(src.name)
        body = _body(self.graph)
        for node in body:
            if node.name in self.fused:  # its output is its producer's (e.g. a ReLU fused into an add)
                self.states[node.outputs[0]] = self.states[node.inputs[0]]
                continue
            self.load(node.inputs[0])
            ops.get(node.op).lower(self, node)
            self.record(node.outputs[0])
        self.load(body[-1].outputs[0])
        out_frac = self.cur_fmt.frac
        self.nodes.append(Node("dequantize", "dequantize_output", [self.cur], ["logits"], attrs={"frac": out_frac}))
        n_classes = int(np.prod(self.graph.outputs[0].shape))
        last = self.graph.nodes[-1].op
        meta = dict(
            self.graph.meta,
            integer=True,
            input_format=in_fmt.to_dict(),
            output_format=self.cur_fmt.to_dict(),
            output_activation=last if ops.get(last).dropped_at_output else None,
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

    def state(self, tensor: str) -> TensorState:
        """The lowered state of float tensor `tensor` (lowered before its consumers: topological order)."""
        return self.states[tensor]

    def snapshot(self) -> TensorState:
        return TensorState(
            self.cur, self.cur_fmt, self.cur_is_acc, self.cur_shape, self.flattened_chw, self.flatten_node
        )

    def load(self, tensor: str, st: TensorState | None = None) -> None:
        """Make float tensor `tensor`'s state (or `st`, a form of it) the current one."""
        st = st or self.states[tensor]
        self.cur, self.cur_fmt, self.cur_is_acc, self.cur_shape = st.name, st.fmt, st.is_acc, st.shape
        self.flattened_chw, self.flatten_node, self.cur_src = st.flattened_chw, st.flatten_node, tensor

    def record(self, tensor: str) -> None:
        """The current state is float tensor `tensor`'s."""
        self.states[tensor] = self.snapshot()

    def activation_of(self, tensor: str, node: Node, label: str) -> TensorState:
        """Float tensor `tensor` as an activation (an accumulator requantized first, as
        `to_activation` does): a join's input. `label` names the requantize node after `node`."""
        self.load(tensor)
        self.to_activation(node, label)
        return self.snapshot()

    def fuse(self, node: Node) -> None:
        """`node` was taken into the node before it: the walk skips it."""
        self.fused.add(node.name)

    def only_consumer(self, tensor: str) -> Node | None:
        """The one node that reads `tensor`, or None (several, none, or a graph output)."""
        readers = self.graph.consumers(tensor)
        outputs = {t.name for t in self.graph.outputs}
        return readers[0] if len(readers) == 1 and tensor not in outputs else None

    def emit(self, node: Node, fmt: FixedPoint, is_acc: bool, shape: tuple[int, ...] | None = None) -> None:
        """Append an integer node; its output becomes the current tensor."""
        self.nodes.append(node)
        self.cur, self.cur_fmt, self.cur_is_acc = node.outputs[0], fmt, is_acc
        if shape is not None:
            self.cur_shape = tuple(int(d) for d in shape)

    def float_shape(self, tensor: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.acts[tensor].shape[1:])

    def to_activation(self, node: Node, label: str = "input") -> None:
        """An accumulator feeding another layer or a pool comes back to activation width first,
        once for all the consumers that need it so (a fork); its own state stays the accumulator
        (a ReLU after it requantizes the accumulator itself)."""
        if not self.cur_is_acc:
            return
        src = self.cur_src
        if src not in self.activated:
            self.requantize(f"{node.name}.{label}", f"{src}_q", relu=False)
            self.activated[src] = self.snapshot()
        self.load(src, self.activated[src])

    def quantize_layer(self, node: Node, opts: dict, force_bias: bool = False) -> tuple[list, dict, tuple]:
        """Weights on their grid, bias at the accumulator's scale; the layer's inputs and attrs."""
        w = self.graph.params[node.inputs[1]]
        b = self.graph.params[node.inputs[2]] if len(node.inputs) > 2 else None
        x_fmt = self.cur_fmt
        check_finite(node, w, b)
        w_q, w_fmt = quantize_weights(node, w, opts["weight_bits"])
        w_q, w_fmt, narrowed = fit_accumulator(node, w, b, w_q, w_fmt, x_fmt)
        if narrowed is not None:
            self.narrowed[node.name] = narrowed
        acc_frac = w_fmt.frac + x_fmt.frac
        check_layer_scale(node, w, b, w_fmt, x_fmt)
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

    def carried_annotations(self, node: Node) -> dict:
        """What earlier passes learned, less admm's weight grid (now the node's weight_format attr),
        plus `narrowed` where lower chose narrower weights to fit the accumulator."""
        carried = {k: v for k, v in node.annotations.items() if k != "weight_format"}
        if node.name in self.narrowed:
            carried["narrowed"] = self.narrowed[node.name]
        return carried

    def requantize(self, name: str, out: str, relu: bool) -> None:
        """acc (or an activation, for a standalone relu) -> calibrated activation format."""
        src_frac = self.cur_fmt.frac
        float_name = out if out in self.acts else (self.cur if self.cur in self.acts else self.cur_src)
        fmt = quant_format(self.graph, (out, float_name), max_frac=src_frac) or checked_activation_format(
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
        self.emit(Node("requantize", name, [self.cur], [out], attrs=attrs), fmt, is_acc=False)
