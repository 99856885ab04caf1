"""Integer graph -> Verilog: a streaming top that chains one engine per layer.

The engines are the hand-written modules in rtl/ (a static library, as in hls4ml); this
backend only writes the small top, the ROM images (.mem, $readmemh format), a file list and
`design.json` (ports, widths, the input stream's order and per-engine parameters and cost, read
by `mpc simulate` and the report). Everything engine-specific comes from the engine registry
(compiler/hw): which engine runs a node is the graph's plan (the `plan` pass), never a default;
the engine instances, with their ROM protection, are compiler/hw/design.py's `engine_specs`.

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
from dataclasses import asdict
from pathlib import Path

from compiler import hw
from compiler.backends.serial import write_serial_top
from compiler.hw import argmax
from compiler.hw.base import EngineSpec, VerilogBackendError
from compiler.hw.dag_timing import DagTiming, JoinFifo, dag_timing, is_dag
from compiler.hw.design import DESIGN_INPUT, engine_specs, input_image
from compiler.hw.timing import design_interval, design_latency, pipeline_cycles
from compiler.ir import FixedPoint, Graph
from rtl import RTL_DIR, sources

TOP = "mpc_top"

__all__ = ["VerilogBackendError", "engine_specs", "write_verilog", "TOP"]


# ------------------------------------------------------------------------ files
def write_verilog(graph: Graph, folder: str | Path) -> dict:
    """Write the design into `folder`; return the design description (also in design.json)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specs = engine_specs(graph)
    for spec in specs:
        hw.engine(spec.engine).write_roms(graph, spec, folder)
    n_classes = specs[-1].n_out
    dag = dag_timing(specs, n_classes) if is_dag(specs) else None
    glue = [JOIN_MODULES[m] for m in ("fork", "fifo") if dag and _uses(specs, dag, m)]
    modules = sources(*sorted({hw.engine(s.engine).module for s in specs} | set(glue)), argmax.MODULE)
    for m in modules:
        shutil.copy(RTL_DIR / m, folder / m)
    in_fmt = FixedPoint.from_dict(graph.meta["input_format"])
    latency, interval, model = _estimated_cycles(specs, n_classes, dag)
    image = input_image(graph)
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
    if dag:  # a branching design: its forks and join FIFOs (each engine's "inputs" names its sources)
        design["forks"] = [{"source": src, "readers": n} for src, n in _readers(specs).items() if n > 1]
        design["fifos"] = [_fifo_entry(f) for f in dag.fifos]
    (folder / f"{TOP}.v").write_text(_top_verilog(specs, design, dag))
    (folder / "files.f").write_text("\n".join([*modules, f"{TOP}.v"]) + "\n")
    design["serial_top"] = write_serial_top(folder, design)  # the board top (UART), compiler/backends/serial.py
    (folder / "design.json").write_text(json.dumps(design, indent=1))
    return design


def _estimated_cycles(specs: list[EngineSpec], n_classes: int, dag: DagTiming | None) -> tuple[int, int, str]:
    """(latency, interval, how): closed forms for chains of ROM-streaming engines, the
    edge-by-edge model of compiler/hw/timing.py once a line-buffered engine is in the chain, and
    its DAG form (compiler/hw/dag_timing.py) for a design that branches."""
    if dag:
        how = f"edge-by-edge model of the branching design, {dag.frames} frames (compiler/hw/dag_timing.py)"
        return dag.latency, dag.interval, how
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


def _top_verilog(specs: list[EngineSpec], d: dict, dag: DagTiming | None = None) -> str:
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
    readers = _readers(specs)
    fifos = {(f.consumer, f.port): f for f in dag.fifos} if dag else {}
    taps: dict[str, list] = {}  # a forked stream: one (valid, ready, data) per reader, in order
    wires = {DESIGN_INPUT: ("in_valid", "in_ready", "in_data")}

    def tap(source: str) -> tuple:
        return taps[source].pop(0) if source in taps else wires[source]

    if readers.get(DESIGN_INPUT, 0) > 1:
        lines += _fork_lines("in", wires[DESIGN_INPUT], readers[DESIGN_INPUT], taps, DESIGN_INPUT)
    for s in specs:
        engine = hw.engine(s.engine)
        ins = []
        for k, (port, source) in enumerate(zip(engine.input_ports, s.inputs)):
            channel = tap(source)
            if (s.instance, k) in fifos:
                lines += _fifo_lines(fifos[(s.instance, k)], channel)
                channel = tuple(f"{fifos[(s.instance, k)].instance}_{x}" for x in ("valid", "ready", "data"))
            ins.append((port, channel))
        v, r, data = f"{s.instance}_valid", f"{s.instance}_ready", f"{s.instance}_data"
        lines += [
            f"    // {s.instance}: {engine.describe(s)}",
            f"    wire {v};",
            f"    wire {r};",
            f"    wire signed [{s.out_width - 1}:0] {data};",
        ]
        fault = f", .fault({s.instance}_fault)" if engine.protectable else ""
        lines += [f"    wire {s.instance}_fault;"] if fault else []
        lines += _instance_header(engine.module.removesuffix(".v"), s)
        connections = ", ".join(f".{p}_valid({c[0]}), .{p}_ready({c[1]}), .{p}_data({c[2]})" for p, c in ins)
        lines += [
            f"        .clk(clk), .rst(rst), {connections},",
            f"        .out_valid({v}), .out_ready({r}), .out_data({data}){fault});",
        ]
        wires[s.instance] = (v, r, data)
        if readers[s.instance] > 1:
            lines += _fork_lines(s.instance, wires[s.instance], readers[s.instance], taps, s.instance)
    faults = [f"{s.instance}_fault" for s in specs if hw.engine(s.engine).protectable]
    any_fault = " | ".join(faults) if faults else "1'b0"
    lines.append(f"    assign fault = {any_fault};")
    lines += argmax.instance_lines(d["n_classes"], d["logit_bits"], d["idx_bits"], tap(specs[-1].instance))
    lines += [
        "endmodule",
        "`default_nettype wire",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------ forks and joins
JOIN_MODULES = {"fork": "fork2.v", "fifo": "fifo.v"}


def _readers(specs: list[EngineSpec]) -> dict[str, int]:
    """How many engines read each stream (argmax reads the last engine's)."""
    counts: dict[str, int] = {}
    for source in [src for s in specs for src in s.inputs] + [specs[-1].instance]:
        counts[source] = counts.get(source, 0) + 1
    return counts


def _uses(specs: list[EngineSpec], dag: DagTiming, module: str) -> bool:
    return bool(dag.fifos) if module == "fifo" else any(n > 1 for n in _readers(specs).values())


def _fifo_entry(f: JoinFifo) -> dict:
    return {
        "instance": f.instance,
        "consumer": f.consumer,
        "input": f.port,
        "source": f.source,
        "width": f.width,
        "depth": f.depth,
        "max_occupancy": f.max_occupancy,
        "late_holding": f.late_holding,
    }


def _fork_lines(prefix: str, stream: tuple, n: int, taps: dict, source: str) -> list[str]:
    """`stream` broadcast to its n readers by a chain of rtl/fork2.v (each taking one branch off);
    the readers' channels go into taps[source], in reading order (the specs' order)."""
    valid, ready, data = stream
    branch = [(f"{prefix}_to{j}_valid", f"{prefix}_to{j}_ready") for j in range(n)]
    link = [(f"{prefix}_fork{k}_valid", f"{prefix}_fork{k}_ready") for k in range(1, n - 1)]
    lines = [f"    // {prefix}'s stream, broadcast to its {n} readers (fork2: each beat to every branch once)"]
    lines += [f"    wire {v}, {r};" for v, r in branch + link]
    inputs = [(valid, ready)] + link
    for k in range(n - 1):
        rest = branch[n - 1] if k == n - 2 else link[k]
        lines.append(
            f"    fork2 {prefix}_fork{k} (.clk(clk), .rst(rst), .in_valid({inputs[k][0]}), .in_ready({inputs[k][1]}), "
            f".a_valid({branch[k][0]}), .a_ready({branch[k][1]}), .b_valid({rest[0]}), .b_ready({rest[1]}));"
        )
    taps[source] = [(v, r, data) for v, r in branch]
    return lines


def _fifo_lines(f: JoinFifo, channel: tuple) -> list[str]:
    """rtl/fifo.v in front of the early input of a join."""
    return [
        f"    // {f.instance}: input {'ab'[f.port]} of {f.consumer} waits here (the model holds up to "
        f"{f.max_occupancy} elements)",
        f"    wire {f.instance}_valid;",
        f"    wire {f.instance}_ready;",
        f"    wire signed [{f.width - 1}:0] {f.instance}_data;",
        f"    fifo #(.WIDTH({f.width}), .DEPTH({f.depth})) {f.instance} (",
        f"        .clk(clk), .rst(rst), .in_valid({channel[0]}), .in_ready({channel[1]}), .in_data({channel[2]}),",
        f"        .out_valid({f.instance}_valid), .out_ready({f.instance}_ready), .out_data({f.instance}_data));",
    ]


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
