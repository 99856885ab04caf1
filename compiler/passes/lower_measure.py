"""What lower measures on the data once the integer graph is built (kept in its annotations and
meta for the report): the fixed-point FFT's accuracy cost per circulant layer, and the float
accuracy cost of each layer whose weights lower narrowed to fit the accumulator. These run the
executors, so they live here, above compiler/ops (where the lowering rules are). A regression
(graph.meta["task"]) records the test MSE instead of the accuracy (keys `..._mse...`)."""

from __future__ import annotations

import numpy as np

from compiler import ops
from compiler.data import is_regression, row_errors
from compiler.exec import golden
from compiler.ir import Graph
from compiler.ops.circulant import circulant_layer
from compiler.ops.flatten import flatten_order
from kernels.circulant_mac import circulant_error
from kernels.stream_order import stream_order, unstream


def measure_circulant(graph: Graph, data, calibration_samples: int) -> None:
    """The fixed-point FFT's accuracy cost, per circulant layer, in its annotations:
    `fft_error` = kernels.circulant_error (accumulator LSBs against the exact integer product) on
    the layer's integer inputs from the calibration rows of x_train and from x_test, and
    `test_accuracy_exact_product` = the integer graph's test accuracy with this layer's exact
    product in place of its FFT (the graph's own accuracy is the FFT's)."""
    approximate = [n for n in graph.nodes if ops.get(n.op).defines("golden_exact")]
    if not approximate or data is None:
        return
    names = {n.name for n in approximate}
    metric = "mse" if is_regression(graph) else "accuracy"

    def score(result: golden.GoldenResult) -> float:
        if metric == "mse":
            return float(row_errors(result.logits, data.y_test).mean())
        return float(np.mean(result.classes == data.y_test))

    splits = {"calibration": data.x_train[:calibration_samples], "test": data.x_test}
    inputs: dict[str, dict] = {}
    for split, x in splits.items():
        inputs[split] = {}
        golden.run_integer(graph, golden.quantize_input(graph, x), record=inputs[split])
    for node in approximate:
        layer = circulant_layer(graph, node)
        node.annotations["fft_error"] = {
            split: circulant_error(inputs[split][node.name], layer) | {"samples": len(splits[split])}
            for split in splits
        }
        exact = golden.run(graph, data.x_test, exact={node.name})
        node.annotations[f"test_{metric}_exact_product"] = score(exact)
    graph.meta[f"circulant_test_{metric}_exact_product"] = score(golden.run(graph, data.x_test, exact=names))


def measure_narrowed(float_graph: Graph, lowered: Graph, data) -> None:
    """The accuracy cost of each layer whose weights lower narrowed to fit MAX_ACC_BITS, in its
    `narrowed` annotation: the float model's test accuracy, and the same with only this layer's
    weights on the narrower grid. All of them also go to meta["narrowed_layers"] (the report)."""
    narrowed = [n for n in lowered.nodes if "narrowed" in n.annotations]
    if not narrowed:
        return
    from compiler.exec import torch as torch_exec

    metric = "mse" if is_regression(float_graph) else "accuracy"

    def accuracy(graph: Graph) -> float | None:
        if data is None or not len(data.x_test):
            return None
        if metric == "mse":
            return float(row_errors(torch_exec.predict_logits(graph, data.x_test), data.y_test).mean())
        return float(np.mean(np.argmax(torch_exec.run(graph, data.x_test), axis=1) == data.y_test))

    base = accuracy(float_graph)
    for node in narrowed:
        info = node.annotations["narrowed"]
        weight = next(n for n in float_graph.nodes if n.name == node.name).inputs[1]
        trial = float_graph.copy()
        frac = info["weight_format_to"]["frac"]
        w_q = lowered.params[node.inputs[1]]
        if flatten_order(lowered, node) == "hwc":  # stored in stream order: back to the graph's
            w_q = unstream(w_q, stream_order(w_q.shape, node.annotations["circulant"]["input_chw"]))
        trial.params[weight] = (w_q * 2.0**-frac).astype(np.float32)
        info[f"float_test_{metric}"] = base
        info[f"float_test_{metric}_narrowed"] = accuracy(trial)
    lowered.meta["narrowed_layers"] = {n.name: n.annotations["narrowed"] for n in narrowed}
