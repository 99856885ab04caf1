"""QONNX input: `Quant`, `BipolarQuant` (and a refused `Trunc`) nodes of a quantization-aware-trained
model (Brevitas / FINN / hls4ml export, domain `qonnx.custom_op.general` or `onnx.brevitas`).

`strip` runs on the ModelProto before the frontend checks it and removes every QONNX node:

- A quantizer of a constant (weights, biases) is folded: its output becomes an initializer holding
  the quantized values (QONNX semantics, computed here in float64). When that constant is a layer's
  weight (Gemm/MatMul/Conv input 1, possibly through Transpose/Reshape/Identity/Cast/(Un)Squeeze),
  the layer gets a fixed weight format that `lower` keeps exactly (as it keeps admm's):
  a power-of-two scale (per tensor, or per channel and all equal) and an integer zero point put
  the weights on an integer grid, held exactly by the smallest signed format that covers the
  Quant's whole grid (signed b-bit: b bits, narrow or not; unsigned b-bit: b + 1 bits; bipolar or
  1-bit: 2 bits, so +-1 is exact) when that is at most 8 bits. Otherwise (another scale, unequal
  channel scales, a grid wider than 8 signed bits) the weights are re-quantized to the nearest
  power-of-two format of that width (at most 8 bits; lower's `weight_format` rule) and the layer,
  the reason and the largest weight change are recorded in `meta["qonnx"]["requantized"]`.
- A quantizer of a computed tensor (an activation) is removed (its consumers read its input) and,
  with a power-of-two scalar scale and zero point 0, its grid becomes that tensor's activation
  format in `lower` instead of calibration (`meta["qonnx"]["activations"]`; signed b-bit: Q(b, f),
  unsigned b-bit: Q(b + 1, f) while that is at most 8 bits). The format is keyed on the tensor
  `lower` requantizes: a Quant right before a Relu gives it to the Relu's output, one after a
  Flatten/Reshape/Identity/Dropout/MaxPool to the tensor before them. Other activation quantizers
  (another scale, a zero point, unsigned 8-bit) are calibrated as usual and listed in
  `meta["qonnx"]["calibrated"]`. lower's requantize rounds ties up, Quant's ROUND to even: the grid
  is the same, the rounding of exact ties may differ.
- `Trunc` is refused by name: it floors (or rounds to even) after a shift, and mpc's requantize
  rounds half up, so it has no exact integer form here. An activation BipolarQuant (a sign) is
  refused too; bipolar weights run on the ordinary multiply engines (no XNOR-popcount engine).

What was decided travels in the model's `metadata_props` (key `mpc.qonnx`) to `annotate`, which
puts it on the Graph the frontend builds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from compiler.frontend.errors import FrontendError
from compiler.ir import FixedPoint, Graph

DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas")
META_KEY = "mpc.qonnx"
MAX_WEIGHT_BITS = 8  # lower's weight formats: 2..8 bits
MAX_ACT_BITS = 8
PASS_THROUGH = ("Transpose", "Identity", "Reshape", "Cast", "Squeeze", "Unsqueeze")  # weight -> layer
BEFORE_FORMAT = ("Flatten", "Reshape", "Identity", "Dropout", "MaxPool")  # keep the format of their input
LAYERS = ("Gemm", "MatMul", "Conv")


def _attrs(n: onnx.NodeProto) -> dict:
    out = {}
    for a in n.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def strip(path: Path, model: onnx.ModelProto) -> None:
    """Remove the QONNX nodes of `model` in place (see the module docstring); no-op without any."""
    g = model.graph
    if not any(n.domain in DOMAINS for n in g.node):
        return
    for i, n in enumerate(g.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"  # as the frontend names them, before any node is removed
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and "value" in _attrs(n):
            consts[n.output[0]] = numpy_helper.to_array(_attrs(n)["value"])
    problems = [p for n in g.node if n.domain in DOMAINS and (p := _why_refused(n, consts))]
    if problems:
        raise FrontendError(f"{path}: {len(problems)} unsupported QONNX node(s): {'; '.join(problems)}")
    info: dict = {"weights": {}, "requantized": {}, "activations": {}, "calibrated": {}}
    for n in [n for n in g.node if n.domain in DOMAINS]:
        a = _attrs(n)
        if n.input[0] in consts:
            value = _quantize(n, a, consts)
            consts[n.output[0]] = value
            g.initializer.append(numpy_helper.from_array(value.astype(np.float32), n.output[0]))
            layer = _layer_of(g, n.output[0], consts)
            if layer is not None:
                info["weights"][layer] = _weight_decision(n, a, consts, value)
            g.node.remove(n)
        else:
            _strip_activation(g, n, a, consts, info)
    for layer, d in list(info["weights"].items()):  # re-quantized weights: the initializer changes too
        if "requantized" in d:
            info["requantized"][layer] = d.pop("requantized")
            _replace_initializer(g, d.pop("tensor"), d.pop("values"))
        else:
            d.pop("tensor"), d.pop("values")
    used = {n.domain for n in g.node}
    kept = [o for o in model.opset_import if o.domain not in DOMAINS or o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    meta = model.metadata_props.add()
    meta.key, meta.value = META_KEY, json.dumps(info)


def annotate(graph: Graph, model: onnx.ModelProto) -> None:
    """Put strip's decisions on the frontend's Graph: weight formats on the layers, the rest in meta."""
    raw = next((p.value for p in model.metadata_props if p.key == META_KEY), None)
    if raw is None:
        return
    info = json.loads(raw)
    for node in graph.nodes:
        if node.name in info["weights"]:
            node.annotations["weight_format"] = info["weights"][node.name]["format"]
            node.annotations["qonnx_weights"] = info["weights"][node.name]["quant"]
    graph.meta["qonnx"] = info


# ---- semantics (the QONNX operator specification) ------------------------------------------------
def _why_refused(n: onnx.NodeProto, consts: dict) -> str | None:
    where = f"node {n.name!r} ({n.op_type})"
    if n.op_type == "Trunc":
        return (
            f"{where}: Trunc is not supported: it drops low bits with floor (or round-to-even) rounding "
            "and mpc's requantize rounds half up, so it has no exact integer form"
        )
    if n.op_type not in ("Quant", "BipolarQuant"):
        return f"{where}: QONNX op {n.op_type} is not supported (only Quant and BipolarQuant)"
    if any(i not in consts for i in n.input[1:] if i):
        return f"{where}: scale, zero point and bit width must be constants"
    a = _attrs(n)
    if n.op_type == "BipolarQuant" and n.input[0] not in consts:
        return f"{where}: bipolar (sign) activations are not supported; only bipolar weights are"
    if n.op_type == "Quant":
        bits = consts[n.input[3]]
        if bits.size != 1 or float(bits.ravel()[0]) != int(bits.ravel()[0]) or int(bits.ravel()[0]) < 1:
            return f"{where}: the bit width must be one positive integer (got {bits.ravel().tolist()})"
        try:
            _rounding(a.get("rounding_mode", "ROUND"))
        except ValueError as e:
            return f"{where}: {e}"
    return None


def _rounding(mode: str):
    mode = str(mode).upper()
    modes = {
        "ROUND": np.round,  # half to even
        "HALF_EVEN": np.round,
        "CEIL": np.ceil,
        "FLOOR": np.floor,
        "UP": lambda x: np.sign(x) * np.ceil(np.abs(x)),
        "DOWN": np.fix,
        "ROUND_TO_ZERO": np.fix,
        "HALF_UP": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5),
        "HALF_DOWN": lambda x: np.sign(x) * np.ceil(np.abs(x) - 0.5),
    }
    if mode not in modes:
        raise ValueError(f"rounding_mode {mode!r} is unknown")
    return modes[mode]


def _int_range(signed: bool, narrow: bool, bits: int) -> tuple[int, int]:
    if signed:
        return (-(2 ** (bits - 1)) + (1 if narrow else 0), 2 ** (bits - 1) - 1)
    return 0, 2**bits - (2 if narrow else 1)


def _params(n: onnx.NodeProto, a: dict, consts: dict) -> tuple[np.ndarray, np.ndarray, int, bool, bool]:
    scale = consts[n.input[1]].astype(np.float64)
    if n.op_type == "BipolarQuant":
        return scale, np.zeros(1), 1, True, False
    zp = consts[n.input[2]].astype(np.float64)
    return scale, zp, int(consts[n.input[3]].ravel()[0]), bool(a.get("signed", 1)), bool(a.get("narrow", 0))


def _quantize(n: onnx.NodeProto, a: dict, consts: dict) -> np.ndarray:
    """The Quant / BipolarQuant output for a constant input, in float64."""
    x = consts[n.input[0]].astype(np.float64)
    scale, zp, bits, signed, narrow = _params(n, a, consts)
    if n.op_type == "BipolarQuant":
        return np.where(x >= 0, 1.0, -1.0) * scale
    if bits == 1 and signed:  # a 1-bit signed Quant is bipolar too (as qonnx executes it)
        return (np.where(x / scale + zp >= 0, 1.0, -1.0) - zp) * scale
    lo, hi = _int_range(signed, narrow, bits)
    y = np.clip(x / scale + zp, lo, hi)
    return (_rounding(a.get("rounding_mode", "ROUND"))(y) - zp) * scale


def _pow2_frac(scale: np.ndarray) -> int | None:
    """f with scale == 2**-f for every element, or None."""
    values = np.unique(scale.ravel())
    if values.size != 1 or not np.isfinite(values[0]) or values[0] <= 0:
        return None
    mantissa, exponent = math.frexp(float(values[0]))
    return 1 - exponent if mantissa == 0.5 else None


def _signed_bits(lo: float, hi: float) -> int:
    """The fewest signed bits (at least 2) that hold every integer of [lo, hi]."""
    b = 2
    while lo < -(2 ** (b - 1)) or hi > 2 ** (b - 1) - 1:
        b += 1
    return b


def _grid(n: onnx.NodeProto, a: dict, consts: dict) -> tuple[int | None, int, str | None]:
    """(frac or None, signed bits of the grid, why the grid is not exact or None)."""
    scale, zp, bits, signed, narrow = _params(n, a, consts)
    if n.op_type == "BipolarQuant" or (bits == 1 and signed):
        lo, hi, width = -1.0, 1.0, 2
    else:
        zps = np.unique(zp.ravel())
        if zps.size != 1 or zps[0] != np.round(zps[0]):
            return (
                None,
                min(_signed_bits(*_int_range(signed, narrow, bits)), MAX_WEIGHT_BITS),
                (f"zero point {zp.ravel().tolist()[:4]} is not one integer"),
            )
        lo, hi = (v - float(zps[0]) for v in _int_range(signed, narrow, bits))
        width = _signed_bits(lo, hi)
    frac = _pow2_frac(scale)
    if frac is None:
        shown = np.unique(scale.ravel())[:4].tolist()
        what = "scales are not all equal" if np.unique(scale.ravel()).size > 1 else "scale is not a power of two"
        return None, min(width, MAX_WEIGHT_BITS), f"{what} ({', '.join(f'{s:.6g}' for s in shown)})"
    if width > MAX_WEIGHT_BITS:
        return None, MAX_WEIGHT_BITS, f"its grid [{lo:g}, {hi:g}] needs {width} signed bits (at most 8)"
    return frac, width, None


def _describe(n: onnx.NodeProto, a: dict, consts: dict) -> str:
    scale, zp, bits, signed, narrow = _params(n, a, consts)
    if n.op_type == "BipolarQuant":
        return "BipolarQuant"
    flags = ("signed" if signed else "unsigned") + (", narrow" if narrow else "")
    return f"Quant {bits}-bit {flags}"


def _weight_decision(n: onnx.NodeProto, a: dict, consts: dict, value: np.ndarray) -> dict:
    frac, width, why = _grid(n, a, consts)
    decision = {"quant": _describe(n, a, consts), "tensor": n.output[0], "values": None}
    if why is None:
        assert frac is not None
        decision["format"] = FixedPoint(width, frac).to_dict()
        return decision
    peak = float(np.max(np.abs(value), initial=0.0))  # lower's weight_format rule
    frac = width - 1 if peak == 0 else math.floor(math.log2(((1 << (width - 1)) - 0.5) / peak))
    top = 2 ** (width - 1)
    requantized = np.clip(np.round(value * 2.0**frac), -top, top - 1) * 2.0**-frac  # np.round: half to even
    decision["format"] = FixedPoint(width, frac).to_dict()
    decision["values"] = requantized
    decision["requantized"] = {
        "why": why,
        "format": decision["format"],
        "max_abs_change": float(np.max(np.abs(requantized - value), initial=0.0)),
    }
    return decision


def _replace_initializer(g: onnx.GraphProto, name: str, values: np.ndarray) -> None:
    for i, t in enumerate(g.initializer):
        if t.name == name:
            g.initializer[i].CopyFrom(numpy_helper.from_array(values.astype(np.float32), name))
            return


# ---- graph walking ---------------------------------------------------------------------------------
def _consumers(g: onnx.GraphProto, tensor: str) -> list[tuple[onnx.NodeProto, int]]:
    return [(n, i) for n in g.node for i, t in enumerate(n.input) if t == tensor]


def _producer(g: onnx.GraphProto, tensor: str) -> onnx.NodeProto | None:
    return next((n for n in g.node if tensor in n.output), None)


def _layer_of(g: onnx.GraphProto, tensor: str, consts: dict) -> str | None:
    """The Gemm/MatMul/Conv whose weight (input 1) `tensor` is, directly or through value-keeping ops."""
    seen = 0
    while seen < 16:
        users = _consumers(g, tensor)
        if len(users) != 1:
            return None
        n, i = users[0]
        if n.op_type in LAYERS and i == 1:
            a = _attrs(n)
            return n.name if float(a.get("alpha", 1.0)) == 1.0 else None
        if n.op_type not in PASS_THROUGH or i != 0 or any(t not in consts for t in n.input[1:] if t):
            return None
        tensor, seen = n.output[0], seen + 1
    return None


def _strip_activation(g: onnx.GraphProto, n: onnx.NodeProto, a: dict, consts: dict, info: dict) -> None:
    x, y = n.input[0], n.output[0]
    key = x
    users = _consumers(g, y)
    if len(users) == 1 and users[0][0].op_type == "Relu":
        key = users[0][0].output[0]  # Relu(Quant(t)) == Quant(Relu(t)) with zero point 0
    else:
        producer = _producer(g, key)
        while producer is not None and producer.op_type in BEFORE_FORMAT:
            key = producer.input[0]
            producer = _producer(g, key)
    scale, zp, bits, signed, narrow = _params(n, a, consts)
    frac = _pow2_frac(scale)
    width = bits if signed else bits + 1
    if frac is None:
        info["calibrated"][n.name] = f"scale {np.unique(scale.ravel())[:4].tolist()} is not one power of two"
    elif np.any(zp != 0):
        info["calibrated"][n.name] = f"zero point {zp.ravel().tolist()[:4]} is not 0"
    elif width < 2 or width > MAX_ACT_BITS:
        info["calibrated"][n.name] = f"{_describe(n, a, consts)} needs {width} signed bits (2..{MAX_ACT_BITS})"
    else:
        info["activations"][key] = FixedPoint(width, frac).to_dict()
    graph_outputs = {o.name for o in g.output}
    if y in graph_outputs:  # keep the output's name
        n.CopyFrom(onnx.helper.make_node("Identity", [x], [y], name=n.name))
        return
    for user, i in users:
        user.input[i] = x
    g.node.remove(n)
