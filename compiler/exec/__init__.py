"""Executors of a Graph: `torch` (float, trainable) and `golden` (integer, calls kernels/)."""

import numpy as np

from compiler.ir import Graph


def predict_logits(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Float logits of any graph: the torch executor for float graphs, golden for integer ones."""
    if graph.is_integer:
        from compiler.exec import golden

        return golden.run(graph, x).logits
    from compiler.exec import torch as torch_exec

    return torch_exec.predict_logits(graph, x)


def predict_classes(graph: Graph, x: np.ndarray) -> np.ndarray:
    if graph.is_integer:
        from compiler.exec import golden

        return golden.run(graph, x).classes
    return np.argmax(predict_logits(graph, x), axis=-1)
