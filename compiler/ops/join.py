"""What the joins (add, concat) share in their lowering rules: both inputs as activations, and
the refusals of what their streams cannot join."""

from __future__ import annotations

from typing import Any

from compiler.errors import PassError
from compiler.ir import Node


def join_inputs(lowering: Any, node: Node) -> list:
    """The lowered states of the node's two stream inputs, each an activation (an accumulator is
    requantized first, once for all its consumers)."""
    if len(node.inputs) != 2:
        raise PassError(f"lower: {node.op} {node.name!r} takes two stream inputs, got {len(node.inputs)}")
    states = [lowering.activation_of(t, node, f"input_{side}") for t, side in zip(node.inputs, "ab")]
    flat = [t for t, st in zip(node.inputs, states) if st.flattened_chw is not None]
    if flat:
        raise PassError(
            f"lower: {node.op} {node.name!r}: its input {flat[0]!r} is a flattened image, which streams "
            "channel-last while the integer graph is row-major; join the images before the flatten"
        )
    return states
