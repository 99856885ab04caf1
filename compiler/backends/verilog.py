"""Integer graph -> Verilog: a streaming top that chains one engine per layer.

The engines are the hand-written modules in rtl/ (a static library, as in hls4ml); this
backend only writes the small top, the weight/bias ROM images (.mem, $readmemh format), a
file list and `design.json` (ports, widths, the input stream's order and per-engine
parameters and cost, read by `mpc simulate` and the report).

    in stream (one element per beat) -> [conv2d (+requantize/ReLU) -> [pool2d] -> ...]
        -> dense_mac (+requantize/ReLU) -> ... -> dense_mac
        -> argmax (collects the logits) -> out beat: all logits + argmax

All engines share one valid/ready stream interface. A dense layer's engine is dense_mac,
sparse_mac or (a `circulant` node) circulant_mac, whose ROMs are the weight spectra, the
twiddles and the bias (kernels/circulant_rom.py). A conv2d node (with the requantize that
follows it) is rtl/conv2d.v, a pooling node rtl/pool2d.v; a flatten is free. Images travel
channel-last (for y, for x, for c; docs/fixed-point.md "Streams"): the host streams a 4-D
input transposed (design.json "input_order": "hwc"), and the dense layer after a flatten
stores its weight columns in that order (compiler.cost.stream_weight_matrix).
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
from kernels.conv_rom import conv_bias_rom_words, conv_weight_rom_words
from kernels.rom import dense_rom_words, row_count_words, sparse_rom_words, vector_rom_words, write_mem
from kernels.sparse_mac import encode_sparse
from rtl import RTL_DIR, sources

TOP = "mpc_top"
MODULES = {"dense": "dense_mac", "sparse": "sparse_mac", "circulant": "circulant_mac", "conv": "conv2d",
           "pool": "pool2d"}
ROM_STREAMING = ("dense", "sparse", "circulant")   # engines that end in rtl/engine_output.v
LINE_BUFFERED = ("conv", "pool")
POOL_OPS = ("maxpool2d", "avgpool2d", "global_avgpool")
FREE_OPS = ("quantize", "flatten", "dequantize")   # no engine: the host quantizes, flatten is stream order


class VerilogBackendError(ValueError):
    pass


@dataclass
class EngineSpec:
    """One engine instance: its parameters and ROMs."""

    name: str          # ONNX node name of the layer
    instance: str
    engine: str        # "dense", "sparse", "circulant", "conv" or "pool"
    n_in: int          # stream elements in per inference (an image: C*H*W)
    n_out: int         # ... out
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
    kind: str = ""         # the node's op (dense, circulant, conv2d, maxpool2d, avgpool2d, global_avgpool)
    c_file: str = ""       # sparse: words per row
    delta_bits: int = 0    # sparse: index (delta) width
    n_words: int = 0       # sparse: entry ROM depth
    cnt_bits: int = 0      # sparse: width of a row's word count
    block_size: int = 1    # circulant: b (1: not block-circulant)
    tw_file: str = ""      # circulant: twiddle ROM (w_file holds the weight spectra)
    input_chw: list | None = None   # dense after a flatten of an image: its [C, H, W] (columns permuted)
    out_shape: list | None = None   # conv, pool: the [C, H, W] image it streams out
    parameters: dict = field(default_factory=dict)   # circulant, conv, pool: the module's Verilog parameters
    cost: cost.EngineCost | None = None
    stage: object = None   # its stage in the timing model (compiler/timing.py)

    @property
    def out_width(self) -> int:
        if self.engine == "pool":
            return self.in_bits
        return self.out_bits if self.requant else self.acc_bits

    @property
    def weight_rom_bits(self) -> int:
        """ROM bits of the weights and their indices, or of the spectra and twiddles (no bias ROM)."""
        return self.cost.weight_rom_bits


def engine_specs(graph: Graph) -> list[EngineSpec]:
    """Map the integer graph onto engines: each dense/circulant/conv2d plus the requantize that
    follows it, each pool; checks that every engine takes the stream its predecessor emits."""
    specs = []
    nodes = [n for n in graph.nodes if n.op not in FREE_OPS]
    image = _input_image(graph)      # [C, H, W] while the stream carries an image, else None
    width = FixedPoint.from_dict(graph.meta["input_format"]).bits
    i = 0
    while i < len(nodes):
        node = nodes[i]
        weighted = node.op in ("dense", "circulant", "conv2d")
        follow = nodes[i + 1] if weighted and i + 1 < len(nodes) and nodes[i + 1].op == "requantize" else None
        k = len(specs)
        if node.op in ("dense", "circulant"):
            spec = _dense_spec(graph, node, follow, k, image)
        elif node.op == "conv2d":
            spec = _conv_spec(graph, node, follow, k, image)
        elif node.op in POOL_OPS:
            spec = _pool_spec(node, k, image)
        else:
            raise VerilogBackendError(f"node {node.name!r}: a {node.op} that does not follow a dense or conv "
                                      "layer has no hardware engine")
        if spec.in_bits != width:
            raise VerilogBackendError(f"node {node.name!r}: takes {spec.in_bits}-bit inputs, but the stream "
                                      f"before it carries {width}-bit values")
        specs.append(spec)
        image, width = spec.out_shape, spec.out_width
        i += 2 if follow else 1
    _check_design_output(specs)
    return specs


def _check_design_output(specs: list[EngineSpec]) -> None:
    if not specs:
        raise VerilogBackendError("the graph has no layer to build an engine for")
    last = specs[-1]
    if last.requant:
        raise VerilogBackendError(f"layer {last.name!r}: the last layer must output raw accumulators")
    if last.out_shape and last.out_shape[1] * last.out_shape[2] > 1:
        raise VerilogBackendError(f"layer {last.name!r}: the design's output is a {last.out_shape} image; "
                                  "it must be a vector (end in a dense layer or a global pool)")


def _input_image(graph: Graph) -> list[int] | None:
    shape = [int(d) for d in graph.inputs[0].shape]
    return shape if len(shape) == 3 else None


def _output_fields(node, follow) -> dict:
    """Requantize (+ReLU) fused into the engine, or raw accumulators."""
    return {"out_bits": follow.attrs["bits"] if follow else node.attrs["acc_bits"],
            "shift": follow.attrs["shift"] if follow else 0,
            "relu": bool(follow and follow.attrs["relu"]), "requant": follow is not None}


# ------------------------------------------------------------------------ dense, sparse, circulant
def _dense_spec(graph: Graph, node, follow, k: int, image) -> EngineSpec:
    w = _stream_weights(graph, node, image)
    spec = EngineSpec(
        name=node.name, instance=f"layer{k}", engine=node.annotations.get("engine", "dense"), kind=node.op,
        n_out=w.shape[0], n_in=w.shape[1], multipliers=int(node.annotations.get("multipliers", 1)),
        in_bits=node.attrs["input_format"]["bits"], w_bits=node.attrs["weight_format"]["bits"],
        acc_bits=node.attrs["acc_bits"], **_output_fields(node, follow),
        w_file=f"layer{k}_w.mem", b_file=f"layer{k}_b.mem", input_chw=node.attrs.get("input_chw"))
    if node.op == "circulant":
        _circulant_engine(spec, circulant_layer(graph, node))
    else:
        _add_engine_cost(spec, w, node)
    return spec


def _stream_weights(graph: Graph, node, image) -> np.ndarray:
    """The weight matrix in the order the engine receives its inputs (columns permuted after an
    image, which streams channel-last)."""
    w = graph.params[node.inputs[1]]
    chw = node.attrs.get("input_chw")
    if image is not None and chw is None and cost.stream_reorders(image):
        raise VerilogBackendError(f"node {node.name!r}: its input is a {image} image streamed channel-last, "
                                  "but it has no input_chw attribute to order its weight columns by")
    if chw is not None and list(chw) != list(image or []):
        raise VerilogBackendError(f"node {node.name!r}: input_chw {list(chw)} is not the {image} image "
                                  "streamed into it")
    if node.op == "circulant" and chw is not None and cost.stream_reorders(chw):
        raise VerilogBackendError(f"node {node.name!r}: a circulant layer cannot take a flattened {list(chw)} "
                                  "image (the channel-last stream would break its block-circulant columns)")
    return cost.stream_weight_matrix(w, chw)


def _circulant_engine(spec: EngineSpec, layer) -> None:
    prefix = f"{spec.instance}_"
    spec.engine, spec.multipliers, spec.block_size = "circulant", cost.CIRCULANT_MULTIPLIERS, layer.block
    spec.w_file, spec.tw_file, spec.b_file = f"{prefix}spectra.mem", f"{prefix}twiddles.mem", f"{prefix}bias.mem"
    spec.parameters = circulant_rtl_parameters(layer, spec.out_bits, spec.shift, spec.relu, spec.requant,
                                               spec.w_file, spec.tw_file, spec.b_file)
    spec.cost = cost.circulant_cost(layer.n_in, layer.n_out, layer.block, layer.spectrum_bits, layer.twiddle_frac,
                                    bias_bits(layer))
    spec.stage = cost.circulant_stage(layer.n_in, layer.n_out, layer.block)


def _add_engine_cost(spec: EngineSpec, w_q: np.ndarray, node) -> None:
    if spec.engine == "sparse":
        enc = encode_sparse(w_q, spec.multipliers, int(node.annotations["delta_bits"]))
        spec.delta_bits, spec.n_words = enc.delta_bits, int(enc.row_words.sum())
        spec.cnt_bits = max(1, int(enc.row_words.max()).bit_length())
        spec.c_file = spec.w_file.replace("_w.mem", "_c.mem")
        spec.cost = cost.sparse_cost(enc, spec.w_bits, spec.acc_bits)
        spec.stage = cost.sparse_stage(enc)
    else:
        spec.cost = cost.dense_cost(spec.n_in, spec.n_out, spec.multipliers, spec.w_bits, spec.acc_bits)
        spec.stage = cost.dense_stage(spec.n_in, spec.n_out, spec.multipliers)


# ------------------------------------------------------------------------ conv2d, pools
def _check_window(node, in_shape, image) -> None:
    """The node must take the image streamed into it, and its padding must be smaller than its
    kernel (rtl/conv2d.v, rtl/pool2d.v)."""
    if image is None or list(in_shape) != list(image):
        raise VerilogBackendError(f"node {node.name!r}: expects a {list(in_shape)} image, but the stream "
                                  f"before it carries {image or 'a flat vector'}")
    kh, kw = node.attrs["kernel"]
    t, l, b, r = node.attrs["pads"]
    if max(t, b) >= kh or max(l, r) >= kw:
        raise VerilogBackendError(f"node {node.name!r}: padding {node.attrs['pads']} must be smaller than "
                                  f"the {kh}x{kw} kernel")


def _window_parameters(stage) -> dict:
    t, l, b, r = stage.pads
    return {"KH": stage.kh, "KW": stage.kw, "STRIDE": stage.stride, "PAD_T": t, "PAD_L": l, "PAD_B": b, "PAD_R": r}


def _checked_out_shape(node, stage) -> list[int]:
    shape = [stage.c_out, stage.h_out, stage.w_out]
    if list(node.attrs["out_shape"]) != shape:
        raise VerilogBackendError(f"node {node.name!r}: out_shape {list(node.attrs['out_shape'])} is not the "
                                  f"{shape} its window gives")
    return shape


def _conv_spec(graph: Graph, node, follow, k: int, image) -> EngineSpec:
    a = node.attrs
    _check_window(node, a["in_shape"], image)
    p_co, p_ci, p_k = (int(node.annotations.get(k, 1)) for k in ("p_co", "p_ci", "p_k"))
    stage = cost.conv_stage(a["in_shape"], a["out_shape"][0], a["kernel"], a["stride"], a["pads"], p_co, p_ci, p_k)
    w_shape = (stage.c_out, stage.c_in, stage.kh, stage.kw)
    if graph.params[node.inputs[1]].shape != w_shape:
        raise VerilogBackendError(f"node {node.name!r}: weight shape {graph.params[node.inputs[1]].shape} is not "
                                  f"{w_shape}")
    spec = EngineSpec(
        name=node.name, instance=f"layer{k}", engine="conv", kind=node.op, n_in=stage.n_in, n_out=stage.n_out,
        multipliers=p_co * p_ci * p_k, in_bits=a["input_format"]["bits"], w_bits=a["weight_format"]["bits"],
        acc_bits=a["acc_bits"], **_output_fields(node, follow), w_file=f"layer{k}_w.mem", b_file=f"layer{k}_b.mem",
        out_shape=_checked_out_shape(node, stage), stage=stage)
    spec.cost = cost.conv_cost(stage, spec.w_bits, spec.acc_bits)
    spec.parameters = _conv_parameters(spec, stage)
    return spec


def _conv_parameters(spec: EngineSpec, stage) -> dict:
    """rtl/conv2d.v's parameters; biases are stored at the accumulator's width (B_BITS = ACC_BITS)."""
    return ({"C_IN": stage.c_in, "H": stage.h, "W": stage.w, "C_OUT": stage.c_out} | _window_parameters(stage)
            | {"P_CO": stage.p_co, "P_CI": stage.p_ci, "P_K": stage.p_k, "IN_BITS": spec.in_bits,
               "W_BITS": spec.w_bits, "B_BITS": spec.acc_bits, "ACC_BITS": spec.acc_bits, "OUT_BITS": spec.out_bits,
               "SHIFT": spec.shift, "RELU": int(spec.relu), "REQUANT": int(spec.requant), "W_FILE": spec.w_file,
               "B_FILE": spec.b_file})


def _pool_spec(node, k: int, image) -> EngineSpec:
    a = node.attrs
    _check_window(node, a["in_shape"], image)
    if node.op == "avgpool2d" and not a.get("count_include_pad", True) and any(a["pads"]):
        raise VerilogBackendError(f"node {node.name!r}: average pooling with count_include_pad = 0 and padding "
                                  f"{list(a['pads'])} has no engine (rtl/pool2d.v divides every window by kH*kW, "
                                  "which is count_include_pad = 1)")
    stage = cost.pool_stage(a["in_shape"], a["kernel"], a["stride"], a["pads"])
    bits = a["format"]["bits"]
    spec = EngineSpec(
        name=node.name, instance=f"layer{k}", engine="pool", kind=node.op, n_in=stage.n_in, n_out=stage.n_out,
        multipliers=0, in_bits=bits, w_bits=0, acc_bits=bits, out_bits=bits, shift=0, relu=False, requant=False,
        w_file="", b_file="", out_shape=_checked_out_shape(node, stage), stage=stage)
    spec.cost = cost.pool_cost(stage)
    spec.parameters = ({"C": stage.c_in, "H": stage.h, "W": stage.w} | _window_parameters(stage) |
                       {"MODE": 0 if node.op == "maxpool2d" else 1, "IN_BITS": bits})
    return spec


# ------------------------------------------------------------------------ files
def write_verilog(graph: Graph, folder: str | Path) -> dict:
    """Write the design into `folder`; return the design description (also in design.json)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specs = engine_specs(graph)
    for spec in specs:
        _write_roms(graph, spec, folder)
    modules = _modules(specs)
    for m in modules:
        shutil.copy(RTL_DIR / m, folder / m)
    in_fmt = FixedPoint.from_dict(graph.meta["input_format"])
    n_classes = specs[-1].n_out
    latency, interval, model = _estimated_cycles(specs, n_classes)
    image = _input_image(graph)
    design = {
        "top": TOP,
        "sources": modules + [f"{TOP}.v"],
        "n_in": specs[0].n_in, "in_bits": in_fmt.bits,
        "input_shape": [int(d) for d in graph.inputs[0].shape],
        # "hwc": stream x_q[c, y, x] for y, for x, for c (x_q.transpose(1, 2, 0)); "row-major": x_q.ravel()
        "input_order": "hwc" if image else "row-major",
        "n_classes": n_classes, "logit_bits": specs[-1].out_width,
        "idx_bits": max(1, math.ceil(math.log2(n_classes))),
        "engines": [_engine_entry(s) for s in specs],
        "estimated_latency": latency,
        "estimated_interval": interval,
        "timing_model": model,
    }
    (folder / f"{TOP}.v").write_text(_top_verilog(specs, design))
    (folder / "files.f").write_text("\n".join(design["sources"]) + "\n")
    (folder / "design.json").write_text(json.dumps(design, indent=1))
    return design


def _modules(specs: list[EngineSpec]) -> list[str]:
    """rtl/ files the top needs: each engine's module with what it instantiates, then argmax."""
    return sources(*sorted({f"{MODULES[s.engine]}.v" for s in specs}), "argmax.v")


def _estimated_cycles(specs: list[EngineSpec], n_classes: int) -> tuple[int, int, str]:
    """(latency, interval, how): closed forms for chains of ROM-streaming engines, the
    edge-by-edge model of compiler/timing.py once a line-buffered engine is in the chain."""
    if any(s.engine in LINE_BUFFERED for s in specs):
        latency, interval = cost.pipeline_cycles([s.stage for s in specs], n_classes)
        return latency, interval, "edge-by-edge model of the engines' control (compiler/timing.py)"
    costs = [s.cost for s in specs]
    return (cost.design_latency(specs[0].n_in, costs), cost.design_interval(specs[0].n_in, costs, n_classes),
            "closed form (compiler/cost.py design_latency, design_interval)")


def _engine_entry(s: EngineSpec) -> dict:
    entry = {k: v for k, v in asdict(s).items() if k not in ("cost", "stage")}
    return entry | {"rom_bits": s.cost.rom_bits, "weight_rom_bits": s.weight_rom_bits,
                    "compute_cycles": s.cost.compute_cycles, "latency": s.cost.latency,
                    "interval": s.cost.interval, "cost": asdict(s.cost)}


def _write_roms(graph: Graph, spec: EngineSpec, folder: Path) -> None:
    if spec.engine == "pool":
        return
    node = graph.node(spec.name)
    if spec.engine == "circulant":
        write_circulant_roms(circulant_layer(graph, node), folder, prefix=f"{spec.instance}_")
        return
    w_q = graph.params[node.inputs[1]]
    n_bias = w_q.shape[0]
    b_q = graph.params[node.inputs[2]] if len(node.inputs) > 2 else np.zeros(n_bias, np.int64)
    if spec.engine == "conv":
        p_co, p_ci, p_k = (spec.parameters[k] for k in ("P_CO", "P_CI", "P_K"))
        write_mem(folder / spec.w_file, conv_weight_rom_words(w_q, p_co, p_ci, spec.w_bits, p_k),
                  p_co * p_k * p_ci * spec.w_bits)
        write_mem(folder / spec.b_file, conv_bias_rom_words(b_q, p_co, spec.acc_bits), p_co * spec.acc_bits)
        return
    w_q = cost.stream_weight_matrix(w_q, spec.input_chw)
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
        "// Generated by mpc: do not edit. One engine (conv2d, pool2d, dense_mac, sparse_mac, circulant_mac) per "
        "layer, then argmax.",
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
        lines += [
            f"    // {s.name}: {_describe(s)}",
            f"    wire {v};",
            f"    wire {r};",
            f"    wire signed [{s.out_width - 1}:0] {data};",
        ]
        lines += _instance_header(s)
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


def _describe(s: EngineSpec) -> str:
    if s.engine in LINE_BUFFERED:
        st = s.stage
        shape = f"{st.c_in}x{st.h}x{st.w} -> {'x'.join(str(d) for d in s.out_shape)}"
        window = f"{st.kh}x{st.kw} window, stride {st.stride}, pads {list(st.pads)}"
        if s.engine == "conv":
            return (f"{shape}, conv engine, {window}, P_CO x P_CI x P_K = {st.p_co} x {st.p_ci} x {st.p_k} "
                    "multipliers")
        return f"{shape}, {s.kind} engine, {window}"
    block = f" (block size {s.block_size})" if s.engine == "circulant" else ""
    order = f", columns in channel-last order of {s.input_chw}" if s.input_chw else ""
    return f"{s.n_in} -> {s.n_out}, {s.engine} engine{block}, {s.multipliers} multipliers{order}"


def _instance_header(s: EngineSpec) -> list[str]:
    """`module #(...) layerK (`: dense/sparse parameters from the spec, others from s.parameters."""
    if s.engine in ("dense", "sparse"):
        sparse = (f"        .D_BITS({s.delta_bits}), .CNT_BITS({s.cnt_bits}), .N_WORDS({s.n_words}), "
                  f".C_FILE(\"{s.c_file}\"),")
        return [
            f"    {s.engine}_mac #(.N_IN({s.n_in}), .N_OUT({s.n_out}), .P({s.multipliers}), .IN_BITS({s.in_bits}),",
            f"        .W_BITS({s.w_bits}), .B_BITS({s.acc_bits}), .ACC_BITS({s.acc_bits}), .OUT_BITS({s.out_bits}),",
            f"        .SHIFT({s.shift}), .RELU({int(s.relu)}), .REQUANT({int(s.requant)}),",
            *([sparse] if s.engine == "sparse" else []),
            f"        .W_FILE(\"{s.w_file}\"), .B_FILE(\"{s.b_file}\")) {s.instance} (",
        ]
    items = [f".{k}(\"{v}\")" if isinstance(v, str) else f".{k}({int(v)})" for k, v in s.parameters.items()]
    rows = [", ".join(items[i:i + 6]) for i in range(0, len(items), 6)]
    if len(rows) == 1:
        return [f"    {MODULES[s.engine]} #({rows[0]}) {s.instance} ("]
    return ([f"    {MODULES[s.engine]} #({rows[0]},"] + [f"        {row}," for row in rows[1:-1]]
            + [f"        {rows[-1]}) {s.instance} ("])
