"""Golden executor: runs an integer Graph with kernels/, exactly as the hardware computes.

`run` starts from float input (quantizing as the host does); `run_integer` starts from the
integer stream the hardware receives. Both give the integer output tensor (the last dense
layer's accumulators), the predicted classes and the dequantized float logits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import kernels
from compiler.ir import FixedPoint, Graph


@dataclass
class GoldenResult:
    logits_q: np.ndarray   # [N, classes] int64: what the design's output stream carries
    classes: np.ndarray    # [N] argmax, ties to the lowest index
    logits: np.ndarray     # [N, classes] float32: logits_q * 2**-frac


def quantize_input(graph: Graph, x: np.ndarray) -> np.ndarray:
    fmt = FixedPoint.from_dict(graph.meta["input_format"])
    return kernels.quantize(x, fmt.frac, fmt.bits)


def run(graph: Graph, x: np.ndarray) -> GoldenResult:
    return run_integer(graph, quantize_input(graph, x))


def run_integer(graph: Graph, x_q: np.ndarray) -> GoldenResult:
    if not graph.is_integer:
        raise ValueError("the golden executor runs integer graphs (run the lower pass first)")
    env = {graph.nodes[0].outputs[0]: np.asarray(x_q, dtype=np.int64)}
    for node in graph.nodes[1:]:
        if node.op == "dequantize":
            logits_q = env[node.inputs[0]]
            return GoldenResult(logits_q, kernels.argmax(logits_q),
                                kernels.dequantize(logits_q, node.attrs["frac"]))
        env[node.outputs[0]] = _STEP[node.op](graph, node, env[node.inputs[0]])
    raise ValueError("integer graph has no dequantize output node")


def _dense(graph: Graph, node, x):
    bias = graph.params[node.inputs[2]] if len(node.inputs) > 2 else None
    return kernels.dense_mac(x, graph.params[node.inputs[1]], bias)


_STEP = {
    "flatten": lambda g, n, x: x.reshape(len(x), -1),
    "dense": _dense,
    "requantize": lambda g, n, x: kernels.requantize(x, n.attrs["shift"], n.attrs["bits"], n.attrs["relu"]),
}
