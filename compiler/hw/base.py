"""What every hardware engine is: its cost figures, its instance description, its plan, and the
Engine interface that planning, the backends, the report and the timing model go through.

An engine kind lives in one module of this package (dense.py, sparse.py, ...), which defines a
subclass of Engine and registers it (compiler/hw/registry.py). Nothing outside this package
branches on an engine's kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compiler.errors import MpcError
from compiler.ir import Graph, Node


@dataclass(frozen=True)
class RomField:
    """Where one stored array's elements sit in a ROM's words (the bit-flip audit's map).

    `index[w, s]` is the flat index into the layer's stored array `store` of the value in slot s
    of word w (-1: a padding slot, which holds nothing of the model); slot s occupies bits
    [offsets[s], offsets[s] + bits) of the word, two's complement when `signed`."""

    store: str
    index: np.ndarray  # [words, slots] int64
    bits: int
    offsets: tuple[int, ...]
    signed: bool = True


@dataclass(frozen=True)
class RomImage:
    """One ROM file of an engine as the design stores it: `width` data bits per word (before
    any protection code, kernels/rom_protect.py) and the fields that give its bits meaning.
    `role`: weights, bias, indices (what the build learned) or control / constants (a sparse
    row-count ROM, twiddles), which carry no field: the bit-flip audit leaves those alone."""

    file: str
    role: str
    width: int
    words: int
    fields: tuple[RomField, ...] = ()
    lanes: int = 1  # its words' equal lanes (weights): one code each with rom_protection_unit = "weight"


@dataclass
class StoredLayer:
    """What one engine's ROMs hold, as integer arrays, and how they make the graph's params.

    `arrays`: the stored arrays (e.g. a dense engine's weights in stream order, its bias);
    `images`: the ROM files over them; `to_params(arrays)`: the graph params those arrays give
    ({param name: array}), ValueError where the hardware would read outside what the golden
    executor models (a sparse index past the last input); `pullback(grads)`: gradients of the
    graph's params ({param name: array}) as gradients of the arrays that depend on them
    linearly (the others, e.g. sparse indices, are scored through `to_params`)."""

    layer: str
    engine: str
    arrays: dict[str, np.ndarray]
    images: list[RomImage]
    to_params: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    pullback: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def probe_layout(pack: Callable[[np.ndarray, int], list[int]], shape, slots: int) -> np.ndarray:
    """The [words, slots] index map of a ROM writer `pack(values, bits)`, found by packing every
    element's index + 1 at 32 bits: the map can never drift from the writer itself."""
    size = int(np.prod(shape))
    if size >= 1 << 31:
        raise ValueError("array too large to probe")
    words = pack(np.arange(1, size + 1, dtype=np.int64).reshape(shape), 32)
    mask = (1 << 32) - 1
    return np.array([[(w >> (32 * s)) & mask for s in range(slots)] for w in words], dtype=np.int64) - 1


class PlanError(MpcError, ValueError):
    """A plan that cannot be made or is inconsistent; the message names the layer and the field."""


@dataclass(frozen=True)
class EngineCost:
    engine: str
    rom_bits: int  # weights (+ indices, or spectra + twiddles) + bias
    compute_cycles: int  # dense/sparse: ROM words read per inference, one per cycle, no bubbles;
    # circulant: cycles from the end of loading to the last output
    latency: int  # first input accepted -> last output, engine idle and never stalled
    interval: int  # steady-state cycles between inferences, inputs arriving one per cycle
    tail: int = 0  # last input accepted -> last output, engine idle and never stalled
    weight_rom_bits: int = 0  # rom_bits without the bias ROM
    output_span: int = 0  # first -> last output of a vector, once its first output is ready and
    # nothing stalls (how long a downstream engine's loading lasts)


@dataclass
class EngineSpec:
    """One engine instance of a design: its parameters, ROM files, cost and timing stage."""

    name: str  # ONNX node name of the layer
    instance: str
    engine: str  # the engine kind (registry key)
    n_in: int  # stream elements in per inference (an image: C*H*W)
    n_out: int  # ... out
    multipliers: int
    in_bits: int
    w_bits: int
    acc_bits: int
    out_bits: int
    shift: int
    relu: bool
    requant: bool
    w_file: str
    b_file: str
    kind: str = ""  # the node's op (dense, circulant, conv2d, maxpool2d, avgpool2d, global_avgpool)
    c_file: str = ""  # sparse: words per row
    delta_bits: int = 0  # sparse: index (delta) width
    n_words: int = 0  # sparse: entry ROM depth
    cnt_bits: int = 0  # sparse: width of a row's word count
    block_size: int = 1  # circulant: b (1: not block-circulant)
    tw_file: str = ""  # circulant: twiddle ROM (w_file holds the weight spectra)
    input_chw: list | None = None  # dense after a flatten of an image: its [C, H, W] (columns permuted)
    out_shape: list | None = None  # conv, pool: the [C, H, W] image it streams out
    b_bits: int = 0  # width of its bias ROM words (stored_bias_bits); 0: the accumulator's
    protection: str = "none"  # its ROM words' code (kernels/rom_protect.py; [plan] rom_protection)
    check_bits: int = 0  # ROM bits the code adds (in cost.rom_bits too)
    protect_lanes: bool = False  # one code per lane (weight) of a ROM word, not per word
    parameters: dict = field(default_factory=dict)  # the module's Verilog parameters, in order
    cost: EngineCost | None = None
    stage: object = None  # its stage in the edge-by-edge timing model (compiler/hw/timing.py)
    inputs: list = field(default_factory=list)  # the instance each input stream comes from ("input": the design's)

    def code_lanes(self, lanes: int) -> int:
        """The code lanes of a ROM whose words hold `lanes` weights: each its own code when the
        plan protects per weight, else one code per word."""
        return lanes if self.protect_lanes else 1

    @property
    def out_width(self) -> int:
        return self.out_bits if self.requant else self.acc_bits

    @property
    def weight_rom_bits(self) -> int:
        """ROM bits of the weights and their indices, or of the spectra and twiddles (no bias ROM)."""
        assert self.cost is not None
        return self.cost.weight_rom_bits


@dataclass(frozen=True)
class Planned:
    """One engine's proposal for a layer: the annotations it would write and what it costs."""

    engine: str
    annotations: dict  # engine, multipliers, the plan fields, engine_reason, cost, ...
    rom_bits: int
    cycles: int
    multipliers: int


# A plan field's check: an error text or None.
FieldCheck = Callable[[Any], "str | None"]


def positive_int(v) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else f"must be an integer >= 1, got {v!r}"


def non_negative_int(v) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else f"must be an integer >= 0, got {v!r}"


class Engine:
    """An engine kind. Subclasses set the class attributes and implement the methods."""

    kind: str = ""  # registry key, the `engine` annotation, design.json "engine"
    ops: tuple[str, ...] = ()  # integer-graph ops it computes
    default: bool = True  # the op's default engine (False: an alternative, e.g. sparse)
    module: str = ""  # its rtl/ file (rtl.DEPENDENCIES lists what it instantiates)
    plan_fields: dict[str, FieldCheck] = {}  # annotations the plan writes beside `engine`
    fuses_requantize: bool = False  # takes the requantize (+ReLU) that follows its node
    rom_streaming: bool = True  # closed-form timing (else the edge-by-edge model is needed)
    protectable: bool = False  # its ROMs may be parity/SECDED coded: a PROTECT parameter, a fault output
    input_ports: tuple[str, ...] = ("in",)  # its input streams' port prefixes (a join has two: in_a, in_b)
    joins_channels: bool = False  # a join whose inputs differ in channels (concat): same H x W only

    # ---- planning (compiler/passes/plan.py) ------------------------------------------------
    def budget_cycles(self, graph: Graph, node: Node, multipliers: int) -> int | None:
        """Cycles of this layer with `multipliers` multipliers, if it may set the cycle budget."""
        return None

    def fixed_interval(self, graph: Graph, node: Node) -> int | None:
        """An engine whose schedule is fixed: its interval (the budget rises to it)."""
        return None

    def plan(self, graph: Graph, node: Node, budget: int, multipliers: int | None, largest: int) -> Planned:
        """The cheapest configuration meeting `budget` cycles, or the one with exactly
        `multipliers` multipliers when the recipe fixes them (`largest`: the plan's multipliers
        option, the largest layer's, for engines that quote a comparison)."""
        raise NotImplementedError

    def check_plan(self, graph: Graph, node: Node) -> str | None:
        """Cross-field consistency of a planned node (fields are type-checked already)."""
        return None

    # ---- the design (compiler/backends/verilog.py) -----------------------------------------
    def spec(self, graph: Graph, node: Node, follow: Node | None, index: int, image) -> EngineSpec:
        """The instance for `node` (and the requantize `follow` it fuses), as layer `index`,
        taking `image` ([C, H, W] or None for a vector) from the stream."""
        raise NotImplementedError

    def write_roms(self, graph: Graph, spec: EngineSpec, folder: Path) -> None:
        """Its ROM images ($readmemh .mem files) into `folder`."""

    def stored(self, graph: Graph, spec: EngineSpec) -> StoredLayer | None:
        """Its ROMs as stored arrays and their layout (the bit-flip audit); None: no ROM of
        weights (pool, activation)."""
        return None

    def input_bits(self, spec: EngineSpec) -> list[int]:
        """The width of each input stream (one per `input_ports`)."""
        return [spec.in_bits]

    def describe(self, spec: EngineSpec) -> str:
        """One line for the generated top's comment (no user text: names are quoted elsewhere)."""
        return f"{spec.n_in} -> {spec.n_out}, {spec.kind} engine"

    # ---- the report (compiler/report) ------------------------------------------------------
    def layer_figures(self, graph: Graph, node: Node, entry: dict) -> dict:
        """What the layer stores and multiplies on this engine (report.json layer fields), from
        the node and its design.json engine `entry`: every weight stored and multiplied once per
        output position."""
        w = graph.params[node.inputs[1]]
        positions = output_positions(node)
        return {"stored_weights": int(w.size), "multiplies": positions * int(w.size), "index_bits": 0}

    def inference_work(self, layer: dict) -> dict:
        """Operations of one inference of a report.json layer entry (the energy model): every
        weight of its ROM read and multiplied once, zeros included."""
        n_out, n_in = layer["shape"]
        return {
            "multiplies": n_out * n_in,
            "additions": n_out * n_in,
            "weight_reads": n_out * n_in,
            "weight_read_bits": layer["rom_bits"],
            "skipped_zeros": 0,
        }

    def multiply_bits(self, layer: dict) -> tuple[int, int]:
        """Operand widths of its multiplies (energy model): weight x activation."""
        return layer["bits"], layer["input_format"]["bits"]

    def model(self, stage):
        """Its edge-by-edge control model for compiler/hw/timing.py."""
        raise NotImplementedError

    def work(self, stage) -> int:
        """Edges one frame keeps it busy (loading, computing, emitting): bounds a timing run."""
        raise NotImplementedError


def stream_spec(node: Node, index: int, engine: str, stage, in_bits: int, out_bits: int, **fields) -> EngineSpec:
    """The instance of an engine without weights, multipliers or requantization (pool, activation):
    `stage` is its schedule (n_in, n_out); `fields` set the rest (a ROM file, out_shape)."""
    defaults = {"w_file": "", "b_file": ""}
    return EngineSpec(
        name=node.name,
        instance=f"layer{index}",
        engine=engine,
        kind=node.op,
        n_in=stage.n_in,
        n_out=stage.n_out,
        multipliers=0,
        in_bits=in_bits,
        w_bits=0,
        acc_bits=out_bits,
        out_bits=out_bits,
        shift=0,
        relu=False,
        requant=False,
        stage=stage,
        **(defaults | fields),
    )


def output_positions(node: Node) -> int:
    """Uses of each weight per inference: H_out * W_out for a convolution, else 1."""
    if node.op != "conv2d":
        return 1
    _, h_out, w_out = node.attrs["out_shape"]
    return int(h_out * w_out)


def dense_macs(layer: dict) -> int:
    """Multiply-adds of a report.json layer computed densely: n_out * n_in, or for a convolution
    H_out * W_out * C_out * C_in * kH * kW (its `dense_multiplies`)."""
    return layer.get("dense_multiplies") or layer["shape"][0] * layer["shape"][1]


def output_fields(node: Node, follow: Node | None) -> dict:
    """Requantize (+ReLU) fused into the engine, or raw accumulators."""
    return {
        "out_bits": follow.attrs["bits"] if follow else node.attrs["acc_bits"],
        "shift": follow.attrs["shift"] if follow else 0,
        "relu": bool(follow and follow.attrs["relu"]),
        "requant": follow is not None,
    }


def bias_image(file: str, n: int, bits: int, slots: int = 1) -> RomImage:
    """A bias ROM of `slots` biases per word at `bits` each (slot s of word w: bias w*slots + s)."""
    words = -(-n // slots)
    index = np.arange(words * slots, dtype=np.int64).reshape(words, slots)
    index[index >= n] = -1
    field = RomField("bias", index, bits, tuple(s * bits for s in range(slots)))
    return RomImage(file, "bias", slots * bits, words, (field,), lanes=slots)


def stored_bias_bits(graph: Graph, node: Node) -> int:
    """Width of a layer's bias ROM words: the narrowest two's complement that holds every bias
    (at least 2 bits), not the accumulator's. The engines sign-extend them (B_BITS <= ACC_BITS):
    the ROM is smaller, and a flipped top bit moves a bias by no more than its own range instead
    of half the accumulator's (the bit-flip audit's first target, docs/security.md)."""
    bias = graph.params[node.inputs[2]] if len(node.inputs) > 2 else np.zeros(1, np.int64)
    widest = int(np.abs(np.asarray(bias, dtype=np.int64)).max(initial=0))
    return min(max(2, widest.bit_length() + 1), int(node.attrs["acc_bits"]))


def with_zero_biases(graph: Graph) -> Graph:
    """The graph with a zero bias param on every dense and conv node without one (what their bias
    ROMs hold), so every engine can describe its stored arrays (Engine.stored)."""
    missing = [n.name for n in graph.nodes if n.op in ("dense", "conv2d") and len(n.inputs) < 3]
    if not missing:
        return graph
    g = graph.copy()
    for node in (g.node(name) for name in missing):
        bias = f"{node.name}::bias(zeros)"
        g.params[bias] = np.zeros(g.params[node.inputs[1]].shape[0], dtype=np.int64)
        node.inputs.append(bias)
    return g


def bias_param(node: Node) -> str:
    """The name of a weighted node's bias param (the bit-flip audit gives every node one)."""
    if len(node.inputs) < 3:
        raise ValueError(f"layer {node.name!r} has no bias param")
    return node.inputs[2]


def bias_or_zeros(graph: Graph, node: Node, n: int) -> np.ndarray:
    return graph.params[node.inputs[2]] if len(node.inputs) > 2 else np.zeros(n, np.int64)


class VerilogBackendError(MpcError, ValueError):
    """A graph the hardware cannot build; the message names the node."""
