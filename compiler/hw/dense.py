"""The dense engine (rtl/dense_mac.v): P parallel multipliers, every weight in ROM, NCH =
ceil(N_IN / P) words per output, inputs double-buffered. Also the parts the sparse engine
shares with it: the stream order of a layer's weight columns and the ROM-streaming timing model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compiler.hw.base import (
    Engine,
    EngineCost,
    EngineSpec,
    Planned,
    RomField,
    RomImage,
    StoredLayer,
    VerilogBackendError,
    bias_image,
    bias_or_zeros,
    bias_param,
    output_fields,
    positive_int,
    probe_layout,
    stored_bias_bits,
)
from compiler.hw.registry import register
from compiler.hw.timing import register_model
from compiler.ir import Graph, Node
from kernels.dense_mac import RomSchedule, dense_schedule
from kernels.rom import dense_rom_words, vector_rom_words, write_mem
from kernels.stream_order import stream_order, stream_reorders, stream_weight_matrix, unstream


def rom_cost(engine: str, schedule: RomSchedule, weight_bits: int, bias_bits: int) -> EngineCost:
    """A ROM-streaming engine's figures from its kernel's schedule."""
    s = schedule
    return EngineCost(
        engine,
        weight_bits + s.n_out * bias_bits,
        s.words,
        s.latency,
        s.interval,
        tail=s.tail,
        weight_rom_bits=weight_bits,
        output_span=s.output_span,
    )


def dense_cost(n_in: int, n_out: int, multipliers: int, w_bits: int, bias_bits: int) -> EngineCost:
    s = dense_schedule(n_in, n_out, multipliers)
    return rom_cost("dense", s, s.words * multipliers * w_bits, bias_bits)


def stream_weights(graph: Graph, node: Node, image) -> np.ndarray:
    """The weight matrix in the order the engine receives its inputs (columns permuted after an
    image, which streams channel-last)."""
    w = graph.params[node.inputs[1]]
    chw = node.attrs.get("input_chw")
    if image is not None and chw is None and stream_reorders(image):
        raise VerilogBackendError(
            f"node {node.name!r}: its input is a {image} image streamed channel-last, "
            "but it has no input_chw attribute to order its weight columns by"
        )
    if chw is not None and list(chw) != list(image or []):
        raise VerilogBackendError(
            f"node {node.name!r}: input_chw {list(chw)} is not the {image} image streamed into it"
        )
    if node.op == "circulant" and chw is not None and stream_reorders(chw):
        raise VerilogBackendError(
            f"node {node.name!r}: a circulant layer cannot take a flattened {list(chw)} "
            "image (the channel-last stream would break its block-circulant columns); it reads a "
            'flatten with order = "hwc" and stores its columns in stream order'
        )
    return stream_weight_matrix(w, chw)


def planned_matrix(graph: Graph, node: Node) -> np.ndarray:
    """The layer's weights as its engine stores them (planning: the image check is the backend's)."""
    return stream_weight_matrix(graph.params[node.inputs[1]], node.attrs.get("input_chw"))


def matrix_spec(graph: Graph, node: Node, follow: Node | None, index: int, image, engine: str) -> EngineSpec:
    """The fields every engine of a weight matrix shares (dense, sparse, circulant)."""
    w = stream_weights(graph, node, image)
    return EngineSpec(
        name=node.name,
        instance=f"layer{index}",
        engine=engine,
        kind=node.op,
        n_out=w.shape[0],
        n_in=w.shape[1],
        multipliers=int(node.annotations.get("multipliers", 0)),
        in_bits=node.attrs["input_format"]["bits"],
        w_bits=node.attrs["weight_format"]["bits"],
        acc_bits=node.attrs["acc_bits"],
        b_bits=stored_bias_bits(graph, node),
        **output_fields(node, follow),
        w_file=f"layer{index}_w.mem",
        b_file=f"layer{index}_b.mem",
        input_chw=node.attrs.get("input_chw"),
    )


def rom_parameters(spec: EngineSpec, extra: dict | None = None) -> dict:
    """rtl/dense_mac.v's and rtl/sparse_mac.v's parameters (biases at their own width, b_bits)."""
    s = spec
    return (
        {
            "N_IN": s.n_in,
            "N_OUT": s.n_out,
            "P": s.multipliers,
            "IN_BITS": s.in_bits,
            "W_BITS": s.w_bits,
            "B_BITS": s.b_bits,
            "ACC_BITS": s.acc_bits,
            "OUT_BITS": s.out_bits,
            "SHIFT": s.shift,
            "RELU": int(s.relu),
            "REQUANT": int(s.requant),
        }
        | (extra or {})
        | {"W_FILE": s.w_file, "B_FILE": s.b_file}
    )


def describe_matrix(spec: EngineSpec, detail: str = "") -> str:
    order = f", columns in channel-last order of {spec.input_chw}" if spec.input_chw else ""
    return f"{spec.n_in} -> {spec.n_out}, {spec.engine} engine{detail}, {spec.multipliers} multipliers{order}"


def fewest_multipliers(cost_at, n_in: int, cycle_target: int):
    """The cheapest parallelism meeting the cycle target (or the fastest, if none does)."""
    for p in range(1, n_in + 1):
        c = cost_at(p)
        if c.compute_cycles <= cycle_target:
            return p, c
    return n_in, cost_at(n_in)


def cost_entry(cost: EngineCost, multipliers: int) -> dict:
    return cost.__dict__ | {"multipliers": multipliers}


@register
class Dense(Engine):
    kind = "dense"
    ops = ("dense",)
    module = "dense_mac.v"
    plan_fields = {"multipliers": positive_int}
    fuses_requantize = True
    protectable = True

    def budget_cycles(self, graph, node, multipliers):
        n_out, n_in = graph.params[node.inputs[1]].shape
        return dense_schedule(n_in, n_out, min(multipliers, n_in)).words

    def plan(self, graph, node, budget, multipliers, largest):
        n_out, n_in = graph.params[node.inputs[1]].shape
        w_bits, b_bits = node.attrs["weight_format"]["bits"], stored_bias_bits(graph, node)

        def cost_at(p):
            return dense_cost(n_in, n_out, p, w_bits, b_bits)

        if multipliers:
            p = min(multipliers, n_in)
            cost = cost_at(p)
        else:
            p, cost = fewest_multipliers(cost_at, n_in, budget)
        return Planned(
            self.kind,
            {"engine": self.kind, "multipliers": p, "delta_bits": None, "cost": {"dense": cost_entry(cost, p)}},
            cost.rom_bits,
            cost.compute_cycles,
            p,
        )

    def check_plan(self, graph, node):
        n_in = graph.params[node.inputs[1]].shape[1]
        p = node.annotations["multipliers"]
        return None if p <= n_in else f"multipliers {p} exceeds the layer's {n_in} inputs"

    def spec(self, graph, node, follow, index, image):
        spec = matrix_spec(graph, node, follow, index, image, self.kind)
        spec.cost = dense_cost(spec.n_in, spec.n_out, spec.multipliers, spec.w_bits, spec.b_bits)
        spec.stage = dense_schedule(spec.n_in, spec.n_out, spec.multipliers)
        spec.parameters = rom_parameters(spec)
        return spec

    def write_roms(self, graph, spec, folder: Path):
        node = graph.node(spec.name)
        w_q = stream_weight_matrix(graph.params[node.inputs[1]], spec.input_chw)
        write_mem(
            folder / spec.b_file,
            vector_rom_words(bias_or_zeros(graph, node, w_q.shape[0]), spec.b_bits),
            spec.b_bits,
            spec.protection,
        )
        write_mem(
            folder / spec.w_file,
            dense_rom_words(w_q, spec.multipliers, spec.w_bits),
            spec.multipliers * spec.w_bits,
            spec.protection,
            spec.code_lanes(spec.multipliers),
        )

    def stored(self, graph, spec):
        node = graph.node(spec.name)
        w_name, b_name = node.inputs[1], bias_param(node)
        w = graph.params[w_name]
        order = stream_order(w.shape, spec.input_chw)
        p, bits = spec.multipliers, spec.w_bits
        index = probe_layout(lambda a, k: dense_rom_words(a, p, k), w.shape, p)
        field = RomField("weights", index, bits, tuple(s * bits for s in range(p)))
        images = [
            RomImage(spec.w_file, "weights", p * bits, len(index), (field,), lanes=p),
            bias_image(spec.b_file, spec.n_out, spec.b_bits),
        ]
        arrays = {"weights": stream_weight_matrix(w, spec.input_chw).astype(np.int64), "bias": graph.params[b_name]}

        def to_params(a):
            return {w_name: unstream(a["weights"], order).astype(w.dtype), b_name: a["bias"]}

        def pullback(g):
            return {"weights": stream_weight_matrix(g[w_name], spec.input_chw), "bias": g[b_name]}

        return StoredLayer(spec.name, self.kind, arrays, images, to_params, pullback)

    def describe(self, spec):
        return describe_matrix(spec)


# ---- timing model of the ROM-streaming engines ------------------------------------------------
class RomEngine:
    """rtl/dense_mac.v, rtl/sparse_mac.v: two input buffers, one ROM word per edge, four pipeline
    edges (read, products, accumulate, engine_output), the pipeline frozen while the output is held."""

    def __init__(self, stage: RomSchedule):
        self.n_in = stage.n_in
        self.words = stage.words
        ends = [sum(stage.row_words[: o + 1]) - 1 for o in range(stage.n_out)]
        self.row_last = [False] * self.words
        for e in ends:
            self.row_last[e] = True
        self.full = [False, False]
        self.load_buf = self.read_buf = self.load_idx = self.issue_idx = 0
        self.rd_valid = self.rd_last = self.dot_valid = self.dot_last = self.acc_done = self.valid = False

    def in_ready(self) -> bool:
        return not self.full[self.load_buf]

    def out_valid(self) -> bool:
        return self.valid

    def step(self, accept: bool, out_ready: bool) -> None:
        advance = not self.valid or out_ready
        issue = self.full[self.read_buf] and advance
        row_last = self.row_last[self.issue_idx]
        if accept:
            self.load_idx += 1
            if self.load_idx == self.n_in:
                self.load_idx, self.full[self.load_buf], self.load_buf = 0, True, 1 - self.load_buf
        if issue:
            self.issue_idx += 1
            if self.issue_idx == self.words:
                self.issue_idx, self.full[self.read_buf], self.read_buf = 0, False, 1 - self.read_buf
        if advance:
            self.valid, self.acc_done = self.acc_done, self.dot_valid and self.dot_last
            self.dot_valid, self.dot_last = self.rd_valid, self.rd_last
            self.rd_valid, self.rd_last = issue, row_last


register_model(RomSchedule, RomEngine, lambda s: s.n_in + s.words + s.n_out)
