"""The channel join engine (rtl/concat.v): two activation streams joined along the channel axis,
each brought to the common format first, exactly as docs/fixed-point.md "concat (channel join)";
one element of the joined stream per cycle through a 2-entry output FIFO
(kernels.concat.ConcatSchedule, the activation engine's schedule over the joined stream). No ROM,
no multiplier: like add, its schedule is fixed and the cycle budget of the other layers rises to it.

A join with two input streams (`input_ports`) like add, but it takes no pairs: for every pixel
it takes a's C_A elements, then b's C_B (kernels.concat.concat_stream_order); each input's ready
is high only in its own turn. compiler/hw/dag_timing.py replays that rule (`ChannelJoin`) and
sizes the FIFO in front of its early input in the early input's elements (`fifo_holding`).
"""

from __future__ import annotations

import math

from compiler.hw.add import JoinEngine, join_cost
from compiler.hw.base import EngineCost, EngineSpec, Planned, stream_spec
from compiler.hw.registry import register
from compiler.hw.timing import register_model
from compiler.ir import Graph, Node
from kernels.activation import TABLE_BUFFER, TableFifo
from kernels.concat import ConcatSchedule


class ChannelJoin(TableFifo):
    """rtl/concat.v's control edge by edge: the output FIFO's occupancy (TableFifo's) and whose
    turn it is (a's C_A elements of a pixel, then b's C_B), each input ready only in its turn."""

    def __init__(self, schedule: ConcatSchedule):
        super().__init__(schedule.table)
        self.channels = schedule.channels
        self.on_b = False
        self.taken = 0  # elements of the due input taken in this pixel

    def in_readies(self, valid_a: bool, valid_b: bool) -> tuple[bool, bool]:
        room = self.in_ready()
        return room and not self.on_b, room and self.on_b

    def step(self, accept: bool, out_ready: bool) -> None:
        """`accept`: an element of the due input was taken at this edge."""
        super().step(accept, out_ready)
        if accept:
            self.taken += 1
            if self.taken == self.channels[self.on_b]:
                self.taken, self.on_b = 0, not self.on_b


def concat_cost(schedule: ConcatSchedule) -> EngineCost:
    """No ROM; one element of the joined stream per cycle, one edge of latency."""
    return join_cost("concat", schedule)


def concat_schedule(node: Node, image) -> ConcatSchedule:
    """Its schedule from the node's in_shapes: an image stream ([C, H, W], `image` given) joins
    C_A and C_B channels on each of its H * W pixels; a vector joins the whole of a and of b."""
    shape_a, shape_b = node.attrs["in_shapes"]
    if image:
        return ConcatSchedule((int(shape_a[0]), int(shape_b[0])), math.prod(int(d) for d in shape_a[1:]))
    return ConcatSchedule((math.prod(int(d) for d in shape_a), math.prod(int(d) for d in shape_b)), 1)


def fifo_holding(schedule: ConcatSchedule, port: int, late_holding: int, fork_elements: int) -> int:
    """Elements of input `port` (the early one) that its FIFO must hold so the fork feeding both
    branches never stops while the late branch waits (compiler/hw/dag_timing.py): the late
    branch's holding (in the fork's elements) as pixels of the join, plus one pixel, because the
    join takes a whole pixel of a before any of b (so the early input may be a pixel ahead)."""
    pixels = -(-late_holding * schedule.pixels // fork_elements)
    return (pixels + 1) * schedule.channels[port]


@register
class Concat(JoinEngine):
    kind = "concat"
    ops = ("concat",)
    module = "concat.v"
    joins_channels = True  # its inputs agree in all but the channel axis (hw/design.py)

    def fixed_interval(self, graph: Graph, node: Node) -> int | None:
        return math.prod(int(d) for d in node.attrs["out_shape"])  # one element of the joined stream per cycle

    def plan(self, graph, node, budget, multipliers, largest):
        n = math.prod(int(d) for d in node.attrs["out_shape"])
        annotations = {"engine": self.kind, "engine_reason": f"channel join: {n} elements, one per cycle"}
        return Planned(self.kind, annotations, 0, n, 0)

    def spec(self, graph, node, follow, index, image):
        a = node.attrs
        bits_a, bits_b = (int(f["bits"]) for f in a["input_formats"])
        out_bits = int(a["bits"])
        schedule = concat_schedule(node, image)
        out_shape = [int(d) for d in a["out_shape"]] if image else None  # an image stays an image
        spec = stream_spec(node, index, self.kind, schedule, bits_a, out_bits, out_shape=out_shape)
        spec.cost = concat_cost(schedule)
        shift_a, shift_b = (int(s) for s in a["shifts"])
        spec.parameters = {
            "A_BITS": bits_a,
            "B_BITS": bits_b,
            "C_A": schedule.channels[0],
            "C_B": schedule.channels[1],
            "SHIFT_A": shift_a,
            "SHIFT_B": shift_b,
            "OUT_BITS": out_bits,
        }
        return spec

    def describe(self, spec: EngineSpec) -> str:
        p = spec.parameters
        return (
            f"{spec.n_in} elements, concat engine: per pixel {p['C_A']} of a >> {p['SHIFT_A']}, "
            f"then {p['C_B']} of b >> {p['SHIFT_B']}, to {p['OUT_BITS']} bits"
        )

    def model(self, stage):
        return ChannelJoin(stage)


register_model(ConcatSchedule, ChannelJoin, lambda s: s.n_in + TABLE_BUFFER)
