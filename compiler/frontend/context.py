"""What the frontend knows about a model while importing it, shared by its reading (onnx.py),
checking (support.py) and conversion (convert.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

PROBE_BATCH = 7  # batch size standing in for a dynamic batch dimension: cannot be confused with a feature count
# ONNX activation -> (IR op, attribute defaults); lower builds each as a lookup table
ACTIVATIONS = {
    "Sigmoid": ("sigmoid", {}),
    "Tanh": ("tanh", {}),
    "LeakyRelu": ("leaky_relu", {"alpha": 0.01}),
    "PRelu": ("prelu", {}),
    "Elu": ("elu", {"alpha": 1.0}),
    "Selu": ("selu", {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875}),
    "HardSigmoid": ("hard_sigmoid", {"alpha": 0.2, "beta": 0.5}),
    "HardSwish": ("hard_swish", {}),
    "Clip": ("clip", {}),
}


@dataclass
class Ctx:
    path: Path
    model: onnx.ModelProto
    consts: dict[str, np.ndarray]
    shapes: dict[str, tuple]
    opset: int
    graph_outputs: set[str]
    batch: int = PROBE_BATCH  # the input's static batch size, else PROBE_BATCH
    batch_dependent: set[str] = field(default_factory=set)  # folded values computed from a Shape


def live_nodes(ctx: Ctx) -> list[onnx.NodeProto]:
    """The nodes left once constants are folded: those with an output that is not a constant."""
    return [n for n in ctx.model.graph.node if not all(o in ctx.consts for o in n.output)]


def node_attrs(n: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}


def tensor_rank(ctx: Ctx, tensor: str) -> int | None:
    shape = ctx.shapes.get(tensor)
    return None if shape is None else len(shape)
