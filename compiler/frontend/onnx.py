"""ONNX -> float Graph: reading the file, its shapes and constants; support.py checks each node,
convert.py builds the Graph (context.py: what the three share).

Every node is checked before any Graph is built, and all unsupported nodes are reported in one
error (name, op type, why), so a user never discovers an unsupported layer deep in a build.
The mapping is one ONNX node to one IR node (a ReduceMean with keepdims=0 becomes
global_avgpool + flatten); `canonicalize` then fuses MatMul + Add into dense, folds
BatchNormalization into the conv/dense before it and drops Identity/Dropout. Nodes whose inputs
are all constants (Transpose of a weight, Constant, shape arithmetic) are folded here with onnx's
reference evaluator.

Convolutional networks (docs/ir.md lists the ops and their attributes): 2-D Conv (depthwise, or
any group as its block-diagonal weight; no dilation; pads explicit, auto_pad, or a zero Pad
before it), MaxPool / AveragePool (2-D, ceil_mode=0, no dilation),
GlobalAveragePool (and ReduceMean over H, W, as the dynamo exporter writes it), inference-form
BatchNormalization over [N, C] or [N, C, H, W], and a Flatten or Reshape from NCHW to
[N, C*H*W]. A Reshape's target shape may be computed from `Shape` of a tensor (torch's
`x.view(x.size(0), -1)`): Shape is folded with a probe batch size, and its result may feed only
a flattening Reshape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

from compiler.frontend import qonnx
from compiler.frontend.context import Ctx, live_nodes, node_attrs
from compiler.frontend.convert import build_graph
from compiler.frontend.errors import FrontendError
from compiler.frontend.normalize import normalize
from compiler.frontend.support import check_node
from compiler.ir import Graph

MIN_OPSET = 6  # the onnx package's own pytorch-converted tests use opset 6 for these ops


def load_onnx(path: str | Path) -> Graph:
    path = Path(path)
    model = normalize(read_model(path))  # exporters' layout/shape idioms (frontend/normalize.py)
    ctx = model_context(path, model)
    fold_constants(ctx)
    problems = [p for n in live_nodes(ctx) if (p := check_node(ctx, n))]
    if problems:
        listing = "; ".join(f"node {name!r} ({op}): {why}" for name, op, why in problems)
        raise FrontendError(f"{path}: {len(problems)} unsupported node(s): {listing}")
    return build_graph(ctx)


# ---- reading ---------------------------------------------------------------------------------
def read_model(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise FrontendError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises DecodeError and friends
        raise FrontendError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    if not model.graph.node:
        raise FrontendError(f"{path}: not an ONNX model (no graph nodes)")
    _load_external_data(path, model)
    qonnx.strip(path, model)  # QONNX Quant/BipolarQuant nodes -> constants and formats (frontend/qonnx.py)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0]
        raise FrontendError(f"{path}: invalid ONNX model: {first}") from None
    return model


def _load_external_data(path: Path, model: onnx.ModelProto) -> None:
    """Accept external tensor data only from files inside the model's own folder (after
    following links), and only ranges that lie inside the file and hold exactly the tensor."""
    folder = path.parent.resolve()
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if not onnx.external_data_helper.uses_external_data(tensor):
            continue
        _read_external_tensor(path, folder, tensor)


def _read_external_tensor(path: Path, folder: Path, tensor: onnx.TensorProto) -> None:
    info = {e.key: e.value for e in tensor.external_data}
    where = f"{path}: tensor {tensor.name!r}"
    location = info.get("location", "")
    target = (folder / location).resolve()
    if not location or Path(location).is_absolute() or folder not in target.parents:
        raise FrontendError(
            f"{where} points to external data outside the model's folder ({location!r}); refusing to read it"
        )
    if not target.is_file():
        raise FrontendError(f"{where}: its external data file {location!r} is missing")
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        raise FrontendError(f"{where}: external data offset/length are not integers ({info})") from None
    size = target.stat().st_size
    expected = _tensor_bytes(tensor)
    available = size - offset if length is None else length
    if offset < 0 or available < 0 or offset + available > size:
        raise FrontendError(
            f"{where}: external data range (offset {offset}, length {available}) lies outside "
            f"{location!r} ({size} bytes)"
        )
    if expected is not None and available != expected:
        raise FrontendError(
            f"{where}: external data in {location!r} holds {available} bytes; the tensor's shape "
            f"{list(tensor.dims)} needs {expected}"
        )
    with open(target, "rb") as f:
        f.seek(offset)
        tensor.raw_data = f.read(available)
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.DEFAULT


def _tensor_bytes(tensor: onnx.TensorProto) -> int | None:
    """Bytes of the tensor's raw data, or None for types without a fixed element size."""
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except Exception:
        return None
    if tensor.data_type == onnx.TensorProto.STRING or itemsize == 0:
        return None
    return int(np.prod(tensor.dims, dtype=np.int64)) * itemsize


def model_context(path: Path, model: onnx.ModelProto) -> Ctx:
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
            shapes[vi.name] = tuple(
                d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim
            )
    consts = {}
    for t in model.graph.initializer:
        try:
            consts[t.name] = numpy_helper.to_array(t)
        except Exception as e:
            raise FrontendError(f"{path}: initializer {t.name!r} is unreadable ({type(e).__name__})") from None
        if why := _bad_values(consts[t.name]):
            raise FrontendError(f"{path}: initializer {t.name!r} {why}")
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"  # unnamed nodes (hand-written models) get a stable name
    ctx = Ctx(path, model, consts, shapes, opset, {o.name for o in model.graph.output})
    real_inputs = [i.name for i in model.graph.input if i.name not in consts]
    input_shape = shapes.get(real_inputs[0]) if len(real_inputs) == 1 else None
    if input_shape and input_shape[0]:
        ctx.batch = int(input_shape[0])
    return ctx


def fold_constants(ctx: Ctx) -> None:
    for n in ctx.model.graph.node:
        if n.op_type == "Shape" and n.input[0] not in ctx.consts:
            _fold_shape(ctx, n)
        elif n.op_type == "Constant" or (n.input and all(i in ctx.consts for i in n.input if i)):
            try:
                outs = ReferenceEvaluator(_single_node_model(ctx, n)).run(
                    None, {i: ctx.consts[i] for i in n.input if i}
                )
            except Exception as e:
                raise FrontendError(f"{ctx.path}: node {n.name!r} ({n.op_type}): cannot fold constant ({e})") from None
            ctx.consts.update(zip(n.output, (np.asarray(o) for o in outs)))
            for o in n.output:
                if o in ctx.consts and (why := _bad_values(ctx.consts[o])):
                    what = "value" if n.op_type == "Constant" else f"folded output {o!r}"
                    raise FrontendError(f"{ctx.path}: node {n.name!r} ({n.op_type}): its {what} {why}")
            if any(i in ctx.batch_dependent for i in n.input):
                ctx.batch_dependent.update(n.output)
    if any(n.op_type == "Pad" for n in live_nodes(ctx)):
        _infer_after_folding(ctx)


def _infer_after_folding(ctx: Ctx) -> None:
    """Shapes that only the folded constants determine (the TorchScript exporter computes a
    F.pad's pads from Shape-free constant arithmetic, so everything after the Pad is unknown
    before folding): shape inference again over the live nodes with the folded values as
    initializers (not the batch-dependent ones); only shapes unknown so far are filled in."""
    live = live_nodes(ctx)
    m = onnx.ModelProto()
    m.CopyFrom(ctx.model)
    del m.graph.node[:]
    m.graph.node.extend(live)
    del m.graph.value_info[:]
    have = {t.name for t in m.graph.initializer}
    for name in {i for n in live for i in n.input if i in ctx.consts} - have - ctx.batch_dependent:
        m.graph.initializer.append(numpy_helper.from_array(np.asarray(ctx.consts[name]), name))
    try:
        inferred = shape_inference.infer_shapes(m, strict_mode=False)
    except Exception:
        return  # best effort: what stays unknown is reported by the checks that need it
    for vi in inferred.graph.value_info:
        known = ctx.shapes.get(vi.name)
        if (known is None or None in known[1:]) and vi.type.tensor_type.HasField("shape"):
            dims = vi.type.tensor_type.shape.dim
            ctx.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)


def _bad_values(arr: np.ndarray) -> str | None:
    """Why a constant's numbers cannot become float32 weights (NaN, Inf, beyond float32), or None."""
    if arr.dtype.kind not in "fc":
        return None
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(arr)):
            return "contains NaN or Inf values"
        if arr.size and float(np.max(np.abs(arr))) > float(np.finfo(np.float32).max):
            return f"holds values beyond float32's range (up to {float(np.max(np.abs(arr))):.3g})"
    return None


def _fold_shape(ctx: Ctx, n: onnx.NodeProto) -> None:
    """Shape of a computed tensor whose shape is static except the batch dimension: folded with
    ctx.batch in place of the batch size and marked batch-dependent (only a flattening Reshape
    may consume what is computed from it; see why_unsupported)."""
    shape = ctx.shapes.get(n.input[0])
    if shape is None or not shape or any(d is None for d in shape[1:]):
        return  # left live: reported as an unsupported Shape node
    a = node_attrs(n)
    dims = np.array([ctx.batch if shape[0] is None else shape[0], *shape[1:]], np.int64)
    ctx.consts[n.output[0]] = dims[a.get("start", 0) : a.get("end", len(dims))]
    ctx.batch_dependent.add(n.output[0])


def _single_node_model(ctx: Ctx, n: onnx.NodeProto) -> onnx.ModelProto:
    h = onnx.helper
    inputs = [
        h.make_tensor_value_info(i, onnx.helper.np_dtype_to_tensor_dtype(ctx.consts[i].dtype), ctx.consts[i].shape)
        for i in n.input
        if i
    ]
    outputs = [h.make_empty_tensor_value_info(o) for o in n.output]
    graph = h.make_graph([n], "fold", inputs, outputs)
    return h.make_model(graph, opset_imports=list(ctx.model.opset_import))
