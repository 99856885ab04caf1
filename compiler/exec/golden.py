"""Golden executor: runs an integer Graph with kernels/, exactly as the hardware computes.

Each node's step is its op's `golden` (compiler/ops/): this module only walks the graph.

`run` starts from float input (quantizing as the host does); `run_integer` starts from the
integer stream the hardware receives. Both give the integer output tensor (the last dense
layer's accumulators), the predicted classes and the dequantized float logits. A `circulant`
node runs kernels.circulant_mac (the fixed-point FFT) with the spectra stored in the graph. A
`flatten` with attr `order` = "hwc" emits the channel-last vector (the stream's order). A
block-circulant conv2d (attrs `circulant`) runs as any conv2d: its weight param holds the
expanded integer weights, and the structure changes only what the backends store.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

import kernels
from compiler import ops
from compiler.ir import BINARY_THRESHOLDS, FixedPoint, Graph, binary_output
from kernels.argmax import binary_classes


@dataclass
class GoldenResult:
    logits_q: np.ndarray  # [N, classes] int64: what the design's output stream carries
    classes: np.ndarray  # [N] argmax, ties to the lowest index
    logits: np.ndarray  # [N, classes] float32: logits_q * 2**-frac


def quantize_input(graph: Graph, x: np.ndarray) -> np.ndarray:
    _require_integer(graph)
    fmt = FixedPoint.from_dict(graph.meta["input_format"])
    return kernels.quantize(x, fmt.frac, fmt.bits)


def run(graph: Graph, x: np.ndarray, **options) -> GoldenResult:
    return run_integer(graph, quantize_input(graph, x), **options)


def run_integer(
    graph: Graph,
    x_q: np.ndarray,
    record: dict | None = None,
    exact: Collection[str] = (),
    wrap: bool = False,
    values: dict | None = None,
) -> GoldenResult:
    """`record`: filled with {weighted node name: its integer input}. `exact`: names of circulant
    nodes to compute by their exact integer product instead of the fixed-point FFT (to measure
    what the FFT costs; not what the hardware computes). `wrap`: every dense and conv
    accumulator taken modulo 2**acc_bits as the hardware's register holds it, which matters only
    for weights changed after lower sized the accumulators (the bit-flip audit); lower's widths
    never overflow otherwise. `values`: filled with {tensor name: its integer value}."""
    _require_integer(graph)
    env = {graph.nodes[0].outputs[0]: np.asarray(x_q, dtype=np.int64)}
    for node in graph.nodes[1:]:
        op = ops.get(node.op)
        xs = [env[t] for t in ops.stream_inputs(graph, node)]
        if op.ends_graph:
            logits_q = xs[0]
            if values is not None:
                values.update(env)
            return GoldenResult(logits_q, _classes(graph, node, logits_q), op.golden(graph, node, xs))
        if record is not None and op.layer:
            record[node.name] = xs[0]
        y = op.golden_exact(graph, node, xs) if node.name in exact else op.golden(graph, node, xs)
        if wrap and op.wraps:
            y = wrap_signed(y, node.attrs["acc_bits"])
        env[node.outputs[0]] = y
    raise ValueError("integer graph has no dequantize output node")


def _require_integer(graph: Graph) -> None:
    if not graph.is_integer:
        raise ValueError("the golden executor runs integer graphs (run the lower pass first)")


def wrap_signed(v: np.ndarray, bits: int) -> np.ndarray:
    """v modulo 2**bits as a two's-complement value (what a `bits`-wide register holds)."""
    half = 1 << (bits - 1)
    return ((np.asarray(v, dtype=np.int64) + half) & ((1 << bits) - 1)) - half


def step(graph: Graph, node, x: np.ndarray) -> np.ndarray:
    """One integer node's output from its (one stream) input, exactly (kernels/)."""
    return ops.get(node.op).golden(graph, node, [x])


def _classes(graph: Graph, node, logits_q: np.ndarray) -> np.ndarray:
    """The argmax, or for a binary classifier the threshold on its one output (kernels.argmax)."""
    kind = binary_output(graph)
    if kind is None:
        return kernels.argmax(logits_q)
    return binary_classes(logits_q, BINARY_THRESHOLDS[kind], node.attrs["frac"])
