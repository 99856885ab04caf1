"""Executors of a Graph: `torch` (float, trainable) and `golden` (integer, calls kernels/)."""

import numpy as np

from compiler.ir import BINARY_THRESHOLDS, Graph, binary_output


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
    return classes_from_outputs(graph, predict_logits(graph, x))


def classes_from_outputs(graph: Graph, outputs: np.ndarray) -> np.ndarray:
    """A float model's decision from its outputs: the argmax, or for a binary classifier class
    1 at or above its threshold."""
    kind = binary_output(graph)
    if kind is not None:
        return (outputs[:, 0] >= BINARY_THRESHOLDS[kind]).astype(np.int64)
    return np.argmax(outputs, axis=-1)


def class_logits(graph: Graph, outputs: np.ndarray) -> np.ndarray:
    """Logits over the classes, for what needs a softmax (the audit's signals): a model's outputs
    as they are, or for a binary classifier [0, z] with z its output's logit (a probability p
    becomes log(p / (1 - p)), clipped away from 0 and 1), so softmax gives [1 - p, p]."""
    kind = binary_output(graph)
    if kind is None:
        return outputs
    z = np.asarray(outputs, np.float64)[:, 0]
    if kind == "probability":
        p = np.clip(z, 1e-12, 1 - 1e-12)
        z = np.log(p) - np.log1p(-p)
    return np.stack([np.zeros_like(z), z], axis=1)
