"""The planned integer graph as the design's engine instances: `engine_specs` maps each engine
node (with the requantize it fuses) onto an EngineSpec, checks that every engine takes the stream
its predecessor emits, and applies the plan's ROM protection (`protect`: the PROTECT parameter and
the check bits the report and the energy model count). Read by the Verilog backend, which writes
the instances out, and by the bit-flip audit, which reads their ROMs back (compiler/audit/bitflip.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from compiler import hw
from compiler.hw.base import EngineSpec, VerilogBackendError, with_zero_biases
from compiler.ir import FixedPoint, Graph, Node
from kernels.rom_protect import PROTECT_CODE, check_bits

FREE_OPS = ("quantize", "flatten", "dequantize")  # no engine: the host quantizes, flatten is stream order


DESIGN_INPUT = "input"  # EngineSpec.inputs: the design's input stream


@dataclass(frozen=True)
class _Stream:
    """What a tensor of the graph is in hardware: the stream of `source` (an engine instance or
    DESIGN_INPUT), an image [C, H, W] while it carries one (else None), its values' width."""

    source: str
    image: list | None
    width: int


def engine_specs(graph: Graph) -> list[EngineSpec]:
    """Map the planned integer graph onto engines, in its topological order: each engine node
    plus the requantize that follows it where the engine fuses one. A graph may branch: a tensor
    read by several engines is one stream broadcast to them (a fork), and a join (`add`, `concat`) takes two
    streams; every spec names the instance each of its inputs comes from (`inputs`). Checks that
    every engine takes the width and order of the stream(s) it reads, and that every engine's
    output is read."""
    try:
        hw.require_plan(graph)
    except (hw.PlanError, ValueError) as e:
        raise VerilogBackendError(str(e)) from None
    specs: list[EngineSpec] = []
    input_width = FixedPoint.from_dict(graph.meta["input_format"]).bits
    streams = {graph.inputs[0].name: _Stream(DESIGN_INPUT, input_image(graph), input_width)}
    fused: set[str] = set()
    read: dict[str, int] = {}  # source -> engines (or the design output) reading its stream
    for node in graph.nodes:
        if node.name in fused:
            continue
        if node.op in FREE_OPS:
            _free(node, streams)
            continue
        if node.op not in hw.engine_ops() or node.inputs[0] not in streams:
            raise VerilogBackendError(
                f"node {node.name!r}: a {node.op} that does not follow a dense or conv layer has no hardware engine"
                + _why_unfused(graph, node)
            )
        engine = hw.planned_engine(node)
        follow = _fused_requantize(graph, node) if engine.fuses_requantize else None
        ins = [streams[t] for t in node.inputs[: len(engine.input_ports)]]
        spec = engine.spec(graph, node, follow, len(specs), ins[0].image)
        spec.inputs = [s.source for s in ins]
        if engine.protectable:
            protect(graph, engine, spec)
        _check_inputs(node, engine, spec, ins)
        for s in ins:
            read[s.source] = read.get(s.source, 0) + 1
        specs.append(spec)
        out = follow or node
        if follow:
            fused.add(follow.name)
        streams[out.outputs[0]] = _Stream(spec.instance, spec.out_shape, spec.out_width)
    _check_design_output(specs)
    output = streams.get(graph.outputs[0].name)
    unread = [s for s in specs[:-1] if not read.get(s.instance)]
    if unread or (output is not None and output.source != specs[-1].instance):
        name = unread[0].name if unread else specs[-1].name
        raise VerilogBackendError(f"layer {name!r}: its output is read by no engine and is not the design's output")
    return specs


def _free(node, streams: dict) -> None:
    """quantize (the host's), flatten (stream order) and dequantize (the design's output) have no
    engine: their output is their input's stream. After a channel-last flatten (attr `order` =
    "hwc") the stream's order is the graph's: a plain vector."""
    stream = streams.get(node.inputs[0])
    if stream is None:
        return
    if node.op == "flatten" and node.attrs.get("order", "row-major") == "hwc":
        stream = replace(stream, image=None)
    streams[node.outputs[0]] = stream


def _why_unfused(graph: Graph, node: Node) -> str:
    """Why a requantize found no engine to fuse into, where the graph tells (issue 27's DAGs)."""
    if node.op != "requantize":
        return ""
    producer = graph.producer(node.inputs[0])
    if producer is not None and len(graph.consumers(node.inputs[0])) > 1:
        return f" (it is one of several readers of {producer.name!r}'s output; an engine fuses a sole requantize)"
    if producer is not None and producer.op == "add":
        return f" (a ReLU after the add {producer.name!r} fuses into it only when it is the add's one reader)"
    return ""


def _fused_requantize(graph: Graph, node: Node) -> Node | None:
    """The requantize (+ReLU) an engine takes into itself: the one node reading its output, if that
    is a requantize."""
    readers = graph.consumers(node.outputs[0])
    return readers[0] if len(readers) == 1 and readers[0].op == "requantize" else None


def _check_inputs(node, engine, spec: EngineSpec, ins: list) -> None:
    """Each input stream's width is the one the engine takes; a join's two streams carry one shape
    in one order (a channel join's: one H x W, or both vectors)."""
    for port, bits, stream in zip(engine.input_ports, engine.input_bits(spec), ins):
        if bits != stream.width:
            which = "" if len(ins) == 1 else f" on {port}"
            raise VerilogBackendError(
                f"node {node.name!r}: takes {bits}-bit inputs{which}, but the stream "
                f"before it carries {stream.width}-bit values"
            )

    def layout(image):  # what the streams must share: a channel join's inputs differ in channels
        return (image[1:] if image else None) if engine.joins_channels else image

    if len(ins) > 1 and any(layout(s.image) != layout(ins[0].image) for s in ins[1:]):
        raise VerilogBackendError(
            f"node {node.name!r}: its input streams differ in shape or order "
            f"({' and '.join(str(s.image or 'a vector') for s in ins)})"
        )


def protect(graph: Graph, engine, spec: EngineSpec) -> None:
    """The plan's ROM protection on a protectable engine: its PROTECT parameter and its ROM bits
    with the check bits of every word (the cost the report and the energy model see)."""
    plan = graph.meta.get("plan", {})
    protection = plan.get("rom_protection", "none")
    if protection == "none":
        return
    spec.protection = protection
    spec.parameters["PROTECT"] = PROTECT_CODE[protection]
    if plan.get("rom_protection_unit", "word") == "weight":
        spec.protect_lanes = True
        spec.parameters["PROTECT_LANES"] = 1
    stored = engine.stored(with_zero_biases(graph), spec)
    extra = {role: 0 for role in ("bias", "other")}
    for image in stored.images:
        code = check_bits(image.width, protection, spec.code_lanes(image.lanes))
        extra["bias" if image.role == "bias" else "other"] += image.words * code
    assert spec.cost is not None
    spec.check_bits = extra["bias"] + extra["other"]
    spec.cost = replace(
        spec.cost,
        rom_bits=spec.cost.rom_bits + extra["bias"] + extra["other"],
        weight_rom_bits=spec.cost.weight_rom_bits + extra["other"],
    )


def _check_design_output(specs: list[EngineSpec]) -> None:
    if not specs:
        raise VerilogBackendError("the graph has no layer to build an engine for")
    last = specs[-1]
    if last.requant:
        raise VerilogBackendError(f"layer {last.name!r}: the last layer must output raw accumulators")
    if last.out_shape and last.out_shape[1] * last.out_shape[2] > 1:
        raise VerilogBackendError(
            f"layer {last.name!r}: the design's output is a {last.out_shape} image; "
            "it must be a vector (end in a dense layer or a global pool)"
        )


def input_image(graph: Graph) -> list[int] | None:
    shape = [int(d) for d in graph.inputs[0].shape]
    return shape if len(shape) == 3 else None
