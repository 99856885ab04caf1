"""The planned integer graph as the design's engine instances: `engine_specs` maps each engine
node (with the requantize it fuses) onto an EngineSpec, checks that every engine takes the stream
its predecessor emits, and applies the plan's ROM protection (`protect`: the PROTECT parameter and
the check bits the report and the energy model count). Read by the Verilog backend, which writes
the instances out, and by the bit-flip audit, which reads their ROMs back (compiler/audit/bitflip.py).
"""

from __future__ import annotations

from dataclasses import replace

from compiler import hw
from compiler.hw.base import EngineSpec, VerilogBackendError, with_zero_biases
from compiler.ir import FixedPoint, Graph
from kernels.rom_protect import PROTECT_CODE, check_bits

FREE_OPS = ("quantize", "flatten", "dequantize")  # no engine: the host quantizes, flatten is stream order


def engine_specs(graph: Graph) -> list[EngineSpec]:
    """Map the planned integer graph onto engines: each engine node plus the requantize that
    follows it where the engine fuses one; checks that every engine takes the stream its
    predecessor emits."""
    try:
        hw.require_plan(graph)
    except (hw.PlanError, ValueError) as e:
        raise VerilogBackendError(str(e)) from None
    specs: list[EngineSpec] = []
    nodes = [n for n in graph.nodes if n.op not in FREE_OPS]
    channel_last = _after_channel_last_flatten(graph)
    image = input_image(graph)  # [C, H, W] while the stream carries an image, else None
    width = FixedPoint.from_dict(graph.meta["input_format"]).bits
    i = 0
    while i < len(nodes):
        node = nodes[i]
        if node.op not in hw.engine_ops():
            raise VerilogBackendError(
                f"node {node.name!r}: a {node.op} that does not follow a dense or conv layer has no hardware engine"
            )
        engine = hw.planned_engine(node)
        follow = (
            nodes[i + 1]
            if (engine.fuses_requantize and i + 1 < len(nodes) and nodes[i + 1].op == "requantize")
            else None
        )
        if node.name in channel_last:
            image = None  # after a channel-last flatten the stream's order is the graph's: a plain vector
        spec = engine.spec(graph, node, follow, len(specs), image)
        if engine.protectable:
            protect(graph, engine, spec)
        if spec.in_bits != width:
            raise VerilogBackendError(
                f"node {node.name!r}: takes {spec.in_bits}-bit inputs, but the stream "
                f"before it carries {width}-bit values"
            )
        specs.append(spec)
        image, width = spec.out_shape, spec.out_width
        i += 2 if follow else 1
    _check_design_output(specs)
    return specs


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


def _after_channel_last_flatten(graph: Graph) -> set[str]:
    """The first engine nodes after a flatten with `order` = "hwc" (the image's stream order, so
    the flatten is free and the layer's columns are already in that order). A requantize is
    fused into the engine before it."""
    after: set[str] = set()
    channel_last = False
    for node in graph.nodes:
        if node.op == "flatten":
            channel_last = node.attrs.get("order", "row-major") == "hwc"
        elif node.op not in FREE_OPS and node.op != "requantize":
            if channel_last:
                after.add(node.name)
            channel_last = False
    return after


def input_image(graph: Graph) -> list[int] | None:
    shape = [int(d) for d in graph.inputs[0].shape]
    return shape if len(shape) == 3 else None
