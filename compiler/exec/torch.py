"""Float executor: a trainable torch.nn.Module built from a float Graph.

Used for accuracy checks, ADMM / circulant retraining and shadow models. Parameters are
nn.Parameters keyed by their Graph param names, so training results write straight back.
Each node computes its op's `forward` (compiler/ops/): this module only walks the graph.

Determinism: torch's CPU reductions split their work by the intra-op thread count (a bias's
gradient sums over the batch in per-thread chunks), so a float result can depend on
`torch.get_num_threads()` in its last bits, and a build on the thread count of the machine.
Everything whose result becomes part of a build (training, calibration) runs under
`fixed_threads()`: one thread, whatever the caller set, restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from compiler import ops
from compiler.ir import Graph

BUILD_THREADS = 1  # the one count every machine has: results do not depend on the host


@contextmanager
def fixed_threads(n: int = BUILD_THREADS) -> Iterator[None]:
    """Run the block with torch's intra-op thread count set to `n`, then restore the caller's
    (the setting is process-wide). mpc's models are small: minibatch training of the digits MLP
    with ADMM is no slower on one thread than on the default count (tests/test_determinism.py)."""
    previous = torch.get_num_threads()
    if previous == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
            env[node.outputs[0]] = ops.get(node.op).forward(node, args)
        return env

    def export_params(self) -> dict[str, np.ndarray]:
        """Current parameter values, keyed by Graph param names."""
        return {name: self.param(name).detach().cpu().numpy().copy() for name in self._keys}


def logits_module(graph: Graph) -> GraphModule:
    """A module that returns pre-softmax logits: a trailing softmax is dropped (argmax-neutral)."""
    g = graph.copy()
    while g.nodes and ops.get(g.nodes[-1].op).dropped_at_output:
        last = g.nodes.pop()
        g.outputs[0].name = last.inputs[0]
    return GraphModule(g)


def predict_logits(graph: Graph, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    module = logits_module(graph).eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs.append(module(torch.from_numpy(np.array(x[i : i + batch], dtype=np.float32))).numpy())
    return np.concatenate(outs) if outs else np.zeros((0,) + graph.outputs[0].shape, np.float32)


def intermediates(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of the float graph on input x (for calibration: under fixed_threads, since
    the formats, and so the hardware, are chosen from these values)."""
    module = GraphModule(graph).eval()
    with torch.no_grad(), fixed_threads():
        env = module.tensors(torch.from_numpy(np.array(x, dtype=np.float32)))
    return {k: v.numpy() for k, v in env.items()}


def run(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The graph's own output (softmax included if the model has one)."""
    module = GraphModule(graph).eval()
    with torch.no_grad():
        return module(torch.from_numpy(np.array(x, dtype=np.float32))).numpy()
