"""Integer graph -> Verilog: a streaming top that chains one engine per dense layer.

The engines are the hand-written modules in rtl/ (a static library, as in hls4ml); this
backend only writes the small top, the weight/bias ROM images (.mem, $readmemh format), a
file list and `design.json` (ports, widths and per-layer engine parameters, read by
`mpc simulate` and the report).

    in stream (one feature per beat) -> dense_mac (+requantize/ReLU) -> ... -> dense_mac
        -> argmax (collects the logits) -> out beat: all logits + argmax

Each layer's engine is dense_mac, sparse_mac or (for a `circulant` node) circulant_mac, all
with the same stream interface; the circulant engine's ROMs are the weight spectra, the
twiddles and the bias (kernels/circulant_rom.py), its parameters circulant_rtl_parameters.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from compiler import cost
from compiler.exec.golden import circulant_layer
from compiler.ir import FixedPoint, Graph
from kernels.circulant_rom import bias_bits, circulant_rtl_parameters, write_circulant_roms
from kernels.rom import dense_rom_words, row_count_words, sparse_rom_words, vector_rom_words, write_mem
from kernels.sparse_mac import encode_sparse

RTL_DIR = Path(__file__).resolve().parents[2] / "rtl"
TOP = "mpc_top"


class VerilogBackendError(ValueError):
    pass


@dataclass
class EngineSpec:
    """One engine instance (dense_mac, sparse_mac or circulant_mac): its parameters and ROMs."""

    name: str          # ONNX node name of the layer
    instance: str
    engine: str        # "dense", "sparse" or "circulant"
    n_in: int
    n_out: int
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
    c_file: str = ""       # sparse: words per row
    delta_bits: int = 0    # sparse: index (delta) width
    n_words: int = 0       # sparse: entry ROM depth
    cnt_bits: int = 0      # sparse: width of a row's word count
    block_size: int = 1    # circulant: b (1: not block-circulant)
    tw_file: str = ""      # circulant: twiddle ROM (w_file holds the weight spectra)
    parameters: dict = field(default_factory=dict)   # circulant: circulant_mac's Verilog parameters
    cost: cost.EngineCost | None = None

    @property
    def out_width(self) -> int:
        return self.out_bits if self.requant else self.acc_bits

    @property
    def weight_rom_bits(self) -> int:
        """ROM bits of the weights and their indices, or of the spectra and twiddles (no bias ROM)."""
        return self.cost.weight_rom_bits


def engine_specs(graph: Graph) -> list[EngineSpec]:
    """Map the integer graph onto engines: each dense/circulant plus the requantize that follows it."""
    specs = []
    nodes = [n for n in graph.nodes if n.op not in ("quantize", "flatten", "dequantize")]
    i = 0
    while i < len(nodes):
        node = nodes[i]
        if node.op not in ("dense", "circulant"):
            raise VerilogBackendError(f"node {node.name!r}: a {node.op} that does not follow a dense layer "
                                      "has no hardware engine")
        follow = nodes[i + 1] if i + 1 < len(nodes) and nodes[i + 1].op == "requantize" else None
        w = graph.params[node.inputs[1]]
        k = len(specs)
        specs.append(EngineSpec(
            name=node.name, instance=f"layer{k}", engine=node.annotations.get("engine", "dense"),
            n_out=w.shape[0], n_in=w.shape[1],
            multipliers=int(node.annotations.get("multipliers", 1)),
            in_bits=node.attrs["input_format"]["bits"], w_bits=node.attrs["weight_format"]["bits"],
            acc_bits=node.attrs["acc_bits"],
            out_bits=follow.attrs["bits"] if follow else node.attrs["acc_bits"],
            shift=follow.attrs["shift"] if follow else 0, relu=bool(follow and follow.attrs["relu"]),
            requant=follow is not None, w_file=f"layer{k}_w.mem", b_file=f"layer{k}_b.mem"))
        if node.op == "circulant":
            _circulant_engine(specs[-1], circulant_layer(graph, node))
        else:
            _add_engine_cost(specs[-1], w, node)
        i += 2 if follow else 1
    if specs and specs[-1].requant:
        raise VerilogBackendError(f"layer {specs[-1].name!r}: the last layer must output raw accumulators")
    return specs


def _circulant_engine(spec: EngineSpec, layer) -> None:
    prefix = f"{spec.instance}_"
    spec.engine, spec.multipliers, spec.block_size = "circulant", cost.CIRCULANT_MULTIPLIERS, layer.block
    spec.w_file, spec.tw_file, spec.b_file = f"{prefix}spectra.mem", f"{prefix}twiddles.mem", f"{prefix}bias.mem"
    spec.parameters = circulant_rtl_parameters(layer, spec.out_bits, spec.shift, spec.relu, spec.requant,
                                               spec.w_file, spec.tw_file, spec.b_file)
    spec.cost = cost.circulant_cost(layer.n_in, layer.n_out, layer.block, layer.spectrum_bits, layer.twiddle_frac,
                                    bias_bits(layer))


def _add_engine_cost(spec: EngineSpec, w_q: np.ndarray, node) -> None:
    if spec.engine == "sparse":
        enc = encode_sparse(w_q, spec.multipliers, int(node.annotations["delta_bits"]))
        spec.delta_bits, spec.n_words = enc.delta_bits, int(enc.row_words.sum())
        spec.cnt_bits = max(1, int(enc.row_words.max()).bit_length())
        spec.c_file = spec.w_file.replace("_w.mem", "_c.mem")
        spec.cost = cost.sparse_cost(enc, spec.w_bits, spec.acc_bits)
    else:
        spec.cost = cost.dense_cost(spec.n_in, spec.n_out, spec.multipliers, spec.w_bits, spec.acc_bits)


def write_verilog(graph: Graph, folder: str | Path) -> dict:
    """Write the design into `folder`; return the design description (also in design.json)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specs = engine_specs(graph)
    for spec, node in zip(specs, graph.weighted_nodes()):
        _write_roms(graph, node, spec, folder)
    modules = ["requantize.v", "engine_output.v"] + sorted({f"{s.engine}_mac.v" for s in specs}) + ["argmax.v"]
    for m in modules:
        shutil.copy(RTL_DIR / m, folder / m)
    in_fmt = FixedPoint.from_dict(graph.meta["input_format"])
    n_classes = specs[-1].n_out
    design = {
        "top": TOP,
        "sources": modules + [f"{TOP}.v"],
        "n_in": specs[0].n_in, "in_bits": in_fmt.bits,
        "n_classes": n_classes, "logit_bits": specs[-1].acc_bits,
        "idx_bits": max(1, math.ceil(math.log2(n_classes))),
        "engines": [_engine_entry(s) for s in specs],
        "estimated_latency": cost.design_latency(specs[0].n_in, [s.cost for s in specs]),
        "estimated_interval": cost.design_interval(specs[0].n_in, [s.cost for s in specs], n_classes),
    }
    (folder / f"{TOP}.v").write_text(_top_verilog(specs, design))
    (folder / "files.f").write_text("\n".join(design["sources"]) + "\n")
    (folder / "design.json").write_text(json.dumps(design, indent=1))
    return design


def _engine_entry(s: EngineSpec) -> dict:
    entry = {k: v for k, v in asdict(s).items() if k != "cost"}
    return entry | {"rom_bits": s.cost.rom_bits, "weight_rom_bits": s.weight_rom_bits,
                    "compute_cycles": s.cost.compute_cycles, "latency": s.cost.latency,
                    "interval": s.cost.interval}


def _write_roms(graph: Graph, node, spec: EngineSpec, folder: Path) -> None:
    if spec.engine == "circulant":
        write_circulant_roms(circulant_layer(graph, node), folder, prefix=f"{spec.instance}_")
        return
    w_q = graph.params[node.inputs[1]]
    b_q = graph.params[node.inputs[2]] if len(node.inputs) > 2 else np.zeros(spec.n_out, np.int64)
    write_mem(folder / spec.b_file, vector_rom_words(b_q, spec.acc_bits), spec.acc_bits)
    if spec.engine == "sparse":
        enc = encode_sparse(w_q, spec.multipliers, spec.delta_bits)
        write_mem(folder / spec.w_file, sparse_rom_words(enc, spec.w_bits),
                  spec.multipliers * (spec.w_bits + spec.delta_bits))
        write_mem(folder / spec.c_file, row_count_words(enc), spec.cnt_bits)
    else:
        write_mem(folder / spec.w_file, dense_rom_words(w_q, spec.multipliers, spec.w_bits),
                  spec.multipliers * spec.w_bits)


def _top_verilog(specs: list[EngineSpec], d: dict) -> str:
    lines = [
        "// Generated by mpc: do not edit. One engine (dense_mac, sparse_mac, circulant_mac) per layer, then argmax.",
        "// Numeric contract: docs/fixed-point.md. Layers: " + ", ".join(s.name for s in specs),
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
        f"    output wire [{d['idx_bits'] - 1}:0] out_argmax",
        ");",
    ]
    prev = ("in_valid", "in_ready", "in_data")
    for s in specs:
        v, r, data = f"{s.instance}_valid", f"{s.instance}_ready", f"{s.instance}_data"
        sparse = (f"        .D_BITS({s.delta_bits}), .CNT_BITS({s.cnt_bits}), .N_WORDS({s.n_words}), "
                  f".C_FILE(\"{s.c_file}\"),") if s.engine == "sparse" else None
        lines += [
            f"    // {s.name}: {s.n_in} -> {s.n_out}, {s.engine} engine"
            + (f" (block size {s.block_size})" if s.engine == "circulant" else "") + f", {s.multipliers} multipliers",
            f"    wire {v};",
            f"    wire {r};",
            f"    wire signed [{s.out_width - 1}:0] {data};",
        ]
        if s.engine == "circulant":
            lines += _circulant_parameters(s)
        else:
            lines += [
                f"    {s.engine}_mac #(.N_IN({s.n_in}), .N_OUT({s.n_out}), .P({s.multipliers}), .IN_BITS({s.in_bits}),",
                f"        .W_BITS({s.w_bits}), .B_BITS({s.acc_bits}), .ACC_BITS({s.acc_bits}), .OUT_BITS({s.out_bits}),",
                f"        .SHIFT({s.shift}), .RELU({int(s.relu)}), .REQUANT({int(s.requant)}),",
                *([sparse] if sparse else []),
                f"        .W_FILE(\"{s.w_file}\"), .B_FILE(\"{s.b_file}\")) {s.instance} (",
            ]
        lines += [
            f"        .clk(clk), .rst(rst), .in_valid({prev[0]}), .in_ready({prev[1]}), .in_data({prev[2]}),",
            f"        .out_valid({v}), .out_ready({r}), .out_data({data}));",
        ]
        prev = (v, r, data)
    lines += [
        f"    argmax #(.N({d['n_classes']}), .W({d['logit_bits']}), .IDX_BITS({d['idx_bits']})) collect (",
        f"        .clk(clk), .rst(rst), .in_valid({prev[0]}), .in_ready({prev[1]}), .in_data({prev[2]}),",
        "        .out_valid(out_valid), .out_ready(out_ready), .out_logits(out_logits), .out_argmax(out_argmax));",
        "endmodule",
        "`default_nettype wire",
        "",
    ]
    return "\n".join(lines)


def _circulant_parameters(s: EngineSpec) -> list[str]:
    """`circulant_mac #(...) layerK (` with the parameters of circulant_rtl_parameters, four a line."""
    items = [f".{k}(\"{v}\")" if isinstance(v, str) else f".{k}({int(v)})" for k, v in s.parameters.items()]
    rows = [", ".join(items[i:i + 4]) for i in range(0, len(items), 4)]
    return ([f"    circulant_mac #({rows[0]},"] + [f"        {row}," for row in rows[1:-1]]
            + [f"        {rows[-1]}) {s.instance} ("])
