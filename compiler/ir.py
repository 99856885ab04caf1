"""The IR that travels the whole flow: Graph, Node, TensorSpec, FixedPoint.

Plain dataclasses. A Graph serializes losslessly to `graph.json` + `params.npz`; that pair is
the checkpoint written after every pass and the integer-graph artifact of a build.
Imports nothing else of the project.
"""

from __future__ import annotations

import copy
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from compiler.errors import MpcError

# The closed set of operations. Float graphs use the first group; `lower` produces the second.
# `circulant` is a block-circulant dense layer computed by fixed-point FFTs (docs/fixed-point.md,
# "Block-circulant layers"): its inputs are x, the integer weight matrix (exactly block-circulant),
# the bias and the stored weight spectra (real, imaginary); it outputs an accumulator as dense does.
FLOAT_OPS = {
    "dense",
    "bias_add",
    "relu",
    "flatten",
    "identity",
    "softmax",
    "log_softmax",
    "conv2d",
    "maxpool2d",
    "avgpool2d",
    "global_avgpool",
    "batchnorm",
    # elementwise activations (docs/ir.md); `lower` turns each into an integer `table`
    "sigmoid",
    "tanh",
    "leaky_relu",
    "prelu",
    "elu",
    "selu",
    "hard_sigmoid",
    "hard_swish",
    "clip",
    "add",  # the elementwise sum of two streams (a residual join)
    "concat",  # two streams joined along the channel axis (attr axis = 1)
}  # docs/ir.md: attrs, semantics
INTEGER_OPS = {
    "quantize",
    "dense",
    "circulant",
    "requantize",
    "flatten",
    "dequantize",
    "conv2d",
    "maxpool2d",
    "avgpool2d",
    "global_avgpool",
    "table",  # an activation as a lookup table indexed by the input code
    "add",  # two activation streams aligned, summed and requantized (a residual join)
    "concat",  # two activation streams in one common format, joined along the channel axis
}  # docs/fixed-point.md
OPS = FLOAT_OPS | INTEGER_OPS
# Op groups, defined here once.
MATRIX_OPS = ("dense", "circulant")  # inputs[1] is a weight matrix [n_out, n_in]
LAYER_OPS = (*MATRIX_OPS, "conv2d")  # inputs[1] is a weight (conv: [C_out, C_in, kH, kW])
POOL_OPS = ("maxpool2d", "avgpool2d", "global_avgpool")
SOFTMAX_OPS = ("softmax", "log_softmax")
# float activations that `lower` turns into a `table` (kernels.activation.FUNCTIONS)
ACTIVATION_OPS = ("sigmoid", "tanh", "leaky_relu", "prelu", "elu", "selu", "hard_sigmoid", "hard_swish", "clip")

FORMAT_VERSION = 1


# A one-output classifier is binary: its output is a probability (a sigmoid head: class 1 when it is
# >= 0.5) or a logit (class 1 when >= 0). Integer graphs record which in meta["binary_output"].
BINARY_THRESHOLDS = {"probability": 0.5, "logit": 0.0}
PROBABILITY_OPS = ("sigmoid", "hard_sigmoid")


def binary_output(graph: Graph) -> str | None:
    """None for a model with several outputs; else "probability" or "logit" (BINARY_THRESHOLDS)."""
    if int(np.prod(graph.outputs[0].shape)) != 1:
        return None
    if graph.is_integer:
        return graph.meta.get("binary_output", "logit")
    return "probability" if graph.nodes and graph.nodes[-1].op in PROBABILITY_OPS else "logit"


class IRError(MpcError, ValueError):
    """A graph that breaks the IR's invariants, or a checkpoint that cannot be read."""


# Checks that layers above the IR add to Graph.validate (compiler.hw registers the hardware
# plan's), so the IR stays free of imports while a loaded graph is checked whole.
_EXTRA_CHECKS: list = []


def register_check(check) -> None:
    """`check(graph)` raises IRError on a graph it finds inconsistent; run by every validate."""
    if check not in _EXTRA_CHECKS:
        _EXTRA_CHECKS.append(check)


@dataclass(frozen=True)
class FixedPoint:
    """Signed two's-complement Q(bits, frac): integer q stands for q * 2**-frac."""

    bits: int
    frac: int

    @property
    def min_int(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def max_int(self) -> int:
        return (1 << (self.bits - 1)) - 1

    def to_dict(self) -> dict:
        return {"bits": self.bits, "frac": self.frac}

    @staticmethod
    def from_dict(d: dict) -> FixedPoint:
        return FixedPoint(int(d["bits"]), int(d["frac"]))


@dataclass
class TensorSpec:
    """A graph input or output. `shape` excludes the batch dimension."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    format: FixedPoint | None = None

    def to_dict(self) -> dict:
        d: dict = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.format is not None:
            d["format"] = self.format.to_dict()
        return d

    @staticmethod
    def from_dict(d: dict) -> TensorSpec:
        fmt = FixedPoint.from_dict(d["format"]) if "format" in d else None
        return TensorSpec(d["name"], tuple(d["shape"]), d.get("dtype", "float32"), fmt)


@dataclass
class Node:
    """One operation. `inputs`/`outputs` name tensors; parameter inputs name `Graph.params`.

    `attrs` hold the op's semantics (e.g. a requantize shift); `annotations` hold what passes
    learned or decided (sparsity mask name, engine choice, accuracy notes). Both are
    JSON-serializable; FixedPoint values are stored through `to_dict`.
    """

    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)


@dataclass
class Graph:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    nodes: list[Node]
    params: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    # ---- queries -------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def weighted_nodes(self, include_conv: bool = False) -> list[Node]:
        """Layers with a weight in inputs[1], in graph order. By default only those whose weight
        is a matrix [n_out, n_in] (MATRIX_OPS), which is what every pass and backend that
        indexes it assumes; include_conv=True adds conv2d (weight [C_out, C_in, kH, kW])."""
        ops = LAYER_OPS if include_conv else MATRIX_OPS
        return [n for n in self.nodes if n.op in ops]

    def producer(self, tensor: str) -> Node | None:
        for n in self.nodes:
            if tensor in n.outputs:
                return n
        return None

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    @property
    def is_integer(self) -> bool:
        return bool(self.meta.get("integer", False))

    def copy(self) -> Graph:
        """Deep copy: passes return new graphs and never mutate their input."""
        return Graph(
            inputs=copy.deepcopy(self.inputs),
            outputs=copy.deepcopy(self.outputs),
            nodes=copy.deepcopy(self.nodes),
            params={k: v.copy() for k, v in self.params.items()},
            meta=copy.deepcopy(self.meta),
        )

    # ---- invariants ----------------------------------------------------------------------
    def validate(self) -> None:
        """Raise IRError unless ops are known, tensors are defined before use, params exist."""
        defined = {t.name for t in self.inputs} | set(self.params)
        names = set()
        for n in self.nodes:
            if n.op not in OPS:
                raise IRError(f"node {n.name!r}: unknown op {n.op!r}")
            if n.name in names:
                raise IRError(f"duplicate node name {n.name!r}")
            names.add(n.name)
            for t in n.inputs:
                if t not in defined:
                    raise IRError(f"node {n.name!r}: input {t!r} is used before it is defined")
            defined.update(n.outputs)
        for spec in self.outputs:
            if spec.name not in defined:
                raise IRError(f"graph output {spec.name!r} is never produced")
        for check in _EXTRA_CHECKS:
            check(self)

    # ---- serialization -------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        doc = {
            "format_version": FORMAT_VERSION,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "nodes": [asdict(n) for n in self.nodes],
            "params": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in self.params.items()},
            "meta": self.meta,
        }
        (folder / "graph.json").write_text(json.dumps(doc, indent=1, default=_json_default))
        # np.savez keys cannot hold every character of ONNX names safely; index them instead. (numpy's
        # stubs type the first keyword array as allow_pickle.)
        arrays = {f"p{i}": v for i, v in enumerate(self.params.values())}
        np.savez(folder / "params.npz", **arrays)  # type: ignore[arg-type]

    @staticmethod
    def load(folder: str | Path) -> Graph:
        folder = Path(folder)
        try:
            doc = json.loads((folder / "graph.json").read_text())
            with np.load(folder / "params.npz") as npz:
                arrays = [npz[f"p{i}"] for i in range(len(doc["params"]))]
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise IRError(f"{folder}: not a readable mpc graph checkpoint ({e})") from None
        if doc.get("format_version") != FORMAT_VERSION:
            raise IRError(f"{folder}/graph.json: unsupported format_version {doc.get('format_version')}")
        params = dict(zip(doc["params"], arrays))
        g = Graph(
            inputs=[TensorSpec.from_dict(t) for t in doc["inputs"]],
            outputs=[TensorSpec.from_dict(t) for t in doc["outputs"]],
            nodes=[Node(**n) for n in doc["nodes"]],
            params=params,
            meta=doc.get("meta", {}),
        )
        g.validate()
        return g


def _json_default(obj):
    if isinstance(obj, FixedPoint):
        return obj.to_dict()
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON-serializable in a graph: {type(obj).__name__}")
