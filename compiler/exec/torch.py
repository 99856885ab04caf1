"""Float executor: a trainable torch.nn.Module built from a float Graph.

Used for accuracy checks, ADMM / circulant retraining and shadow models. Parameters are
nn.Parameters keyed by their Graph param names, so training results write straight back.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from compiler.ir import Graph


class GraphModule(torch.nn.Module):
    def __init__(self, graph: Graph):
        super().__init__()
        if graph.is_integer:
            raise ValueError("the torch executor runs float graphs; use exec.golden for integer graphs")
        self.graph = graph
        self.weights = torch.nn.ParameterDict()
        self._keys = {}
        for i, name in enumerate(graph.params):
            key = f"p{i}"  # ParameterDict keys cannot contain '.', ONNX names often do
            self._keys[name] = key
            self.weights[key] = torch.nn.Parameter(torch.from_numpy(np.array(graph.params[name], dtype=np.float32)))

    def param(self, name: str) -> torch.nn.Parameter:
        return self.weights[self._keys[name]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tensors(x)[self.graph.outputs[0].name]

    def tensors(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every tensor the graph computes on input x, by name."""
        env = {self.graph.inputs[0].name: x}
        for node in self.graph.nodes:
            args = [env[i] if i in env else self.param(i) for i in node.inputs]
            env[node.outputs[0]] = _OPS[node.op](args, node)
        return env

    def export_params(self) -> dict[str, np.ndarray]:
        """Current parameter values, keyed by Graph param names."""
        return {name: self.param(name).detach().cpu().numpy().copy() for name in self._keys}


def _dense(args, node):
    x, w = args[0], args[1]
    return F.linear(x, w, args[2] if len(args) > 2 else None)


_OPS = {
    "dense": _dense,
    "bias_add": lambda a, n: a[0] + a[1],
    "relu": lambda a, n: F.relu(a[0]),
    "flatten": lambda a, n: a[0].flatten(1),
    "identity": lambda a, n: a[0],
    "softmax": lambda a, n: F.softmax(a[0], dim=-1),
    "log_softmax": lambda a, n: F.log_softmax(a[0], dim=-1),
}


def logits_module(graph: Graph) -> GraphModule:
    """A module that returns pre-softmax logits: a trailing softmax is dropped (argmax-neutral)."""
    g = graph.copy()
    while g.nodes and g.nodes[-1].op in ("softmax", "log_softmax"):
        last = g.nodes.pop()
        g.outputs[0].name = last.inputs[0]
    return GraphModule(g)


def predict_logits(graph: Graph, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    module = logits_module(graph).eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs.append(module(torch.from_numpy(np.array(x[i:i + batch], dtype=np.float32))).numpy())
    return np.concatenate(outs) if outs else np.zeros((0,) + graph.outputs[0].shape, np.float32)


def intermediates(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of the float graph on input x (for calibration)."""
    module = GraphModule(graph).eval()
    with torch.no_grad():
        env = module.tensors(torch.from_numpy(np.array(x, dtype=np.float32)))
    return {k: v.numpy() for k, v in env.items()}


def run(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The graph's own output (softmax included if the model has one)."""
    module = GraphModule(graph).eval()
    with torch.no_grad():
        return module(torch.from_numpy(np.array(x, dtype=np.float32))).numpy()
