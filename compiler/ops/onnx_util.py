"""What the ONNX emitters of several ops share: the graph builder, exact int64 shifts, slices,
padding and the int32 / int64 accumulator choice (docs/fixed-point.md; backends/onnx.py).

Imports onnx: op modules import this inside their `emit`, so that loading the registry does not.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from compiler.errors import MpcError
from compiler.ir import FixedPoint, Graph, Node

ONNX_INT32_ACC_BITS = 32  # MatMulInteger / ConvInteger accumulate in int32


class OnnxBackendError(MpcError, ValueError):
    pass


class Builder:
    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0

    def const(self, value, dtype, name_hint: str) -> str:
        self._count += 1
        name = f"{name_hint}__c{self._count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def wide(node: Node) -> bool:
    """A layer whose accumulator exceeds int32 (lower allows up to 48 bits): computed in int64."""
    return int(node.attrs.get("acc_bits", 0)) > ONNX_INT32_ACC_BITS


def acc_type(g: Graph, tensor: str):
    """The ONNX integer type carrying `tensor` if it is an accumulator: int64 for a wide layer's."""
    producer = g.producer(tensor)
    return TensorProto.INT64 if producer is not None and wide(producer) else TensorProto.INT32


def slice_(b: Builder, x: str, axis: int, start: int, end: int, name: str) -> str:
    ints = lambda v, hint: b.const([v], np.int64, hint)
    return b.op("Slice", [x, ints(start, "start"), ints(end, "end"), ints(axis, "axis")], name)


def rshift_round(b: Builder, v: str, s: int, name: str) -> str:
    """rshift_round(v, s) of docs/fixed-point.md on int64, exactly."""
    if s == 0:
        return v
    if s < 0:
        return b.op("Mul", [v, b.const(1 << -s, np.int64, "lshift")], f"{name}__lsh")
    t = b.op("Add", [v, b.const(1 << (s - 1), np.int64, "round")], f"{name}__rnd")
    r = b.op("Mod", [t, b.const(1 << s, np.int64, "mod")], f"{name}__mod", fmod=0)  # in [0, 2**s)
    d = b.op("Sub", [t, r], f"{name}__sub")
    return b.op("Div", [d, b.const(1 << s, np.int64, "div")], f"{name}__rsh")  # exact division


def saturate_to_int8(b: Builder, t: str, bits: int, relu: bool, np_int, name: str) -> str:
    """requantize's saturation to `bits` (and its ReLU: clip then ReLU == clip to [0, hi]) of an
    integer tensor of numpy type `np_int`, cast to the int8 that carries activations."""
    fmt = FixedPoint(bits, 0)
    lo = 0 if relu else fmt.min_int
    t = b.op("Clip", [t, b.const(lo, np_int, "lo"), b.const(fmt.max_int, np_int, "hi")], f"{name}__clip")
    return b.op("Cast", [t], f"{name}__int8", to=TensorProto.INT8)


def onnx_pads(pads) -> list[int]:
    t, l, bottom, r = pads
    return [t, l, bottom, r]  # ONNX: [x1_begin, x2_begin, x1_end, x2_end], the IR's order
