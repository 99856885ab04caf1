"""ONNX -> float Graph.

Every node is checked before any Graph is built, and all unsupported nodes are reported in one
error (name, op type, why), so a user never discovers an unsupported layer deep in a build.
The mapping is one ONNX node to one IR node; `canonicalize` then fuses MatMul + Add into dense
and drops Identity/Dropout. Nodes whose inputs are all constants (Transpose of a weight, Constant,
shape arithmetic) are folded here with onnx's reference evaluator.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

from compiler.ir import Graph, Node, TensorSpec

MIN_OPSET = 6  # the onnx package's own pytorch-converted tests use opset 6 for these ops


class FrontendError(ValueError):
    """The model cannot be imported; the message names the file and every offending node."""


@dataclass
class _Ctx:
    path: Path
    model: onnx.ModelProto
    consts: dict[str, np.ndarray]
    shapes: dict[str, tuple]
    opset: int
    graph_outputs: set[str]


def load_onnx(path: str | Path) -> Graph:
    path = Path(path)
    model = _read_model(path)
    ctx = _context(path, model)
    _fold_constants(ctx)
    problems = [p for n in _live_nodes(ctx) if (p := _check_node(ctx, n))]
    if problems:
        listing = "\n".join(f"  - node {name!r} ({op}): {why}" for name, op, why in problems)
        raise FrontendError(f"{path}: {len(problems)} unsupported node(s):\n{listing}")
    return _build_graph(ctx)


# ---- reading ---------------------------------------------------------------------------------
def _read_model(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise FrontendError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises DecodeError and friends
        raise FrontendError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    if not model.graph.node:
        raise FrontendError(f"{path}: not an ONNX model (no graph nodes)")
    _load_external_data(path, model)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0]
        raise FrontendError(f"{path}: invalid ONNX model: {first}") from None
    return model


def _load_external_data(path: Path, model: onnx.ModelProto) -> None:
    """Accept external tensor data only from files inside the model's own folder."""
    folder = path.parent.resolve()
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if not onnx.external_data_helper.uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        target = (folder / info.get("location", "")).resolve()
        if folder not in target.parents:
            raise FrontendError(
                f"{path}: tensor {tensor.name!r} points to external data outside the model's folder "
                f"({info.get('location')!r}); refusing to read it")
        if not target.is_file():
            raise FrontendError(f"{path}: external data file {target} for tensor {tensor.name!r} is missing")
    onnx.external_data_helper.load_external_data_for_model(model, str(folder))


def _context(path: Path, model: onnx.ModelProto) -> _Ctx:
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise FrontendError(f"{path}: opset {opset} is too old (need >= {MIN_OPSET})")
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:
        raise FrontendError(f"{path}: shape inference failed: {str(e).splitlines()[0]}") from None
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                    for d in vi.type.tensor_type.shape.dim)
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for name, arr in consts.items():
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise FrontendError(f"{path}: initializer {name!r} contains NaN or Inf values")
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"  # unnamed nodes (hand-written models) get a stable name
    return _Ctx(path, model, consts, shapes, opset, {o.name for o in model.graph.output})


def _fold_constants(ctx: _Ctx) -> None:
    for n in ctx.model.graph.node:
        if n.op_type == "Constant" or (n.input and all(i in ctx.consts for i in n.input if i)):
            try:
                outs = ReferenceEvaluator(_single_node_model(ctx, n)).run(
                    None, {i: ctx.consts[i] for i in n.input if i})
            except Exception as e:
                raise FrontendError(f"{ctx.path}: node {n.name!r} ({n.op_type}): cannot fold constant ({e})") from None
            ctx.consts.update(zip(n.output, (np.asarray(o) for o in outs)))


def _single_node_model(ctx: _Ctx, n: onnx.NodeProto) -> onnx.ModelProto:
    h = onnx.helper
    inputs = [h.make_tensor_value_info(i, onnx.helper.np_dtype_to_tensor_dtype(ctx.consts[i].dtype),
                                       ctx.consts[i].shape) for i in n.input if i]
    outputs = [h.make_empty_tensor_value_info(o) for o in n.output]
    graph = h.make_graph([n], "fold", inputs, outputs)
    return h.make_model(graph, opset_imports=list(ctx.model.opset_import))


def _live_nodes(ctx: _Ctx) -> list[onnx.NodeProto]:
    return [n for n in ctx.model.graph.node if not all(o in ctx.consts for o in n.output)]


# ---- checking --------------------------------------------------------------------------------
def _attrs(n: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}


def _rank(ctx: _Ctx, tensor: str) -> int | None:
    shape = ctx.shapes.get(tensor)
    return None if shape is None else len(shape)


def _check_node(ctx: _Ctx, n: onnx.NodeProto):
    """Return (name, op, why) if the node is unsupported, else None."""
    why = _why_unsupported(ctx, n)
    return (n.name, n.op_type, why) if why else None


def _why_unsupported(ctx: _Ctx, n: onnx.NodeProto) -> str | None:
    a = _attrs(n)
    op = n.op_type
    if n.domain not in ("", "ai.onnx"):
        return f"custom domain {n.domain!r} is not supported"
    if op == "Gemm":
        if a.get("transA", 0):
            return "transA=1 is not supported"
        if n.input[1] not in ctx.consts:
            return "weight B must be a constant initializer"
        if len(n.input) > 2 and n.input[2] and n.input[2] not in ctx.consts:
            return "bias C must be a constant initializer"
        return None
    if op == "MatMul":
        if n.input[1] not in ctx.consts or ctx.consts[n.input[1]].ndim != 2:
            return "only x @ W with a constant 2-D weight W is supported"
        if _rank(ctx, n.input[0]) != 2:
            return "input must be 2-D [batch, features] (flatten first)"
        return None
    if op == "Add":
        const = [i for i in n.input if i in ctx.consts]
        if len(const) != 1 or ctx.consts[const[0]].squeeze().ndim > 1:
            return "only adding a constant bias vector is supported"
        return None
    if op in ("Relu", "Identity", "Dropout"):
        return None
    if op == "Flatten":
        return None if a.get("axis", 1) == 1 else f"axis={a.get('axis')} is not supported (only 1)"
    if op == "Reshape":
        return _why_reshape_unsupported(ctx, n)
    if op in ("Softmax", "LogSoftmax"):
        rank = _rank(ctx, n.input[0])
        axis = a.get("axis", -1 if ctx.opset >= 13 else 1)
        if rank is None or axis not in (-1, rank - 1):
            return f"only a softmax over the last axis is supported (axis={axis}, rank={rank})"
        if n.output[0] not in ctx.graph_outputs:
            return "only a trailing (graph-output) softmax is supported"
        return None
    return "op type is not supported by mpc (supported: Gemm, MatMul, Add, Relu, Flatten, " \
           "Reshape-as-flatten, Identity, Dropout, trailing Softmax/LogSoftmax)"


def _why_reshape_unsupported(ctx: _Ctx, n: onnx.NodeProto) -> str | None:
    if n.input[1] not in ctx.consts:
        return "target shape must be constant"
    shape = ctx.shapes.get(n.input[0])
    if shape is None or any(d is None for d in shape[1:]):
        return "input shape must be known (except the batch dimension)"
    features = int(np.prod(shape[1:]))
    probe = np.zeros((7,) + tuple(shape[1:]))  # 7: any batch size that cannot be confused with a feature count
    try:
        target = [int(d) for d in ctx.consts[n.input[1]]]
        target = [probe.shape[i] if d == 0 else d for i, d in enumerate(target)]
        out = probe.reshape(target).shape
    except ValueError:
        return "target shape does not fit the input"
    return None if out == (7, features) else "only a reshape that flattens to [batch, features] is supported"


# ---- building --------------------------------------------------------------------------------
def _build_graph(ctx: _Ctx) -> Graph:
    g = ctx.model.graph
    params: dict[str, np.ndarray] = {}
    nodes: list[Node] = []
    for n in _live_nodes(ctx):
        nodes.append(_convert(ctx, n, params))
    real_inputs = [i for i in g.input if i.name not in ctx.consts]
    if len(real_inputs) != 1 or len(g.output) != 1:
        raise FrontendError(f"{ctx.path}: mpc compiles models with exactly one input and one output "
                            f"(found {len(real_inputs)} inputs, {len(g.output)} outputs)")
    inp, out = real_inputs[0], g.output[0]
    in_shape = ctx.shapes.get(inp.name)
    if in_shape is None or any(d is None or d <= 0 for d in in_shape[1:]):
        raise FrontendError(f"{ctx.path}: input {inp.name!r} needs a static shape except the batch dimension")
    out_shape = ctx.shapes.get(out.name) or (None,)
    graph = Graph(
        inputs=[TensorSpec(inp.name, tuple(in_shape[1:]))],
        outputs=[TensorSpec(out.name, tuple(d or 0 for d in out_shape[1:]))],
        nodes=nodes, params=params,
        meta={"source": str(ctx.path), "opset": ctx.opset},
    )
    graph.validate()
    return graph


def _convert(ctx: _Ctx, n: onnx.NodeProto, params: dict) -> Node:
    a = _attrs(n)
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
    if op == "Add":
        const = next(i for i in n.input if i in ctx.consts)
        x = next(i for i in n.input if i != const)
        params[f"{n.name}.bias"] = ctx.consts[const].astype(np.float32).reshape(-1)
        return Node("bias_add", n.name, [x, f"{n.name}.bias"], [n.output[0]])
    simple = {"Relu": "relu", "Flatten": "flatten", "Reshape": "flatten", "Identity": "identity",
              "Dropout": "identity", "Softmax": "softmax", "LogSoftmax": "log_softmax"}
    return Node(simple[op], n.name, [n.input[0]], [n.output[0]])
