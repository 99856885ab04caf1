"""Channel removal: drop the channels (neurons) that pruning left dead.

A channel c of the tensor between a producer layer A (conv2d or dense) and the next layer B
(conv2d, or dense, possibly after a `flatten`) is dead when

- A always writes 0 into it: A's filter/row c is all zero and A's bias[c] is 0 or absent, or
  the bias is negative and a relu lies on the way (relu(b < 0) = 0; the pools keep a
  non-positive constant non-positive), or
- B never reads it: every weight of B on channel c is zero (conv W[:, c]; dense after flatten of
  [C, H, W] the columns c*H*W .. (c+1)*H*W - 1; dense after dense column c).

Only ops that map a zero channel to a zero channel may lie between A and B (relu, the pools,
flatten), so either way the channel contributes exactly nothing to B, and deleting A's
filter/row and bias entry and B's input channel/columns leaves the float function unchanged
(up to float rounding of B's sums). Removal can expose more dead channels (a removed row of B
may have been the only reader of one of A's inputs), so it repeats until nothing changes.

Never touched: the graph input's channels (no layer produces them), the outputs of the last
layer (the classes), block-circulant layers (deleting a row breaks the block structure),
tensors read by more than one node or that are graph outputs, and the last live channel of a
tensor (one is kept, even if dead, so every tensor keeps a shape).

Branching graphs: the two inputs of an `add` must keep one channel set, and a `concat`'s
consumer reads both inputs' channels; the rule here is the simplest correct one: a channel that
reaches a join (add, concat) is never removed, nor one read after it (neither is a boundary:
the path to the next layer meets a join, or forks). Each layer whose output reaches a join is
annotated `channels_kept` (naming the join), and graph.meta["channels_kept_at_joins"] lists them,
so a pass's log and report can say why those channels stayed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.ir import Graph, Node

LAYER_OPS = ("dense", "conv2d")
JOIN_OPS = ("add", "concat")  # their inputs' channels are never removed (module doc)
ZERO_PRESERVING = {"relu", "maxpool2d", "avgpool2d", "global_avgpool", "flatten"}  # f(0 channel) = 0 channel


@dataclass
class Boundary:
    """The tensor between producer A and consumer B, and whether a relu lies between them."""

    producer: Node
    consumer: Node
    through_relu: bool

    @property
    def name(self) -> str:
        return f"{self.producer.name} -> {self.consumer.name}"


def remove_dead_channels(graph: Graph) -> Graph:
    """A new graph without dead channels (see the module doc). Changed layers are annotated with
    `removed_outputs` / `removed_inputs` (original indices: channels for conv2d, rows / columns
    for dense), and graph.meta["removed_channels"] gets one record per shrunk boundary."""
    g = graph.copy()
    boundaries = find_boundaries(g)
    origin = {n.name: _Origin.of(g, n) for b in boundaries for n in (b.producer, b.consumer)}
    removed: dict[str, list[int]] = {}  # boundary name -> original channel indices removed
    before = {b.name: g.params[b.producer.inputs[1]].shape[0] for b in boundaries}
    changed = True
    while changed:  # removal can expose more dead channels
        changed = False
        for b in reversed(boundaries):  # back to front: unread channels propagate upstream in one sweep
            dead = dead_channels(g, b)
            if dead.all():
                dead[0] = False  # keep one channel: a tensor never becomes empty
            if dead.any():
                removed.setdefault(b.name, []).extend(origin[b.producer.name].outputs[dead].tolist())
                _remove(g, b, np.flatnonzero(dead), origin)
                changed = True
    records = [_record(b, before[b.name], removed[b.name]) for b in boundaries if b.name in removed]
    _annotate(g, origin)
    if records:
        g.meta["removed_channels"] = g.meta.get("removed_channels", []) + records
    _annotate_joins(g)
    return g


def joined_layers(g: Graph) -> dict[str, str]:
    """{layer: the join its output reaches through zero-preserving ops} for every dense / conv2d
    layer whose channels a join reads (so they are never removed)."""
    found = {}
    for a in g.nodes:
        if a.op not in LAYER_OPS:
            continue
        frontier, seen = [a.outputs[0]], set()
        while frontier and a.name not in found:
            tensor = frontier.pop()
            seen.add(tensor)
            for reader in g.consumers(tensor):
                if reader.op in JOIN_OPS:
                    found[a.name] = reader.name
                    break
                if reader.op in ZERO_PRESERVING and reader.outputs[0] not in seen:
                    frontier.append(reader.outputs[0])
    return found


def _annotate_joins(g: Graph) -> None:
    joined = joined_layers(g)
    for layer, join in joined.items():
        g.node(layer).annotations["channels_kept"] = (
            f"its output reaches {g.node(join).op} {join!r}: channels that reach a join are never removed "
            "(both inputs of an add keep one channel set)"
        )
    if joined:
        g.meta["channels_kept_at_joins"] = sorted(joined)


def find_boundaries(g: Graph) -> list[Boundary]:
    """Every (A, B) pair joined only by zero-preserving single-reader tensors, in graph order."""
    found = []
    for a in g.nodes:
        if a.op not in LAYER_OPS or _circulant(a) or _shared_params(g, a):
            continue
        hit = _next_layer(g, a)
        if hit is None:
            continue
        b, through_relu = hit
        if not _circulant(b) and not _shared_params(g, b) and _columns_per_channel(g, a, b):
            found.append(Boundary(a, b, through_relu))
    return found


def dead_channels(g: Graph, b: Boundary) -> np.ndarray:
    """Boolean per channel of the boundary tensor: A writes only zeros there, or B reads none of it."""
    w_a = g.params[b.producer.inputs[1]]
    channels = w_a.shape[0]
    bias = g.params[b.producer.inputs[2]] if len(b.producer.inputs) > 2 else np.zeros(channels)
    silent_bias = (bias == 0) | ((bias < 0) & b.through_relu)
    silent = ~w_a.reshape(channels, -1).any(axis=1) & silent_bias
    unread = ~_weights_per_channel(g, b).any(axis=1)
    return silent | unread


def remove_and_log(graph: Graph, ctx, pass_name: str) -> Graph:
    """remove_dead_channels, with one log line per shrunk layer pair (a pass's last step)."""
    already = len(graph.meta.get("removed_channels", []))
    g = remove_dead_channels(graph)
    records = g.meta.get("removed_channels", [])[already:]
    for r in records:
        unit = "filters" if g.node(r["producer"]).op == "conv2d" else "neurons"
        ctx.log(
            f"      {pass_name}: removed {len(r['removed'])} dead {unit} of {r['producer']!r} "
            f"({r['channels_before']} -> {r['channels_after']}) and the inputs of {r['consumer']!r} that read them"
        )
    if not records:
        ctx.log(f"      {pass_name}: no dead channel to remove")
    if kept := g.meta.get("channels_kept_at_joins"):
        ctx.log(
            f"      {pass_name}: channels of {', '.join(repr(k) for k in kept)} reach a join (add/concat): "
            "left in place (both inputs of an add keep one channel set)"
        )
    return g


def original_outputs(g: Graph, node: Node) -> np.ndarray:
    """For each current output (row, filter) of a layer, its index in the layer as imported."""
    return _Origin.of(g, node).outputs


# ---- the path from A to B -------------------------------------------------------------------
def _next_layer(g: Graph, a: Node) -> tuple[Node, bool] | None:
    """The layer that reads A's output through zero-preserving ops only, and whether a relu is
    on the way; None if the output leaves the graph, branches, or meets any other op."""
    graph_outputs = {t.name for t in g.outputs}
    tensor, through_relu = a.outputs[0], False
    while True:
        readers = g.consumers(tensor)
        if tensor in graph_outputs or len(readers) != 1:
            return None
        reader = readers[0]
        if reader.op in LAYER_OPS:
            return (reader, through_relu) if reader.inputs[0] == tensor else None
        if reader.op not in ZERO_PRESERVING:
            return None
        through_relu |= reader.op == "relu"
        tensor = reader.outputs[0]


def _columns_per_channel(g: Graph, a: Node, b: Node) -> int:
    """How many of B's inputs one channel of A feeds: 1 for conv and dense -> dense, H*W for a
    dense after flatten of [C, H, W] (channel-major, so channel c is a run of H*W columns);
    0 if the shapes do not fit that picture (then the boundary is left alone)."""
    channels = g.params[a.inputs[1]].shape[0]
    n_in = g.params[b.inputs[1]].shape[1]
    if b.op == "conv2d":
        return 1 if n_in == channels else 0
    return n_in // channels if n_in % channels == 0 else 0


def _weights_per_channel(g: Graph, b: Boundary) -> np.ndarray:
    """B's weights grouped by the channel of the boundary tensor they read: [C, ...]."""
    w_b = g.params[b.consumer.inputs[1]]
    channels = g.params[b.producer.inputs[1]].shape[0]
    if b.consumer.op == "conv2d":
        return np.moveaxis(w_b, 1, 0).reshape(channels, -1)
    per = _columns_per_channel(g, b.producer, b.consumer)
    return w_b.reshape(w_b.shape[0], channels, per).transpose(1, 0, 2).reshape(channels, -1)


def _circulant(node: Node) -> bool:
    return "circulant" in node.annotations or node.annotations.get("block_size", 1) != 1


def _shared_params(g: Graph, node: Node) -> bool:
    """A weight or bias another node also reads: deleting from it would change that node."""
    return any(len(g.consumers(p)) > 1 for p in node.inputs[1:] if p in g.params)


# ---- removal and bookkeeping ----------------------------------------------------------------
def _remove(g: Graph, b: Boundary, channels: np.ndarray, origin: dict) -> None:
    a, c = b.producer, b.consumer
    per = _columns_per_channel(g, a, c)
    columns = (channels[:, None] * per + np.arange(per)[None, :]).ravel() if c.op == "dense" else channels
    g.params[a.inputs[1]] = np.delete(g.params[a.inputs[1]], channels, axis=0)
    if len(a.inputs) > 2:
        g.params[a.inputs[2]] = np.delete(g.params[a.inputs[2]], channels, axis=0)
    g.params[c.inputs[1]] = np.delete(g.params[c.inputs[1]], columns, axis=1)
    origin[a.name].outputs = np.delete(origin[a.name].outputs, channels)
    origin[c.name].inputs = np.delete(origin[c.name].inputs, columns)


@dataclass
class _Origin:
    """For each current row (filter) and input of a layer, its index in the layer before any
    removal: a layer shrunk by an earlier pass keeps counting from its original size."""

    outputs: np.ndarray
    inputs: np.ndarray
    n_outputs: int
    n_inputs: int

    @staticmethod
    def of(g: Graph, node: Node) -> _Origin:
        n_out, n_in = g.params[node.inputs[1]].shape[:2]
        gone_out = node.annotations.get("removed_outputs", [])
        gone_in = node.annotations.get("removed_inputs", [])
        n_out, n_in = n_out + len(gone_out), n_in + len(gone_in)
        return _Origin(np.setdiff1d(np.arange(n_out), gone_out), np.setdiff1d(np.arange(n_in), gone_in), n_out, n_in)


def _annotate(g: Graph, origin: dict[str, _Origin]) -> None:
    for name, o in origin.items():
        node = g.node(name)
        for key, kept, total in (("removed_outputs", o.outputs, o.n_outputs), ("removed_inputs", o.inputs, o.n_inputs)):
            gone = np.setdiff1d(np.arange(total), kept)
            if len(gone):
                node.annotations[key] = [int(i) for i in gone]


def _record(b: Boundary, before: int, removed: list[int]) -> dict:
    return {
        "producer": b.producer.name,
        "consumer": b.consumer.name,
        "channels_before": before,
        "channels_after": before - len(removed),
        "removed": sorted(int(i) for i in removed),
    }
