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

from compiler.ir import Graph, Node


class PlanError(ValueError):
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
    parameters: dict = field(default_factory=dict)  # the module's Verilog parameters, in order
    cost: EngineCost | None = None
    stage: object = None  # its stage in the edge-by-edge timing model (compiler/hw/timing.py)

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


def bias_or_zeros(graph: Graph, node: Node, n: int) -> np.ndarray:
    return graph.params[node.inputs[2]] if len(node.inputs) > 2 else np.zeros(n, np.int64)


class VerilogBackendError(ValueError):
    """A graph the hardware cannot build; the message names the node."""
