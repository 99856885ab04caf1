"""Integer graph -> Verilog: a streaming top that chains one engine per layer.

The engines are the hand-written modules in rtl/ (a static library, as in hls4ml); this
backend only writes the small top, the ROM images (.mem, $readmemh format), a file list and
`design.json` (ports, widths, the input stream's order and per-engine parameters and cost, read
by `mpc simulate` and the report). Everything engine-specific comes from the engine registry
(compiler/hw): which engine runs a node is the graph's plan (the `plan` pass), never a default.

    in stream (one element per beat) -> [conv2d (+requantize/ReLU) -> [pool2d] -> ...]
        -> dense_mac (+requantize/ReLU) -> ... -> dense_mac
        -> argmax (collects the logits) -> out beat: all logits + argmax

All engines share one valid/ready stream interface. An engine that fuses requantization takes
the requantize (+ReLU) node that follows its layer; a flatten is free. Images travel
channel-last (for y, for x, for c; docs/fixed-point.md "Streams"): the host streams a 4-D
input transposed (design.json "input_order": "hwc"), and the dense layer after a flatten
stores its weight columns in that order (compiler.hw.dense.stream_weight_matrix), unless the
flatten itself is channel-last (attr `order` = "hwc", before a block-circulant layer): then
the graph's vector is already the stream and the layer's columns are stored as they are.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, replace
from pathlib import Path

from compiler import hw
from compiler.backends.serial import write_serial_top
from compiler.hw import argmax
from compiler.hw.base import EngineSpec, VerilogBackendError, with_zero_biases
from compiler.hw.timing import design_interval, design_latency, pipeline_cycles
from compiler.ir import FixedPoint, Graph
from kernels.rom_protect import PROTECT_CODE, check_bits
from rtl import RTL_DIR, sources

TOP = "mpc_top"
FREE_OPS = ("quantize", "flatten", "dequantize")  # no engine: the host quantizes, flatten is stream order

__all__ = ["VerilogBackendError", "engine_specs", "write_verilog", "TOP"]


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
    image = _input_image(graph)  # [C, H, W] while the stream carries an image, else None
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


def _input_image(graph: Graph) -> list[int] | None:
    shape = [int(d) for d in graph.inputs[0].shape]
    return shape if len(shape) == 3 else None


# ------------------------------------------------------------------------ files
def write_verilog(graph: Graph, folder: str | Path) -> dict:
    """Write the design into `folder`; return the design description (also in design.json)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specs = engine_specs(graph)
    for spec in specs:
        hw.engine(spec.engine).write_roms(graph, spec, folder)
    modules = sources(*sorted({hw.engine(s.engine).module for s in specs}), argmax.MODULE)
    for m in modules:
        shutil.copy(RTL_DIR / m, folder / m)
    in_fmt = FixedPoint.from_dict(graph.meta["input_format"])
    n_classes = specs[-1].n_out
    latency, interval, model = _estimated_cycles(specs, n_classes)
    image = _input_image(graph)
    design = {
        "top": TOP,
        "sources": modules + [f"{TOP}.v"],
        "n_in": specs[0].n_in,
        "in_bits": in_fmt.bits,
        "input_shape": [int(d) for d in graph.inputs[0].shape],
        # "hwc": stream x_q[c, y, x] for y, for x, for c (x_q.transpose(1, 2, 0)); "row-major": x_q.ravel()
        "input_order": "hwc" if image else "row-major",
        "n_classes": n_classes,
        "logit_bits": specs[-1].out_width,
        "idx_bits": max(1, math.ceil(math.log2(n_classes))),
        "engines": [_engine_entry(s) for s in specs],
        "estimated_latency": latency,
        "estimated_interval": interval,
        "timing_model": model,
    }
    (folder / f"{TOP}.v").write_text(_top_verilog(specs, design))
    (folder / "files.f").write_text("\n".join([*modules, f"{TOP}.v"]) + "\n")
    design["serial_top"] = write_serial_top(folder, design)  # the board top (UART), compiler/backends/serial.py
    (folder / "design.json").write_text(json.dumps(design, indent=1))
    return design


def _estimated_cycles(specs: list[EngineSpec], n_classes: int) -> tuple[int, int, str]:
    """(latency, interval, how): closed forms for chains of ROM-streaming engines, the
    edge-by-edge model of compiler/hw/timing.py once a line-buffered engine is in the chain."""
    if not all(hw.engine(s.engine).rom_streaming for s in specs):
        latency, interval = pipeline_cycles([s.stage for s in specs], n_classes)
        return latency, interval, "edge-by-edge model of the engines' control (compiler/hw/timing.py)"
    costs = [s.cost for s in specs if s.cost is not None]
    return (
        design_latency(specs[0].n_in, costs),
        design_interval(specs[0].n_in, costs, n_classes),
        "closed form (compiler/hw/timing.py design_latency, design_interval)",
    )


def _engine_entry(s: EngineSpec) -> dict:
    assert s.cost is not None
    entry = {k: v for k, v in asdict(s).items() if k not in ("cost", "stage")}
    return entry | {
        "rom_bits": s.cost.rom_bits,
        "weight_rom_bits": s.weight_rom_bits,
        "compute_cycles": s.cost.compute_cycles,
        "latency": s.cost.latency,
        "interval": s.cost.interval,
        "cost": asdict(s.cost),
    }


def _top_verilog(specs: list[EngineSpec], d: dict) -> str:
    lines = [
        "// Generated by mpc: do not edit. One engine per layer, then argmax.",
        "// Numeric contract: docs/fixed-point.md. Layers (their names are in design.json): "
        + ", ".join(s.instance for s in specs),
        "`default_nettype none",
        f"module {TOP} (",
        "    input  wire clk,",
        "    input  wire rst,",
        "    input  wire in_valid,",
        "    output wire in_ready,",
        f"    input  wire signed [{d['in_bits'] - 1}:0] in_data,",
        "    output wire out_valid,",
        "    input  wire out_ready,",
        f"    output wire [{d['n_classes'] * d['logit_bits'] - 1}:0] out_logits,",
        f"    output wire [{d['idx_bits'] - 1}:0] out_argmax,",
        "    output wire fault  // a protected ROM word read with an uncorrectable error (sticky until rst)",
        ");",
    ]
    prev = ("in_valid", "in_ready", "in_data")
    for s in specs:
        v, r, data = f"{s.instance}_valid", f"{s.instance}_ready", f"{s.instance}_data"
        lines += [
            f"    // {s.instance}: {hw.engine(s.engine).describe(s)}",
            f"    wire {v};",
            f"    wire {r};",
            f"    wire signed [{s.out_width - 1}:0] {data};",
        ]
        fault = f", .fault({s.instance}_fault)" if hw.engine(s.engine).protectable else ""
        lines += [f"    wire {s.instance}_fault;"] if fault else []
        lines += _instance_header(hw.engine(s.engine).module.removesuffix(".v"), s)
        lines += [
            f"        .clk(clk), .rst(rst), .in_valid({prev[0]}), .in_ready({prev[1]}), .in_data({prev[2]}),",
            f"        .out_valid({v}), .out_ready({r}), .out_data({data}){fault});",
        ]
        prev = (v, r, data)
    faults = [f"{s.instance}_fault" for s in specs if hw.engine(s.engine).protectable]
    any_fault = " | ".join(faults) if faults else "1'b0"
    lines.append(f"    assign fault = {any_fault};")
    lines += argmax.instance_lines(d["n_classes"], d["logit_bits"], d["idx_bits"], prev)
    lines += [
        "endmodule",
        "`default_nettype wire",
        "",
    ]
    return "\n".join(lines)


def _parameter(key: str, value) -> str:
    if isinstance(value, str):
        if not all(c.isalnum() or c in "._-" for c in value):
            raise VerilogBackendError(f"parameter {key}: {value!r} is not a plain file name")
        return f'.{key}("{value}")'
    return f".{key}({int(value)})"


def _instance_header(module: str, s: EngineSpec) -> list[str]:
    """`module #(...) layerK (` from the engine's parameters, six to a line."""
    items = [_parameter(k, v) for k, v in s.parameters.items()]
    rows = [", ".join(items[i : i + 6]) for i in range(0, len(items), 6)]
    if len(rows) == 1:
        return [f"    {module} #({rows[0]}) {s.instance} ("]
    return (
        [f"    {module} #({rows[0]},"]
        + [f"        {row}," for row in rows[1:-1]]
        + [f"        {rows[-1]}) {s.instance} ("]
    )
