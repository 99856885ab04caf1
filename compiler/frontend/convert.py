"""The float Graph of a checked model: one ONNX node to one IR node (a ReduceMean with keepdims=0
becomes global_avgpool + flatten), the weights as params, the model's input and output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx

from compiler.frontend import qonnx
from compiler.frontend.context import ACTIVATIONS, Ctx, live_nodes, node_attrs, tensor_rank
from compiler.frontend.errors import FrontendError
from compiler.frontend.normalize import LAYOUT_KEY
from compiler.frontend.support import window_attrs
from compiler.ir import Graph, Node, TensorSpec


def build_graph(ctx: Ctx) -> Graph:
    g = ctx.model.graph
    params: dict[str, np.ndarray] = {}
    nodes: list[Node] = []
    with np.errstate(all="ignore"):  # overflow to Inf / NaN is checked below, by name
        for n in live_nodes(ctx):
            converted = convert_node(ctx, n, params)
            nodes.extend(converted if isinstance(converted, list) else [converted])
    real_inputs = [i for i in g.input if i.name not in ctx.consts]
    if len(real_inputs) != 1 or len(g.output) != 1:
        raise FrontendError(
            f"{ctx.path}: mpc compiles models with exactly one input and one output "
            f"(found {len(real_inputs)} inputs, {len(g.output)} outputs)"
        )
    inp, out = real_inputs[0], g.output[0]
    in_shape = ctx.shapes.get(inp.name)
    if in_shape is None or any(d is None or d <= 0 for d in in_shape[1:]):
        raise FrontendError(f"{ctx.path}: input {inp.name!r} needs a static shape except the batch dimension")
    out_shape = ctx.shapes.get(out.name) or (None,)
    for name, value in params.items():
        if not np.all(np.isfinite(value)):
            node, _, what = name.rpartition(".")
            raise FrontendError(
                f"{ctx.path}: node {node!r}: its {what} overflows float32 or is undefined after conversion "
                "(NaN or Inf: values too large, a huge alpha/beta, or a negative BatchNormalization variance)"
            )
    shape = tuple(in_shape[1:])
    if len(shape) == 2 and _one_d(ctx):  # [C, L] of 1-D convolutions and pools: [C, 1, L] in the IR (H = 1)
        shape = (shape[0], 1, shape[1])
    graph = Graph(
        inputs=[TensorSpec(inp.name, shape)],
        outputs=[TensorSpec(out.name, tuple(d or 0 for d in out_shape[1:]))],
        nodes=nodes,
        params=params,
        # the file's name and content hash, not the path as given: a build is the same from any folder
        meta={"source": ctx.path.name, "source_sha256": _sha256(ctx.path), "opset": ctx.opset},
    )
    if shape != tuple(in_shape[1:]):  # the backends' model.int.onnx still takes the model's own shape
        graph.meta["source_input_shape"] = [int(d) for d in in_shape[1:]]
    if layout := {p.key: p.value for p in ctx.model.metadata_props}.get(LAYOUT_KEY):
        graph.meta["input_layout"] = layout  # the data's layout; the IR input is NCHW (normalize.py)
    qonnx.annotate(graph, ctx.model)  # QONNX weight formats on the layers, the rest in meta (frontend/qonnx.py)
    graph.validate()
    return graph


def _one_d(ctx: Ctx) -> bool:
    """Whether the model has 1-D convolutions or pools (input [N, C, L]): its rank-3 tensors are
    [N, C, 1, L] in the IR."""
    windows = ("Conv", "MaxPool", "AveragePool")
    return any(n.op_type in windows and tensor_rank(ctx, n.input[0]) == 3 for n in live_nodes(ctx))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert_node(ctx: Ctx, n: onnx.NodeProto, params: dict) -> Node | list[Node]:
    a = node_attrs(n)
    op = n.op_type
    if op == "Gemm":
        w = ctx.consts[n.input[1]].astype(np.float32) * np.float32(a.get("alpha", 1.0))
        w = w if a.get("transB", 0) else w.T  # IR weights are [out, in]
        params[f"{n.name}.weight"] = np.ascontiguousarray(w)
        inputs = [n.input[0], f"{n.name}.weight"]
        if len(n.input) > 2 and n.input[2]:
            b = ctx.consts[n.input[2]].astype(np.float32) * np.float32(a.get("beta", 1.0))
            params[f"{n.name}.bias"] = np.broadcast_to(b.reshape(-1), (w.shape[0],)).copy()
            inputs.append(f"{n.name}.bias")
        return Node("dense", n.name, inputs, [n.output[0]])
    if op == "MatMul":  # x @ B with B [in, out]; canonicalize turns it into dense
        params[f"{n.name}.weight"] = np.ascontiguousarray(ctx.consts[n.input[1]].astype(np.float32).T)
        return Node("dense", n.name, [n.input[0], f"{n.name}.weight"], [n.output[0]])
    if op == "Add" and not any(i in ctx.consts for i in n.input):  # a join of two branches (residual)
        return Node("add", n.name, [n.input[0], n.input[1]], [n.output[0]])
    if op == "Concat":
        return _concat(n)
    if op == "Add":
        const = next(i for i in n.input if i in ctx.consts)
        x = next(i for i in n.input if i != const)
        b = ctx.consts[const].astype(np.float32)
        if (tensor_rank(ctx, x) or 2) <= 2 or b.ndim <= 1:
            b = b.reshape(-1)
        while b.ndim > 1 and b.shape[0] == 1:  # ONNX broadcasting: [1, C, 1, 1] is [C, 1, 1]
            b = b[0]
        if tensor_rank(ctx, x) == 3 and b.ndim >= 2 and _one_d(ctx):  # a 1-D [C, L] tensor is [C, 1, L] in the IR
            b = b[..., None, :]
        params[f"{n.name}.bias"] = np.ascontiguousarray(b)
        return Node("bias_add", n.name, [x, f"{n.name}.bias"], [n.output[0]])
    if op == "Conv":
        w = ctx.consts[n.input[1]].astype(np.float32)
        if w.ndim == 3:  # 1-D: [C_out, C_in, k] -> [C_out, C_in, 1, k]
            w = w[:, :, None, :]
        params[f"{n.name}.weight"] = np.ascontiguousarray(w)
        inputs = [n.input[0], f"{n.name}.weight"]
        if len(n.input) > 2 and n.input[2]:
            params[f"{n.name}.bias"] = ctx.consts[n.input[2]].astype(np.float32).reshape(-1)
            inputs.append(f"{n.name}.bias")
        return Node("conv2d", n.name, inputs, [n.output[0]], attrs=window_attrs(ctx, n, a)[0])
    if op == "MaxPool":
        return Node("maxpool2d", n.name, [n.input[0]], [n.output[0]], attrs=window_attrs(ctx, n, a)[0])
    if op == "AveragePool":  # count_include_pad: absent before opset 7, where the default is 0
        attrs = {**window_attrs(ctx, n, a)[0], "count_include_pad": bool(a.get("count_include_pad", 0))}
        return Node("avgpool2d", n.name, [n.input[0]], [n.output[0]], attrs=attrs)
    if op == "GlobalAveragePool" or (op == "ReduceMean" and a.get("keepdims", 1)):
        return Node("global_avgpool", n.name, [n.input[0]], [n.output[0]])
    if op == "ReduceMean":  # keepdims=0: [N, C, H, W] -> [N, C]
        pooled = f"{n.name}.pooled"
        return [
            Node("global_avgpool", n.name, [n.input[0]], [pooled]),
            Node("flatten", f"{n.name}.flatten", [pooled], [n.output[0]]),
        ]
    if op == "BatchNormalization":  # inference form as a per-channel affine map (docs/ir.md)
        gamma, beta, mean, var = (ctx.consts[i].astype(np.float64).reshape(-1) for i in n.input[1:5])
        scale = gamma / np.sqrt(var + float(a.get("epsilon", 1e-5)))
        params[f"{n.name}.scale"] = scale.astype(np.float32)
        params[f"{n.name}.shift"] = (beta - mean * scale).astype(np.float32)
        return Node("batchnorm", n.name, [n.input[0], f"{n.name}.scale", f"{n.name}.shift"], [n.output[0]])
    if op in ACTIVATIONS:
        return _activation(ctx, n, a, params)
    simple = {
        "Relu": "relu",
        "Flatten": "flatten",
        "Reshape": "flatten",
        "Identity": "identity",
        "Dropout": "identity",
        "Softmax": "softmax",
        "LogSoftmax": "log_softmax",
    }
    return Node(simple[op], n.name, [n.input[0]], [n.output[0]])


def _concat(n: onnx.NodeProto) -> Node | list[Node]:
    """Along the channel axis (support.py checked it); N > 2 inputs become a chain of two-input
    concats (the IR's joins take two streams), the last one named as the node."""
    inputs = [t for t in n.input if t]
    nodes, cur = [], inputs[0]
    for k, t in enumerate(inputs[1:], start=1):
        last = k == len(inputs) - 1
        out, name = (n.output[0], n.name) if last else (f"{n.name}.part{k}", f"{n.name}.part{k}")
        nodes.append(Node("concat", name, [cur, t], [out], attrs={"axis": 1}))
        cur = out
    return nodes[0] if len(nodes) == 1 else nodes


def _activation(ctx: Ctx, n: onnx.NodeProto, a: dict, params: dict) -> Node:
    """An elementwise activation (docs/ir.md): ONNX's attributes with their defaults; PRelu's
    slope as a flat param ([1] or one per channel); Clip's bounds from attributes (opset < 11)
    or constant inputs, absent ones omitted (neither: an identity)."""
    ir_op, defaults = ACTIVATIONS[n.op_type]
    attrs = {k: float(a.get(k, v)) for k, v in defaults.items()}
    inputs = [n.input[0]]
    if n.op_type == "PRelu":
        params[f"{n.name}.slope"] = ctx.consts[n.input[1]].astype(np.float32).reshape(-1)
        inputs.append(f"{n.name}.slope")
    if n.op_type == "Clip":
        for key, i in (("min", 1), ("max", 2)):
            if key in a:
                attrs[key] = float(a[key])
            elif len(n.input) > i and n.input[i]:
                attrs[key] = float(ctx.consts[n.input[i]].reshape(-1)[0])
        if not attrs:
            return Node("identity", n.name, inputs, [n.output[0]])
    return Node(ir_op, n.name, inputs, [n.output[0]], attrs=attrs)
