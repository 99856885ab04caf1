"""What an op is: one class per IR op holding everything about it, and the registry of them.

A float op and the integer op of the same name (dense, conv2d, flatten, the pools) are one
class. Each member is optional where it does not apply; `Op.defines(member)` says whether a
class has it. The executors (exec/golden, exec/torch, exec/gradient), the ONNX backend and the
lower pass loop over this registry and branch on no op name of their own.

torch and onnx are heavy to import and most commands need neither: op modules import them
inside the members that use them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from compiler.ir import Graph, Node

# The members a class may define (the rest of Op is attributes with defaults).
MEMBERS = ("golden", "golden_exact", "forward", "stand_in", "emit", "lower")


class Op:
    """One IR op. Subclasses set `name` and define the members that apply to them:

    - golden(graph, node, xs): the exact integer step (kernels/), xs the node's stream inputs
      (its inputs that are not params), in order;
    - golden_exact(graph, node, xs): the exact product where `golden` approximates it (the
      fixed-point FFT of a circulant layer): what its cost is measured against;
    - forward(node, args): the float (trainable) forward, args all inputs (params included);
    - stand_in(graph, node, xs, params, values): the float stand-in whose gradient the bit-flip
      audit takes through the exact values (exec/gradient.py);
    - emit(builder, graph, node, xs): the ONNX nodes (xs: the stream inputs' ONNX names), the
      name of the tensor that carries the output;
    - lower(lowering, node): the lowering rule from the float op (passes/lower.py's walk).
    """

    name: ClassVar[str] = ""
    layer: ClassVar[bool] = False  # inputs[1] is a weight (ir.LAYER_OPS)
    gradient_params: ClassVar[slice] = slice(0, 0)  # the inputs whose gradients the bit-flip audit takes
    wraps: ClassVar[bool] = False  # its accumulator is an acc_bits register (golden's `wrap`)
    ends_graph: ClassVar[bool] = False  # the integer graph's output (its input: the output integers)
    dropped_at_output: ClassVar[bool] = False  # trailing, argmax-neutral: lower and logits_module drop it
    strided: ClassVar[bool] = False  # attrs kernel / stride: the line-buffered engines need equal strides
    # Where lower refuses the float op with a message of its own: "{names}" is filled in.
    unlowerable: ClassVar[str | None] = None

    def golden(self, graph: Graph, node: Node, xs: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError(f"op {self.name!r} has no integer step")

    def golden_exact(self, graph: Graph, node: Node, xs: list[np.ndarray]) -> np.ndarray:
        return self.golden(graph, node, xs)

    def forward(self, node: Node, args: list) -> Any:
        raise NotImplementedError(f"op {self.name!r} has no float forward")

    def stand_in(self, graph: Graph, node: Node, xs: list, params: dict, values: dict) -> Any:
        raise NotImplementedError(f"op {self.name!r} has no gradient stand-in")

    def emit(self, builder: Any, graph: Graph, node: Node, xs: list[str]) -> str:
        raise NotImplementedError(f"op {self.name!r} has no ONNX lowering")

    def lower(self, lowering: Any, node: Node) -> None:
        raise NotImplementedError(f"op {self.name!r} has no lowering rule")

    @classmethod
    def defines(cls, member: str) -> bool:
        """Whether this op has `member` (one of MEMBERS), its own or a parent op's, not Op's."""
        if member not in MEMBERS:
            raise ValueError(f"unknown op member {member!r} (known: {', '.join(MEMBERS)})")
        return getattr(cls, member) is not getattr(Op, member)


OPS: dict[str, Op] = {}


def register(cls: type[Op]) -> type[Op]:
    if not cls.name or cls.name in OPS:
        raise ValueError(f"op {cls.name!r} missing or registered twice")
    OPS[cls.name] = cls()
    return cls


def get(name: str) -> Op:
    """The registered op `name` (KeyError when there is none)."""
    return OPS[name]


def names() -> list[str]:
    """Every registered op name, in registration order."""
    return list(OPS)


def stream_inputs(graph: Graph, node: Node) -> list[str]:
    """The node's inputs that are tensors of the stream, not params, in order."""
    return [t for t in node.inputs if t not in graph.params]
