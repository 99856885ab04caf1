"""Float executor: a trainable torch.nn.Module built from a float Graph.

Used for accuracy checks, ADMM / circulant retraining and shadow models. Parameters are
nn.Parameters keyed by their Graph param names, so training results write straight back.

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
import torch.nn.functional as F

from compiler.ir import SOFTMAX_OPS, Graph

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
            env[node.outputs[0]] = _OPS[node.op](args, node)
        return env

    def export_params(self) -> dict[str, np.ndarray]:
        """Current parameter values, keyed by Graph param names."""
        return {name: self.param(name).detach().cpu().numpy().copy() for name in self._keys}


def _dense(args, node):
    x, w = args[0], args[1]
    return F.linear(x, w, args[2] if len(args) > 2 else None)


def _per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A [C] vector shaped to broadcast along axis 1 of x ([N, C] or [N, C, H, W])."""
    return v.reshape(1, -1, *([1] * (x.dim() - 2)))


def _symmetric(node) -> bool:
    """pads [top, left, bottom, right] that torch's own padding argument expresses (at most half
    the kernel, as torch's pooling requires)."""
    top, left, bottom, right = node.attrs["pads"]
    kh, kw = node.attrs["kernel"]
    return top == bottom and left == right and top <= kh // 2 and left <= kw // 2


def _pad(x: torch.Tensor, node, value: float = 0.0) -> torch.Tensor:
    top, left, bottom, right = node.attrs["pads"]
    return F.pad(x, (left, right, top, bottom), value=value)


def _conv2d(args, node):
    x, w, b = args[0], args[1], (args[2] if len(args) > 2 else None)
    top, left, bottom, right = node.attrs["pads"]
    if top == bottom and left == right:
        return F.conv2d(x, w, b, stride=tuple(node.attrs["stride"]), padding=(top, left))
    return F.conv2d(_pad(x, node), w, b, stride=tuple(node.attrs["stride"]))


def _maxpool2d(args, node):
    k, s = tuple(node.attrs["kernel"]), tuple(node.attrs["stride"])
    if _symmetric(node):  # torch pads max pooling with -inf, as ONNX does
        return F.max_pool2d(args[0], k, s, padding=tuple(node.attrs["pads"][:2]))
    return F.max_pool2d(_pad(args[0], node, float("-inf")), k, s)


def _avgpool2d(args, node):
    k, s = tuple(node.attrs["kernel"]), tuple(node.attrs["stride"])
    include = bool(node.attrs.get("count_include_pad", False))
    x = args[0]
    if _symmetric(node):
        return F.avg_pool2d(x, k, s, padding=tuple(node.attrs["pads"][:2]), count_include_pad=include)
    total = F.avg_pool2d(_pad(x, node), k, s)  # sum / (kH * kW), padding counted
    if include:
        return total
    inside = F.avg_pool2d(_pad(torch.ones_like(x[:1, :1]), node), k, s)  # real pixels / (kH * kW)
    return total / inside


_OPS = {
    "dense": _dense,
    "bias_add": lambda a, n: a[0] + a[1],  # ONNX broadcasting: [F] per feature, [C, 1, 1] per channel
    "conv2d": _conv2d,
    "maxpool2d": _maxpool2d,
    "avgpool2d": _avgpool2d,
    "global_avgpool": lambda a, n: a[0].mean(dim=(2, 3), keepdim=True),
    "batchnorm": lambda a, n: a[0] * _per_channel(a[1], a[0]) + _per_channel(a[2], a[0]),
    "relu": lambda a, n: F.relu(a[0]),
    "flatten": lambda a, n: a[0].flatten(1),
    "identity": lambda a, n: a[0],
    "softmax": lambda a, n: F.softmax(a[0], dim=-1),
    "log_softmax": lambda a, n: F.log_softmax(a[0], dim=-1),
    # activations, as ONNX defines them (docs/ir.md)
    "sigmoid": lambda a, n: torch.sigmoid(a[0]),
    "tanh": lambda a, n: torch.tanh(a[0]),
    "leaky_relu": lambda a, n: F.leaky_relu(a[0], float(n.attrs["alpha"])),
    "prelu": lambda a, n: torch.where(a[0] < 0, a[0] * (_per_channel(a[1], a[0]) if a[1].numel() > 1 else a[1]), a[0]),
    "elu": lambda a, n: F.elu(a[0], float(n.attrs["alpha"])),
    "selu": lambda a, n: (
        float(n.attrs["gamma"])
        * torch.where(a[0] > 0, a[0], float(n.attrs["alpha"]) * torch.expm1(torch.clamp(a[0], max=0.0)))
    ),
    "hard_sigmoid": lambda a, n: torch.clamp(float(n.attrs["alpha"]) * a[0] + float(n.attrs["beta"]), 0.0, 1.0),
    "hard_swish": lambda a, n: a[0] * torch.clamp(a[0] / 6.0 + 0.5, 0.0, 1.0),
    "clip": lambda a, n: torch.clamp(a[0], n.attrs.get("min"), n.attrs.get("max")),
}


def logits_module(graph: Graph) -> GraphModule:
    """A module that returns pre-softmax logits: a trailing softmax is dropped (argmax-neutral)."""
    g = graph.copy()
    while g.nodes and g.nodes[-1].op in SOFTMAX_OPS:
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
