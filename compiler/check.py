"""`mpc check MODEL.onnx`: what mpc will do with every node, without data and without compiling.

Each ONNX node is one of: folded (a constant mpc computes at import), refused (with the reason the
frontend gives), or imported as an IR op, which the flow then lowers onto the hardware: an
engine of compiler/hw, fused into the engine before it, free (stream order), or removed. The
hardware column is what the default flow does; `plan` decides dense or sparse per layer once the
weights are known. Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compiler.frontend import onnx as frontend
from compiler.frontend.context import live_nodes
from compiler.frontend.convert import build_graph, convert_node
from compiler.frontend.support import why_unsupported
from compiler.ir import ACTIVATION_OPS

# What the default flow (canonicalize, lower, plan) makes of each float op.
HARDWARE = {
    "dense": "dense engine (sparse where plan finds it smaller)",
    "conv2d": "conv engine (line-buffered)",
    "maxpool2d": "pool engine",
    "avgpool2d": "pool engine",
    "global_avgpool": "pool engine",
    "relu": "requantize + ReLU, fused into the engine before it",
    "flatten": "free (stream order)",
    "add": "add engine (residual join)",
    "concat": "concat engine (channel join)",
    "identity": "removed by canonicalize",
    "bias_add": "fused into the layer before it (canonicalize)",
    "batchnorm": "folded into the layer before it (canonicalize)",
    "softmax": "dropped (the design outputs logits; argmax is unchanged)",
    "log_softmax": "dropped (the design outputs logits; argmax is unchanged)",
}
TABLE_ACTIVATION = "activation engine (lookup table)"
DEPTHWISE = "conv engine (depthwise)"
GROUPED = "conv engine (line-buffered; groups expanded to one block-diagonal conv)"


@dataclass(frozen=True)
class NodeVerdict:
    name: str
    op_type: str
    status: str  # "imported", "normalized", "folded", "refused"
    detail: str  # the IR op(s) and hardware, or why it is refused


def check(path: str | Path) -> list[NodeVerdict]:
    """Every node of the model with what mpc will do with it. FrontendError if the file cannot be
    read as a model at all."""
    path = Path(path)
    model = frontend.read_model(path)  # with the import normalization, where the frontend has it
    ctx = frontend.model_context(path, model)
    frontend.fold_constants(ctx)
    live = {n.name for n in live_nodes(ctx)}
    kept = {n.name for n in ctx.model.graph.node}
    verdicts = [
        NodeVerdict(n.name, n.op_type, "normalized", "removed by import normalization")
        for n in _raw_nodes(path)
        if n.name and n.name not in kept
    ]
    for node in ctx.model.graph.node:
        if node.name not in live:
            verdicts.append(NodeVerdict(node.name, node.op_type, "folded", "constant, computed at import"))
        elif why := why_unsupported(ctx, node):
            verdicts.append(NodeVerdict(node.name, node.op_type, "refused", why))
        else:
            verdicts.append(NodeVerdict(node.name, node.op_type, "imported", _hardware(ctx, node)))
    if not any(v.status == "refused" for v in verdicts):
        try:  # what only the whole model can show: one input and output, static shapes
            build_graph(ctx)
        except frontend.FrontendError as e:
            verdicts.append(NodeVerdict("(model)", "-", "refused", str(e).removeprefix(f"{path}: ")))
    return verdicts


def _raw_nodes(path: Path) -> list:
    """The file's nodes as written, before normalization."""
    import onnx

    return list(onnx.load(str(path), load_external_data=False).graph.node)


def _hardware(ctx, node) -> str:
    """The IR op(s) the node becomes and where each ends up in hardware."""
    if node.op_type == "Pad":
        return "folded into the Conv after it (its padding)"
    converted = convert_node(ctx, node, {})
    nodes = converted if isinstance(converted, list) else [converted]
    parts = [f"{n.op}: {_conv_where(node, n) or _where(n.op)}" for n in nodes]
    return "; ".join(parts)


def _conv_where(onnx_node, n) -> str | None:
    """A grouped Conv's hardware: depthwise as it is, other groups as their expansion."""
    if n.op != "conv2d":
        return None
    if n.attrs.get("group", 1) != 1:
        return DEPTHWISE
    groups = [a.i for a in onnx_node.attribute if a.name == "group"]
    return GROUPED if groups and groups[0] > 1 else None


def _where(op: str) -> str:
    if op in HARDWARE:
        return HARDWARE[op]
    return TABLE_ACTIVATION if op in ACTIVATION_OPS else "lowered by lower"


def render(path: str | Path, verdicts: list[NodeVerdict]) -> str:
    """A table a terminal shows: node, ONNX op, verdict; then a summary line."""
    width = min(max((len(repr(v.name)) for v in verdicts), default=4), 40)
    op_width = max((len(v.op_type) for v in verdicts), default=2)
    lines = [f"{path}: {len(verdicts)} nodes"]
    for v in verdicts:
        verdict = {"imported": "->", "normalized": "normalized:", "folded": "folded:", "refused": "REFUSED:"}[v.status]
        lines.append(f"  {repr(v.name)[:width]:{width}s}  {v.op_type:{op_width}s}  {verdict} {v.detail}")
    refused = sum(v.status == "refused" for v in verdicts)
    lines.append(
        f"{refused} node(s) refused: mpc cannot compile this model as it is"
        if refused
        else "every node is supported: `mpc compile` will take this model"
    )
    return "\n".join(lines)
