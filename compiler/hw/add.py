"""The residual join engine (rtl/add.v): two activation streams of one shape summed element by
element, exactly as docs/fixed-point.md "add (residual join)"; one pair per cycle through a
2-entry output FIFO (kernels.add.AddSchedule, the activation engine's schedule). No ROM, no
multiplier: like a pool, its schedule is fixed and the cycle budget of the other layers rises to it.

It is the one engine with two input streams (`input_ports`): compiler/hw/design.py gives its
spec both sources, the Verilog backend wires `in_a_*` and `in_b_*`, and the DAG timing model
(compiler/hw/dag_timing.py) replays its pair rule: a pair is taken at an edge where both inputs
are valid and the output FIFO has room, each ready following the *other* input's valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compiler.hw.base import Engine, EngineCost, EngineSpec, PlanError, Planned, stream_spec
from compiler.hw.registry import register
from compiler.hw.timing import register_model
from compiler.ir import Graph, Node
from kernels.activation import TABLE_BUFFER, TABLE_PIPELINE_EDGES, TableFifo
from kernels.add import AddSchedule


@dataclass(frozen=True)
class JoinStage:
    """The add engine's stage in the timing model: its schedule, typed apart from the activation
    engine's (the same TableSchedule) because it joins two streams."""

    schedule: AddSchedule

    @property
    def n_in(self) -> int:
        return self.schedule.n_in

    @property
    def n_out(self) -> int:
        return self.schedule.n_out


class PairJoin(TableFifo):
    """rtl/add.v's control edge by edge: the output FIFO's occupancy (TableFifo's), taking a
    pair when both inputs are valid and it has room."""

    def in_readies(self, valid_a: bool, valid_b: bool) -> tuple[bool, bool]:
        room = self.in_ready()
        return room and valid_b, room and valid_a


def add_cost(schedule: AddSchedule) -> EngineCost:
    """No ROM; one pair per cycle, one edge of latency."""
    return join_cost("add", schedule)


def join_cost(engine: str, schedule) -> EngineCost:
    """A join's cost (add, concat): no ROM, one element per cycle, one edge of latency."""
    return EngineCost(
        engine=engine,
        rom_bits=0,
        compute_cycles=schedule.compute_cycles,
        latency=schedule.latency,
        interval=schedule.n_in,
        tail=TABLE_PIPELINE_EDGES,
        weight_rom_bits=0,
        output_span=schedule.n_out - 1,
    )


def _product(shape) -> int:
    return math.prod(int(d) for d in shape)


def stream_elements(graph: Graph, tensor: str) -> int:
    """Elements per frame of a stream tensor of an integer graph, from the node that makes it
    (an image's out_shape, a dense layer's rows, a table's shape), through the elementwise
    requantize and add and the free quantize and flatten."""
    node = graph.producer(tensor)
    if node is None or node.op == "quantize":
        shape = graph.inputs[0].shape
    elif node.op in ("requantize", "add", "flatten"):
        return stream_elements(graph, node.inputs[0])
    elif "out_shape" in node.attrs:
        shape = node.attrs["out_shape"]
    elif node.op == "table":
        shape = node.attrs["shape"]
    elif node.op in ("dense", "circulant") and node.inputs[1] in graph.params:
        shape = graph.params[node.inputs[1]].shape[:1]
    else:
        raise PlanError(f"node {node.name!r}: cannot tell how many elements its {node.op} streams")
    return _product(shape)


class JoinEngine(Engine):
    """What the two-stream joins (add, concat) share: ports a and b, their widths, no ROM, the
    edge-by-edge DAG timing, and one frame's work for the timing model's hang limit."""

    plan_fields: dict = {}
    rom_streaming = False  # a design with a join is timed by the edge-by-edge DAG model
    input_ports = ("in_a", "in_b")

    def input_bits(self, spec: EngineSpec) -> list[int]:
        return [spec.parameters["A_BITS"], spec.parameters["B_BITS"]]

    def work(self, stage) -> int:
        return stage.n_in + TABLE_BUFFER


@register
class Add(JoinEngine):
    kind = "add"
    ops = ("add",)
    module = "add.v"

    def fixed_interval(self, graph: Graph, node: Node) -> int | None:
        return stream_elements(graph, node.inputs[0])  # one pair per cycle

    def plan(self, graph, node, budget, multipliers, largest):
        n = stream_elements(graph, node.inputs[0])
        annotations = {"engine": self.kind, "engine_reason": f"residual join: {n} element pairs, one per cycle"}
        return Planned(self.kind, annotations, 0, n, 0)

    def spec(self, graph, node, follow, index, image):
        a = node.attrs
        bits_a, bits_b = (int(f["bits"]) for f in a["input_formats"])
        out_bits = int(a["bits"])
        schedule = AddSchedule(_product(image) if image else stream_elements(graph, node.inputs[0]))
        out_shape = list(image) if image else None  # an image stays an image, in the same order
        spec = stream_spec(node, index, self.kind, JoinStage(schedule), bits_a, out_bits, out_shape=out_shape)
        spec.relu, spec.shift = bool(a["relu"]), int(a["shift"])  # acc_bits = out_bits: it streams y
        spec.cost = add_cost(schedule)
        spec.parameters = {
            "A_BITS": bits_a,
            "B_BITS": bits_b,
            "SHIFT_A": int(a["shift_a"]),
            "SHIFT_B": int(a["shift_b"]),
            "SHIFT": spec.shift,
            "OUT_BITS": out_bits,
            "RELU": int(spec.relu),
        }
        return spec

    def describe(self, spec: EngineSpec) -> str:
        p = spec.parameters
        return (
            f"{spec.n_in} element pairs, add engine: a * 2**{p['SHIFT_A']} + b * 2**{p['SHIFT_B']}, "
            f">> {p['SHIFT']} to {p['OUT_BITS']} bits{', ReLU' if p['RELU'] else ''}"
        )

    def model(self, stage):
        return PairJoin(stage.schedule)


register_model(JoinStage, lambda stage: PairJoin(stage.schedule), lambda s: s.n_in + TABLE_BUFFER)
