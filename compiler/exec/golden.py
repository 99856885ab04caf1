"""Golden executor: runs an integer Graph with kernels/, exactly as the hardware computes.

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
from compiler.ir import BINARY_THRESHOLDS, LAYER_OPS, FixedPoint, Graph, binary_output
from kernels.activation import table_lookup
from kernels.argmax import binary_classes
from kernels.circulant_mac import CirculantLayer, circulant_mac, circulant_vectors, rebuild_circulant


@dataclass
class GoldenResult:
    logits_q: np.ndarray  # [N, classes] int64: what the design's output stream carries
    classes: np.ndarray  # [N] argmax, ties to the lowest index
    logits: np.ndarray  # [N, classes] float32: logits_q * 2**-frac


def quantize_input(graph: Graph, x: np.ndarray) -> np.ndarray:
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
    if not graph.is_integer:
        raise ValueError("the golden executor runs integer graphs (run the lower pass first)")
    env = {graph.nodes[0].outputs[0]: np.asarray(x_q, dtype=np.int64)}
    for node in graph.nodes[1:]:
        if node.op == "dequantize":
            logits_q = env[node.inputs[0]]
            if values is not None:
                values.update(env)
            return GoldenResult(
                logits_q, _classes(graph, node, logits_q), kernels.dequantize(logits_q, node.attrs["frac"])
            )
        x = env[node.inputs[0]]
        if record is not None and node.op in LAYER_OPS:
            record[node.name] = x
        step = _dense if node.op == "circulant" and node.name in exact else _STEP[node.op]
        y = step(graph, node, x)
        if wrap and node.op in ("dense", "conv2d"):
            y = wrap_signed(y, node.attrs["acc_bits"])
        env[node.outputs[0]] = y
    raise ValueError("integer graph has no dequantize output node")


def wrap_signed(v: np.ndarray, bits: int) -> np.ndarray:
    """v modulo 2**bits as a two's-complement value (what a `bits`-wide register holds)."""
    half = 1 << (bits - 1)
    return ((np.asarray(v, dtype=np.int64) + half) & ((1 << bits) - 1)) - half


def step(graph: Graph, node, x: np.ndarray) -> np.ndarray:
    """One integer node's output from its input, exactly (kernels/)."""
    return _STEP[node.op](graph, node, x)


def _classes(graph: Graph, node, logits_q: np.ndarray) -> np.ndarray:
    """The argmax, or for a binary classifier the threshold on its one output (kernels.argmax)."""
    kind = binary_output(graph)
    if kind is None:
        return kernels.argmax(logits_q)
    return binary_classes(logits_q, BINARY_THRESHOLDS[kind], node.attrs["frac"])


def _dense(graph: Graph, node, x):
    bias = graph.params[node.inputs[2]] if len(node.inputs) > 2 else None
    return kernels.dense_mac(x, graph.params[node.inputs[1]], bias)


def circulant_layer(graph: Graph, node) -> CirculantLayer:
    """The kernel's layer of a `circulant` node, from its stored integers: the spectra are not
    recomputed, and widths that disagree with the node's attrs are refused (ValueError)."""
    attrs = node.attrs["circulant"]
    w_q = graph.params[node.inputs[1]].astype(np.int64)
    return rebuild_circulant(
        attrs,
        graph.params[node.inputs[3]],
        graph.params[node.inputs[4]],
        circulant_vectors(w_q, attrs["block"]),
        graph.params[node.inputs[2]],
    )


def flatten(node, x: np.ndarray) -> np.ndarray:
    """[N, C, H, W] -> [N, C*H*W]: row-major, or with attr `order` = "hwc" channel-last
    ((y*W + x)*C + c, the order the hardware streams an image; docs/fixed-point.md "flatten")."""
    order = node.attrs.get("order", "row-major")
    if order == "hwc" and x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    elif order not in ("row-major", "hwc"):
        raise ValueError(f"node {node.name!r}: unknown flatten order {order!r}")
    return x.reshape(len(x), -1)


def _conv2d(graph: Graph, node, x):
    bias = graph.params[node.inputs[2]] if len(node.inputs) > 2 else None
    return kernels.conv2d(x, graph.params[node.inputs[1]], bias, node.attrs["stride"], node.attrs["pads"])


def _circulant(graph: Graph, node, x):
    return circulant_mac(x, circulant_layer(graph, node))


_STEP = {
    "flatten": lambda g, n, x: flatten(n, x),
    "dense": _dense,
    "circulant": _circulant,
    "requantize": lambda g, n, x: kernels.requantize(x, n.attrs["shift"], n.attrs["bits"], n.attrs["relu"]),
    "conv2d": _conv2d,
    "maxpool2d": lambda g, n, x: kernels.max_pool2d(x, n.attrs["kernel"], n.attrs["stride"], n.attrs["pads"]),
    "avgpool2d": lambda g, n, x: kernels.avg_pool2d(
        x, n.attrs["kernel"], n.attrs["stride"], n.attrs["pads"], n.attrs["count_include_pad"]
    ),
    "global_avgpool": lambda g, n, x: kernels.global_avg_pool(x),
    "table": lambda g, n, x: table_lookup(x, g.params[n.inputs[1]]),  # an activation: a gather
}
