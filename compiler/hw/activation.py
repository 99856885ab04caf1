"""The activation engine (rtl/activation.v): an activation function as an exact lookup table
of 2**IN_BITS words (docs/fixed-point.md, "table"), one element per cycle through a 2-entry
output FIFO (kernels.activation.TableSchedule). No multiplier; its only cost is the ROM.

It computes the integer op `table`. It is not a weighted layer: the report counts its ROM bits
in the hardware totals (design.json engines), and it has no layer entry, so the energy model
(which prices layers' multiplies and weight reads) leaves it out.
"""

from __future__ import annotations

from pathlib import Path

from compiler.hw.base import Engine, EngineCost, EngineSpec, Planned, stream_spec
from compiler.hw.registry import register
from compiler.hw.timing import register_model
from compiler.ir import Graph, Node
from kernels.activation import TABLE_BUFFER, TABLE_PIPELINE_EDGES, TableFifo, TableSchedule
from kernels.rom import write_mem


def table_schedule(node: Node) -> TableSchedule:
    n = 1
    for d in node.attrs["shape"]:
        n *= int(d)
    return TableSchedule(n)


def table_cost(schedule: TableSchedule, in_bits: int, out_bits: int) -> EngineCost:
    """ROM bits 2**in_bits * out_bits; one element per cycle, one edge of latency."""
    rom = (1 << in_bits) * out_bits
    return EngineCost(
        engine="activation",
        rom_bits=rom,
        compute_cycles=schedule.compute_cycles,
        latency=schedule.latency,
        interval=schedule.n_in,
        tail=TABLE_PIPELINE_EDGES,
        weight_rom_bits=rom,
        output_span=schedule.n_out - 1,
    )


def _formats(node: Node) -> tuple[int, int]:
    return int(node.attrs["input_format"]["bits"]), int(node.attrs["format"]["bits"])


@register
class Activation(Engine):
    kind = "activation"
    ops = ("table",)
    module = "activation.v"
    plan_fields = {}
    fuses_requantize = False
    rom_streaming = False  # a design with one is timed by the edge-by-edge model

    def fixed_interval(self, graph: Graph, node: Node) -> int | None:
        return table_schedule(node).n_in

    def plan(self, graph, node, budget, multipliers, largest):
        in_bits, out_bits = _formats(node)
        schedule = table_schedule(node)
        cost = table_cost(schedule, in_bits, out_bits)
        annotations = {
            "engine": self.kind,
            "engine_reason": f"lookup table of {1 << in_bits} x {out_bits} bits, one element per cycle",
        }
        return Planned(self.kind, annotations, cost.rom_bits, schedule.compute_cycles, 0)

    def spec(self, graph, node, follow, index, image):
        in_bits, out_bits = _formats(node)
        schedule = table_schedule(node)
        spec = stream_spec(
            node,
            index,
            self.kind,
            schedule,
            in_bits,
            out_bits,
            w_file=f"layer{index}_table.mem",
            out_shape=list(image) if image else None,
        )
        spec.cost = table_cost(schedule, in_bits, out_bits)
        spec.parameters = {"IN_BITS": in_bits, "OUT_BITS": out_bits, "ROM_FILE": spec.w_file}
        return spec

    def write_roms(self, graph: Graph, spec: EngineSpec, folder: Path) -> None:
        table = graph.params[graph.node(spec.name).inputs[1]]
        mask = (1 << spec.out_bits) - 1
        write_mem(folder / spec.w_file, [int(v) & mask for v in table], spec.out_bits)

    def describe(self, spec: EngineSpec) -> str:
        return (
            f"{spec.n_in} elements, activation engine, table of {1 << spec.in_bits} x {spec.out_bits} bits "
            f"({spec.in_bits}-bit codes in)"
        )

    def model(self, stage):
        return TableFifo(stage)

    def work(self, stage) -> int:
        return stage.n_in + TABLE_BUFFER


register_model(TableSchedule, TableFifo, lambda s: s.n_in + TABLE_BUFFER)
