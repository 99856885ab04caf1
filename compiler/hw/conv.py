"""The convolution engine (rtl/conv2d.v): line-buffered, P_CO output channels x P_CI input
channels x P_K kernel positions per cycle, weights in ROM (kernels/conv_rom.py).

A block-circulant conv (lower's attrs `circulant`, kernels/circulant_conv.py) is planned with
P_CO and P_CI multiples of its block size b (P_CI, P_CO may cover the padded channels): the
engine then runs with CIRC_B = b, its weight-ROM words hold one defining vector per b x b block
(ROM bits / b) and the P_CO*P_CI*P_K weights of a cycle come from them by wiring; multipliers,
cycles and values are those of the dense engine. Only a recipe's exact `multipliers` below the
smallest aligned split (b*b) gives such a layer a dense weight ROM (CIRC_B = 0).
A depthwise conv (group == C) runs with DEPTHWISE = 1 (compiler/hw/conv_modes.py).

The timing model of the line-buffered engines, which rtl/pool2d.v shares, is compiler/hw/line_timing.py.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

from compiler.hw import line_timing  # noqa: F401  (registers the line-buffered engines' timing model)
from compiler.hw.base import (
    Engine,
    EngineCost,
    EngineSpec,
    Planned,
    RomField,
    RomImage,
    StoredLayer,
    VerilogBackendError,
    bias_or_zeros,
    bias_param,
    dense_macs,
    output_fields,
    positive_int,
    probe_layout,
    stored_bias_bits,
)
from compiler.hw.conv_modes import (
    check_depthwise,
    depthwise_splits,
    depthwise_weight_rom_bits,
    is_depthwise,
    stored_lanes,
    weight_rom_words,
)
from compiler.hw.registry import register
from compiler.hw.timing import run_stream, steady_interval
from compiler.ir import Node
from kernels.circulant_conv import conv_circulant_expand, conv_circulant_pullback, conv_circulant_vectors
from kernels.conv2d import LineGeometry, conv_geometry
from kernels.conv_rom import conv_bias_rom_words
from kernels.rom import write_mem

LINE_FRAMES = 3  # a line-buffered engine alone, fed at full rate, is periodic from its second frame


def conv_weight_rom_bits(
    in_shape, c_out: int, kernel, p_co: int, p_ci: int, w_bits: int, p_k: int = 1, circ: int = 0
) -> int:
    """NCG*NKS*NCW words of P_CO*P_K*P_CI weights (kernels/conv_rom.py: zero-padded groups and
    steps), or with CIRC_B = circ > 0 of P_CO*P_K*P_CI / circ weights (one vector per block)."""
    words = math.ceil(c_out / p_co) * math.ceil(kernel[0] * kernel[1] / p_k) * math.ceil(in_shape[0] / p_ci)
    return words * (p_co * p_k * p_ci // (circ or 1)) * w_bits


def circ_block(node: Node, p_co: int, p_ci: int) -> int:
    """rtl/conv2d.v's CIRC_B for this parallelism: the block size b of a block-circulant conv
    whose P_CO and P_CI are multiples of b, else 0 (a dense weight ROM)."""
    circulant = node.attrs.get("circulant")
    if not circulant:
        return 0
    b = int(circulant["block"])
    return b if p_co % b == 0 and p_ci % b == 0 else 0


def padded_channels(node: Node) -> tuple[int, int]:
    """(C_out, C_in), padded to whole blocks for a block-circulant conv."""
    c_in, c_out = node.attrs["in_shape"][0], node.attrs["out_shape"][0]
    circulant = node.attrs.get("circulant")
    if not circulant:
        return c_out, c_in
    b = int(circulant["block"])
    return math.ceil(c_out / b) * b, math.ceil(c_in / b) * b


def conv_compute_cycles(in_shape, c_out: int, kernel, stride: int, pads, p_co: int, p_ci: int, p_k: int = 1) -> int:
    """ROM words read per frame, one per edge: H_OUT*W_OUT*NCG*NKS*NCW (rtl/conv2d.v)."""
    return conv_geometry(in_shape, c_out, kernel, stride, pads, p_co, p_ci, p_k).compute_cycles


def line_cost(engine: str, stage: LineGeometry, rom_bits: int, weight_bits: int) -> EngineCost:
    """Latency, interval, tail and output span of one line-buffered engine alone (inputs one
    per cycle, out_ready high), by the timing model of its RTL header."""
    run = run_stream((stage,), None, LINE_FRAMES)
    return EngineCost(
        engine,
        rom_bits,
        stage.compute_cycles,
        run.latency,
        steady_interval(run),
        tail=run.outputs[0] - run.last_inputs[0],
        weight_rom_bits=weight_bits,
        output_span=run.outputs[0] - run.first_outputs[0],
    )


def conv_cost(stage: LineGeometry, w_bits: int, bias_bits: int, circ: int = 0) -> EngineCost:
    """Weight ROM NCG*NKS*NCW words of P_CO*P_K*P_CI weights (CIRC_B = circ > 0: P_CO*P_K*P_CI /
    circ), bias ROM NCG words of P_CO biases (both zero-padded to whole groups)."""
    s = stage
    if s.depthwise:
        weights = depthwise_weight_rom_bits(s.c_out, (s.kh, s.kw), s.p_co, w_bits, s.p_k)
    else:
        weights = conv_weight_rom_bits((s.c_in, s.h, s.w), s.c_out, (s.kh, s.kw), s.p_co, s.p_ci, w_bits, s.p_k, circ)
    return line_cost("conv", s, weights + s.groups * s.p_co * bias_bits, weights)


def node_geometry(node: Node, p_co: int = 1, p_ci: int = 1, p_k: int = 1) -> LineGeometry:
    a, dw = node.attrs, is_depthwise(node)
    return conv_geometry(a["in_shape"], a["out_shape"][0], a["kernel"], a["stride"], a["pads"], p_co, p_ci, p_k, dw)


# ---- planning: the split of the multipliers ---------------------------------------------------
class ConvSplit(NamedTuple):
    """A parallelism of rtl/conv2d.v with its cycles per frame and weight ROM bits."""

    p_co: int
    p_ci: int
    p_k: int
    cycles: int
    rom_bits: int
    circ: int = 0  # CIRC_B: the block size when the weight ROM holds block-circulant vectors
    depthwise: bool = False  # DEPTHWISE = 1: p_ci = p_co, one input lane per output channel

    @property
    def multipliers(self) -> int:
        return self.p_co * self.p_k * (1 if self.depthwise else self.p_ci)

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


def _aligned_per_count(n: int, b: int) -> list[int]:
    """Multiples of b, the smallest per count of b-blocks of n (padded) channels."""
    return [b * k for k in _smallest_per_count(math.ceil(n / b))]


def conv_splits(node: Node) -> list[ConvSplit]:
    """The splits worth considering among those rtl/conv2d.v's timing contract covers:
    P_K <= KH*KW and P_CO <= G = ceil(KH*KW/P_K) * ceil(C_IN/P_CI). For a block-circulant conv
    also those with P_CO and P_CI multiples of its block size (`circ` set: a vector ROM).
    Depthwise: P_CI = P_CO <= G = NKS."""
    a = node.attrs
    c_in, c_out = a["in_shape"][0], a["out_shape"][0]
    positions = a["kernel"][0] * a["kernel"][1]
    w_bits = a["weight_format"]["bits"]
    co_options, ci_options = _smallest_per_count(c_out), _smallest_per_count(c_in)
    if is_depthwise(node):
        found = depthwise_splits(node, co_options, _smallest_per_count(positions))
        return [ConvSplit(p_co, p_co, p_k, cycles, rom, depthwise=True) for p_co, p_k, cycles, rom in found]
    if "circulant" in a:
        b = int(a["circulant"]["block"])
        co_options = sorted(set(co_options) | set(_aligned_per_count(c_out, b)))
        ci_options = sorted(set(ci_options) | set(_aligned_per_count(c_in, b)))
    splits = []
    for p_k in _smallest_per_count(positions):
        for p_ci in ci_options:
            reads = math.ceil(positions / p_k) * math.ceil(c_in / p_ci)
            for p_co in (p for p in co_options if p <= reads):
                circ = circ_block(node, p_co, p_ci)
                cycles = node_geometry(node, p_co, p_ci, p_k).compute_cycles
                rom = conv_weight_rom_bits(a["in_shape"], c_out, a["kernel"], p_co, p_ci, w_bits, p_k, circ)
                splits.append(ConvSplit(p_co, p_ci, p_k, cycles, rom, circ))
    return splits


def circulant_conv_split(node: Node, budget: int, multipliers: int | None) -> ConvSplit | None:
    """The split of a block-circulant conv with a vector ROM (P_CO, P_CI multiples of b): the
    fewest multipliers meeting the cycle budget (the fastest if none does), or with the recipe's
    `multipliers` the fastest within them; None where the recipe's count is below every aligned
    split (the layer then gets a dense weight ROM)."""
    aligned = [s for s in conv_splits(node) if s.circ]
    if not aligned:
        return None
    if multipliers:
        within = [s for s in aligned if s.multipliers <= multipliers]
        return _fastest(within) if within else None
    meeting = [s for s in aligned if s.cycles <= budget]
    if not meeting:
        return _fastest(aligned)
    return min(meeting, key=lambda s: (s.multipliers, s.cycles, s.hardware))


def _fastest(splits: list[ConvSplit]) -> ConvSplit:
    return min(splits, key=lambda s: (s.cycles, s.multipliers, s.hardware))


def fastest_conv_split(node: Node, max_multipliers: int) -> ConvSplit:
    """The fewest cycles with at most `max_multipliers` (then fewer multipliers, less hardware)."""
    splits = conv_splits(node)
    return _fastest([s for s in splits if s.multipliers <= max_multipliers] or splits)


def cheapest_conv_split(node: Node, cycle_target: int) -> ConvSplit:
    """The fewest multipliers within `cycle_target` cycles (then fewer cycles, less hardware); the
    fastest split if none is."""
    splits = conv_splits(node)
    meeting = [s for s in splits if s.cycles <= cycle_target]
    if not meeting:
        return _fastest(splits)
    return min(meeting, key=lambda s: (s.multipliers, s.cycles, s.hardware))


# ---- the design --------------------------------------------------------------------------------
def check_window(node: Node, image) -> None:
    """The node must take the image streamed into it, and its padding must be smaller than its
    kernel (rtl/conv2d.v, rtl/pool2d.v)."""
    in_shape = node.attrs["in_shape"]
    if image is None or list(in_shape) != list(image):
        raise VerilogBackendError(
            f"node {node.name!r}: expects a {list(in_shape)} image, but the stream "
            f"before it carries {image or 'a flat vector'}"
        )
    kh, kw = node.attrs["kernel"]
    t, l, b, r = node.attrs["pads"]
    if max(t, b) >= kh or max(l, r) >= kw:
        raise VerilogBackendError(
            f"node {node.name!r}: padding {node.attrs['pads']} must be smaller than the {kh}x{kw} kernel"
        )


def window_parameters(stage: LineGeometry) -> dict:
    t, l, b, r = stage.pads
    return {"KH": stage.kh, "KW": stage.kw, "STRIDE": stage.stride, "PAD_T": t, "PAD_L": l, "PAD_B": b, "PAD_R": r}


def checked_out_shape(node: Node, stage: LineGeometry) -> list[int]:
    shape = [stage.c_out, stage.h_out, stage.w_out]
    if list(node.attrs["out_shape"]) != shape:
        raise VerilogBackendError(
            f"node {node.name!r}: out_shape {list(node.attrs['out_shape'])} is not the {shape} its window gives"
        )
    return shape


def describe_line(spec: EngineSpec) -> str:
    st = spec.stage
    assert isinstance(st, LineGeometry) and spec.out_shape is not None
    shape = f"{st.c_in}x{st.h}x{st.w} -> {'x'.join(str(d) for d in spec.out_shape)}"
    window = f"{st.kh}x{st.kw} window, stride {st.stride}, pads {list(st.pads)}"
    if spec.engine == "conv" and st.depthwise:
        return f"{shape}, conv engine, depthwise, {window}, P_CO x P_K = {st.p_co} x {st.p_k} multipliers"
    if spec.engine == "conv":
        return f"{shape}, conv engine, {window}, P_CO x P_CI x P_K = {st.p_co} x {st.p_ci} x {st.p_k} multipliers"
    return f"{shape}, {spec.kind} engine, {window}"


@register
class Conv(Engine):
    kind = "conv"
    ops = ("conv2d",)
    module = "conv2d.v"
    plan_fields = {"multipliers": positive_int, "p_co": positive_int, "p_ci": positive_int, "p_k": positive_int}
    fuses_requantize = True
    rom_streaming = False
    protectable = True

    def budget_cycles(self, graph, node, multipliers):
        return fastest_conv_split(node, multipliers).cycles

    def refuse(self, node: Node, forced: str) -> str:
        return (
            f"plan: layer {node.name!r} is a convolution: there is no {forced} convolution engine "
            '(prune whole filters or channels instead: admm structure = "filters" / "channels")'
        )

    def plan(self, graph, node, budget, multipliers, largest):
        """The fewest multipliers (P_CO x P_CI x P_K) that meet the cycle budget, or the recipe's
        exact count (split for the fewest cycles). There is no sparse conv engine: a pruned conv
        layer saves cycles and ROM through removed filters/channels, not skipped zeros."""
        circ = circulant_conv_split(node, budget, multipliers) if "circulant" in node.attrs else None
        if circ is not None:
            split = circ
        elif multipliers:
            split = fastest_conv_split(node, multipliers)
        else:
            split = cheapest_conv_split(node, budget)
        parallelism = {"multipliers": split.multipliers, "p_co": split.p_co, "p_ci": split.p_ci, "p_k": split.p_k}
        structure = "; depthwise (group = C): P_CI = P_CO, P_CO x P_K multipliers" if split.depthwise else ""
        if "circulant" in node.attrs:
            b = node.attrs["circulant"]["block"]
            structure = (
                f"; block-circulant (b = {b}): weight ROM of one vector per {b}x{b} block, expanded by wiring"
                if split.circ
                else f"; block-circulant (b = {b}) but the recipe's {multipliers} multipliers are fewer than "
                f"the {b * b} of a vector ROM (P_CO, P_CI multiples of {b}): dense weight ROM"
            )
        return Planned(
            self.kind,
            parallelism
            | {
                "engine": self.kind,
                "engine_reason": (
                    ("multipliers chosen by recipe; " if multipliers else "")
                    + f"line-buffered conv engine, {split.p_co} output channels x {split.p_ci} input "
                    f"channels x {split.p_k} kernel positions per cycle: {split.cycles} cycles per frame "
                    f"(budget {budget}), {split.rom_bits} weight ROM bits" + structure
                ),
                "break_even_sparsity": None,
                "delta_bits": None,
                "cost": {
                    "conv": parallelism
                    | {"compute_cycles": split.cycles, "weight_rom_bits": split.rom_bits}
                    | ({"circ_block": split.circ} if "circulant" in node.attrs else {})
                },
            },
            split.rom_bits,
            split.cycles,
            split.multipliers,
        )

    def check_plan(self, graph, node):
        a = node.annotations
        if why := check_depthwise(node):
            return why
        if is_depthwise(node) and a["p_ci"] != a["p_co"]:
            return f"a depthwise conv needs p_ci = p_co (got {a['p_ci']}, {a['p_co']})"
        if a["multipliers"] != node_geometry(node, a["p_co"], a["p_ci"], a["p_k"]).multipliers:
            product = "p_co x p_k" if is_depthwise(node) else "p_co x p_ci x p_k"
            return f"multipliers {a['multipliers']} is not {product} = {a['p_co']} x {a['p_ci']} x {a['p_k']}"
        c_out, c_in = node.attrs["out_shape"][0], node.attrs["in_shape"][0]
        if circ_block(node, a["p_co"], a["p_ci"]):  # a vector ROM may cover the padded channels
            c_out, c_in = padded_channels(node)
        positions = node.attrs["kernel"][0] * node.attrs["kernel"][1]
        over = [f"{k} {a[k]} > {n}" for k, n in (("p_co", c_out), ("p_ci", c_in), ("p_k", positions)) if a[k] > n]
        if over:
            return ", ".join(over)
        return None

    def spec(self, graph, node, follow, index, image):
        a = node.attrs
        check_window(node, image)
        p = node.annotations
        stage = node_geometry(node, p["p_co"], p["p_ci"], p["p_k"])
        if why := check_depthwise(node):
            raise VerilogBackendError(f"node {node.name!r}: {why}")
        w_shape = (stage.c_out, 1 if stage.depthwise else stage.c_in, stage.kh, stage.kw)
        if graph.params[node.inputs[1]].shape != w_shape:
            raise VerilogBackendError(
                f"node {node.name!r}: weight shape {graph.params[node.inputs[1]].shape} is not {w_shape}"
            )
        spec = EngineSpec(
            name=node.name,
            instance=f"layer{index}",
            engine=self.kind,
            kind=node.op,
            n_in=stage.n_in,
            n_out=stage.n_out,
            multipliers=stage.multipliers,
            in_bits=a["input_format"]["bits"],
            w_bits=a["weight_format"]["bits"],
            acc_bits=a["acc_bits"],
            b_bits=stored_bias_bits(graph, node),
            **output_fields(node, follow),
            w_file=f"layer{index}_w.mem",
            b_file=f"layer{index}_b.mem",
            out_shape=checked_out_shape(node, stage),
            stage=stage,
        )
        circ = circ_block(node, stage.p_co, stage.p_ci)
        spec.cost = conv_cost(stage, spec.w_bits, spec.b_bits, circ)
        # biases are stored at their own width and sign-extended (B_BITS <= ACC_BITS)
        spec.parameters = (
            {"C_IN": stage.c_in, "H": stage.h, "W": stage.w, "C_OUT": stage.c_out}
            | window_parameters(stage)
            | {
                "P_CO": stage.p_co,
                "P_CI": stage.p_ci,
                "P_K": stage.p_k,
            }
            | ({"CIRC_B": circ} if circ else {})  # 0 (a dense weight ROM) is the module's default
            | ({"DEPTHWISE": 1} if stage.depthwise else {})
            | {
                "IN_BITS": spec.in_bits,
                "W_BITS": spec.w_bits,
                "B_BITS": spec.b_bits,
                "ACC_BITS": spec.acc_bits,
                "OUT_BITS": spec.out_bits,
                "SHIFT": spec.shift,
                "RELU": int(spec.relu),
                "REQUANT": int(spec.requant),
                "W_FILE": spec.w_file,
                "B_FILE": spec.b_file,
            }
        )
        return spec

    def write_roms(self, graph, spec, folder: Path):
        node = graph.node(spec.name)
        w_q = graph.params[node.inputs[1]]
        b_q = bias_or_zeros(graph, node, w_q.shape[0])
        p_co, circ = spec.parameters["P_CO"], spec.parameters.get("CIRC_B", 0)
        lanes = stored_lanes(spec.parameters)
        words = weight_rom_words(_vectors(w_q, circ) if circ else w_q, spec.parameters, spec.w_bits)
        write_mem(folder / spec.w_file, words, lanes * spec.w_bits, spec.protection, spec.code_lanes(lanes))
        bias = conv_bias_rom_words(b_q, p_co, spec.b_bits)
        write_mem(folder / spec.b_file, bias, p_co * spec.b_bits, spec.protection, spec.code_lanes(p_co))

    def stored(self, graph, spec):
        """Dense: the weights and the bias. Block-circulant (CIRC_B = b): the defining vectors
        [p, q, b, kH, kW] and the bias; to_params expands the vectors, pullback sums the weight
        gradients over the weights each vector element defines."""
        node = graph.node(spec.name)
        w_name, b_name = node.inputs[1], bias_param(node)
        w = graph.params[w_name]
        p_co, circ = spec.parameters["P_CO"], spec.parameters.get("CIRC_B", 0)
        lanes, bits = stored_lanes(spec.parameters), spec.w_bits
        stored_w = _vectors(w, circ) if circ else w
        index = probe_layout(lambda a, k: weight_rom_words(a, spec.parameters, k), stored_w.shape, lanes)
        bias_index = probe_layout(lambda a, k: conv_bias_rom_words(a, p_co, k), (w.shape[0],), p_co)
        images = [
            RomImage(spec.w_file, "weights", lanes * bits, len(index), (RomField("weights", index, bits, tuple(
                s * bits for s in range(lanes))),), lanes=lanes),
            RomImage(spec.b_file, "bias", p_co * spec.b_bits, len(bias_index), (RomField("bias", bias_index,
                spec.b_bits, tuple(s * spec.b_bits for s in range(p_co))),), lanes=p_co),
        ]  # fmt: skip
        arrays = {"weights": stored_w, "bias": graph.params[b_name]}
        c_out, c_in = w.shape[:2]

        def to_params(a):
            weights = conv_circulant_expand(a["weights"], c_out, c_in).astype(w.dtype) if circ else a["weights"]
            return {w_name: weights, b_name: a["bias"]}

        def pullback(g):
            return {"weights": conv_circulant_pullback(g[w_name], circ) if circ else g[w_name], "bias": g[b_name]}

        return StoredLayer(spec.name, self.kind, arrays, images, to_params, pullback)

    def describe(self, spec):
        circ = spec.parameters.get("CIRC_B", 0)
        vectors = f", block-circulant b = {circ}: one ROM vector per {circ}x{circ} block, expanded by wiring"
        return describe_line(spec) + (vectors if circ else "")

    def layer_figures(self, graph, node, entry):
        a, parameters = node.attrs, entry["parameters"]
        circ = parameters.get("CIRC_B", 0)
        stored = {}
        if circ:  # the ROM holds the defining vectors [p, q, b, kH, kW]
            c = a["circulant"]
            stored = {"stored_weights": c["p"] * c["q"] * circ * a["kernel"][0] * a["kernel"][1], "circ_block": circ}
        return (
            super().layer_figures(graph, node, entry)
            | stored
            | ({"group": a["group"]} if is_depthwise(node) else {})
            | {
                "in_shape": a["in_shape"],
                "out_shape": a["out_shape"],
                "kernel": a["kernel"],
                "stride": a["stride"],
                "pads": a["pads"],
                "p_co": parameters["P_CO"],
                "p_ci": parameters["P_CI"],
                "p_k": parameters.get("P_K", 1),  # designs written before P_K have 1
            }
        )

    def inference_work(self, layer):
        """rtl/conv2d.v reads its whole ROM once per output position."""
        macs = dense_macs(layer)
        return {
            "multiplies": macs,
            "additions": macs,
            "weight_reads": macs,
            "weight_read_bits": layer["rom_bits"] * layer["output_positions"],
            "skipped_zeros": 0,
        }


def _vectors(w, circ: int):
    """The defining vectors [p, q, b, kH, kW] of a block-circulant conv's integer weights."""
    try:
        return conv_circulant_vectors(w, circ)
    except ValueError as e:
        raise VerilogBackendError(f"a conv planned with CIRC_B = {circ}: {e}") from None
