"""ONNX -> float Graph.

Every node is checked before any Graph is built, and all unsupported nodes are reported in one
error (name, op type, why), so a user never discovers an unsupported layer deep in a build.
The mapping is one ONNX node to one IR node (a ReduceMean with keepdims=0 becomes
global_avgpool + flatten); `canonicalize` then fuses MatMul + Add into dense, folds
BatchNormalization into the conv/dense before it and drops Identity/Dropout. Nodes whose inputs
are all constants (Transpose of a weight, Constant, shape arithmetic) are folded here with onnx's
reference evaluator.

Convolutional networks (docs/ir.md lists the ops and their attributes): 2-D Conv (groups=1, no
dilation; pads explicit or auto_pad), MaxPool / AveragePool (2-D, ceil_mode=0, no dilation),
GlobalAveragePool (and ReduceMean over H, W, as the dynamo exporter writes it), inference-form
BatchNormalization over [N, C] or [N, C, H, W], and a Flatten or Reshape from NCHW to
[N, C*H*W]. A Reshape's target shape may be computed from `Shape` of a tensor (torch's
`x.view(x.size(0), -1)`): Shape is folded with a probe batch size, and its result may feed only
a flattening Reshape.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

from compiler.frontend import qonnx
from compiler.frontend.normalize import LAYOUT_KEY, normalize
from compiler.ir import Graph, Node, TensorSpec

MIN_OPSET = 6  # the onnx package's own pytorch-converted tests use opset 6 for these ops
PROBE_BATCH = 7  # batch size standing in for a dynamic batch dimension: cannot be confused with a feature count
SUPPORTED = (
    "Gemm, MatMul, Add, Relu, Flatten, Reshape-as-flatten, Identity, Dropout, Conv, MaxPool, "
    "AveragePool, GlobalAveragePool, ReduceMean over H and W, BatchNormalization, "
    "trailing Softmax/LogSoftmax, activations Sigmoid, Tanh, LeakyRelu, PRelu, Elu, Selu, HardSigmoid, "
    "HardSwish, Clip (Relu6)"
)
# ONNX activation -> (IR op, attribute defaults); lower builds each as a lookup table
ACTIVATIONS = {
    "Sigmoid": ("sigmoid", {}),
    "Tanh": ("tanh", {}),
    "LeakyRelu": ("leaky_relu", {"alpha": 0.01}),
    "PRelu": ("prelu", {}),
    "Elu": ("elu", {"alpha": 1.0}),
    "Selu": ("selu", {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875}),
    "HardSigmoid": ("hard_sigmoid", {"alpha": 0.2, "beta": 0.5}),
    "HardSwish": ("hard_swish", {}),
    "Clip": ("clip", {}),
}


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
    batch: int = PROBE_BATCH  # the input's static batch size, else PROBE_BATCH
    batch_dependent: set[str] = field(default_factory=set)  # folded values computed from a Shape


def load_onnx(path: str | Path) -> Graph:
    path = Path(path)
    model = normalize(_read_model(path))  # exporters' layout/shape idioms (frontend/normalize.py)
    ctx = _context(path, model)
    _fold_constants(ctx)
    problems = [p for n in _live_nodes(ctx) if (p := _check_node(ctx, n))]
    if problems:
        listing = "; ".join(f"node {name!r} ({op}): {why}" for name, op, why in problems)
        raise FrontendError(f"{path}: {len(problems)} unsupported node(s): {listing}")
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
    ctx = _Ctx(path, model, consts, shapes, opset, {o.name for o in model.graph.output})
    real_inputs = [i.name for i in model.graph.input if i.name not in consts]
    input_shape = shapes.get(real_inputs[0]) if len(real_inputs) == 1 else None
    if input_shape and input_shape[0]:
        ctx.batch = int(input_shape[0])
    return ctx


def _fold_constants(ctx: _Ctx) -> None:
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


def _fold_shape(ctx: _Ctx, n: onnx.NodeProto) -> None:
    """Shape of a computed tensor whose shape is static except the batch dimension: folded with
    ctx.batch in place of the batch size and marked batch-dependent (only a flattening Reshape
    may consume what is computed from it; see _why_unsupported)."""
    shape = ctx.shapes.get(n.input[0])
    if shape is None or not shape or any(d is None for d in shape[1:]):
        return  # left live: reported as an unsupported Shape node
    a = _attrs(n)
    dims = np.array([ctx.batch if shape[0] is None else shape[0], *shape[1:]], np.int64)
    ctx.consts[n.output[0]] = dims[a.get("start", 0) : a.get("end", len(dims))]
    ctx.batch_dependent.add(n.output[0])


def _single_node_model(ctx: _Ctx, n: onnx.NodeProto) -> onnx.ModelProto:
    h = onnx.helper
    inputs = [
        h.make_tensor_value_info(i, onnx.helper.np_dtype_to_tensor_dtype(ctx.consts[i].dtype), ctx.consts[i].shape)
        for i in n.input
        if i
    ]
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
    for i, t in enumerate(n.input):
        if t in ctx.batch_dependent and not (op == "Reshape" and i == 1):
            return (
                f"input {t!r} is computed from a Shape (it depends on the batch size); only a "
                "flattening Reshape may use such a value"
            )
    if op == "Gemm":
        if a.get("transA", 0):
            return "transA=1 is not supported"
        if n.input[1] not in ctx.consts:
            return "weight B must be a constant initializer"
        if ctx.consts[n.input[1]].ndim != 2:
            return f"weight B must be 2-D (shape {list(ctx.consts[n.input[1]].shape)} given)"
        if len(n.input) > 2 and n.input[2] and n.input[2] not in ctx.consts:
            return "bias C must be a constant initializer"
        if len(n.input) > 2 and n.input[2]:
            n_out = ctx.consts[n.input[1]].shape[0 if a.get("transB", 0) else 1]
            c = ctx.consts[n.input[2]]
            if c.size not in (1, n_out) or c.size != max(c.shape, default=1):
                return f"bias C has shape {list(c.shape)}; need ({n_out},) (one per output)"
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
    if op == "Conv":
        return _why_window_unsupported(ctx, n, a, "convolution")
    if op in ("MaxPool", "AveragePool"):
        return _why_window_unsupported(ctx, n, a, "max pooling" if op == "MaxPool" else "average pooling")
    if op == "GlobalAveragePool":
        rank = _rank(ctx, n.input[0])
        return None if rank == 4 else _dims_problem(rank, "global average pooling")
    if op == "ReduceMean":
        return _why_reduce_mean_unsupported(ctx, n, a)
    if op == "BatchNormalization":
        return _why_batchnorm_unsupported(ctx, n, a)
    if op in ("Relu", "Identity", "Dropout"):
        return None
    if op == "PRelu":
        if n.input[1] not in ctx.consts:
            return "slope must be a constant initializer"
        slope = ctx.consts[n.input[1]]
        if slope.size != max(slope.shape, default=1) or (slope.size > 1 and _rank(ctx, n.input[0]) not in (2, 4)):
            return f"slope of shape {list(slope.shape)}: only a scalar or one slope per channel (axis 1) is supported"
        return None
    if op == "Clip":
        bounds = [i for i in n.input[1:3] if i]
        if any(i not in ctx.consts for i in bounds):
            return "min and max must be constants"
        return None
    if op in ACTIVATIONS:
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
    return f"op type is not supported by mpc (supported: {SUPPORTED})"


def _dims_problem(rank: int | None, what: str) -> str:
    if rank is None:
        return f"the input's rank is unknown (2-D {what} needs [N, C, H, W])"
    if rank > 2:
        return f"{rank - 2}-D {what} is not supported (only 1-D and 2-D: input [N, C, L] or [N, C, H, W])"
    return f"{what} needs a [N, C, H, W] input (rank {rank} given)"


def _str_attr(value, default: str) -> str:
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


def _window(ctx: _Ctx, n: onnx.NodeProto, a: dict) -> tuple[dict, list[str]]:
    """IR attrs {kernel, stride, pads} of a 2-D Conv / MaxPool / AveragePool, and the problems
    that keep it from being supported. pads are [top, left, bottom, right] (ONNX's order)."""
    problems = []
    if n.op_type == "Conv":
        kernel = list(a.get("kernel_shape", ctx.consts[n.input[1]].shape[2:]))
        if kernel != list(ctx.consts[n.input[1]].shape[2:]):
            problems.append(f"kernel_shape {kernel} differs from the weight's {list(ctx.consts[n.input[1]].shape[2:])}")
    else:
        kernel = list(a.get("kernel_shape", []))
    stride = list(a.get("strides", [1] * len(kernel)))
    dil = list(a.get("dilations", [1] * len(kernel)))
    hw = ctx.shapes.get(n.input[0], (None,) * 4)[2:]
    if len(kernel) == 1 and len(stride) == 1:
        # 1-D, on the 2-D ops with H = 1: kernel [1, k], pads [0, l, 0, r]. The row stride is
        # the same s (the line-buffered engines step both axes alike): with H = KH = 1 and no
        # row padding the output has one row whatever the row stride.
        kernel, stride, hw = [1, *kernel], stride * 2, (1, *hw)
        if "pads" in a:
            a = {**a, "pads": [0, a["pads"][0], 0, *a["pads"][1:]] if len(a["pads"]) == 2 else [-1]}
    if len(kernel) != 2 or len(stride) != 2:
        return {}, [f"kernel_shape {kernel} / strides {stride} must have 2 entries"]
    if hw[:1] == (1,) and kernel[0] == 1 and stride[0] != stride[1] and not any(a.get("pads", [0] * 4)[::2]):
        stride = [stride[1], stride[1]]  # one row, KH = 1, no row padding: the row stride changes nothing
    if any(d != 1 for d in dil):
        problems.append(
            f"dilated {'convolution' if n.op_type == 'Conv' else 'pooling'} (dilations={dil}) is not supported"
        )
    if any(k < 1 for k in kernel) or any(s < 1 for s in stride):
        problems.append(f"kernel_shape {kernel} and strides {stride} must be positive")
    auto_pad = _str_attr(a.get("auto_pad"), "NOTSET")
    if auto_pad == "NOTSET":
        pads = list(a.get("pads", [0, 0, 0, 0]))
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER") and all(hw) and all(s >= 1 for s in stride):
        begin, end = [], []
        for size, k, s in zip(hw, kernel, stride):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            small, big = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else big)
            end.append(big if auto_pad == "SAME_UPPER" else small)
        pads = begin + end
    else:
        return {}, problems + [f"auto_pad={auto_pad} is not supported"]
    if len(pads) != 4 or any(p < 0 for p in pads):
        problems.append(f"pads {pads} must be 4 non-negative numbers")
    elif n.op_type != "Conv" and any(p >= k for p, k in zip(pads, kernel + kernel)):
        problems.append(f"pads {pads} must be smaller than the kernel {kernel}")
    if not all(hw):
        problems.append("the input's height and width must be known")
    elif not problems and any(size + pads[i] + pads[i + 2] < k for i, (size, k) in enumerate(zip(hw, kernel))):
        problems.append(f"the kernel {kernel} is larger than the padded input {list(hw)}")
    return {"kernel": kernel, "stride": stride, "pads": pads}, problems


def _why_window_unsupported(ctx: _Ctx, n: onnx.NodeProto, a: dict, what: str) -> str | None:
    rank = _rank(ctx, n.input[0])
    problems = []
    if n.op_type == "Conv":
        if n.input[1] not in ctx.consts:
            return "weight W must be a constant initializer"
        if len(n.input) > 2 and n.input[2] and n.input[2] not in ctx.consts:
            return "bias B must be a constant initializer"
        rank = rank if rank is not None else ctx.consts[n.input[1]].ndim
        if rank not in (3, 4):  # 3: 1-D, mapped onto 2-D with H = 1 (_window)
            return _dims_problem(rank, what)
        group = a.get("group", 1)
        if group != 1:
            depthwise = ", depthwise" if ctx.consts[n.input[1]].shape[1] == 1 else ""
            problems.append(f"grouped convolution (groups={group}{depthwise}) is not supported")
    elif rank not in (3, 4):
        return _dims_problem(rank, what)
    if a.get("ceil_mode", 0):
        problems.append("ceil_mode=1 is not supported")
    if a.get("storage_order", 0):
        problems.append("storage_order=1 is not supported")
    if n.op_type == "MaxPool" and len(n.output) > 1 and n.output[1]:
        problems.append("the Indices output is not supported")
    problems += _window(ctx, n, a)[1]
    return "; ".join(problems) or None


def _reduce_axes(ctx: _Ctx, n: onnx.NodeProto, a: dict) -> list[int] | None:
    if len(n.input) > 1 and n.input[1]:
        return [int(v) for v in ctx.consts[n.input[1]].ravel()] if n.input[1] in ctx.consts else None
    return list(a["axes"]) if "axes" in a else []


def _why_reduce_mean_unsupported(ctx: _Ctx, n: onnx.NodeProto, a: dict) -> str | None:
    rank = _rank(ctx, n.input[0])
    axes = _reduce_axes(ctx, n, a)
    if rank != 4 or axes is None or sorted(x % 4 for x in axes) != [2, 3]:
        return (
            f"only a mean over H and W of [N, C, H, W] (global average pooling) is supported (axes={axes}, rank={rank})"
        )
    return None


def _why_batchnorm_unsupported(ctx: _Ctx, n: onnx.NodeProto, a: dict) -> str | None:
    rank = _rank(ctx, n.input[0])
    problems = []
    if any(i not in ctx.consts for i in n.input[1:5]):
        problems.append("scale, bias, mean and variance must be constant initializers")
    if rank not in (2, 4):
        problems.append(f"only BatchNormalization over [N, C] or [N, C, H, W] is supported (rank {rank} given)")
    if ctx.opset < 7 and not a.get("is_test", 0):
        problems.append("training-mode BatchNormalization (is_test=0) is not supported")
    if ctx.opset < 9 and a.get("spatial", 1) != 1:
        problems.append("spatial=0 is not supported")
    if a.get("training_mode", 0):
        problems.append("training-mode BatchNormalization (training_mode=1) is not supported")
    if any(o for o in n.output[1:]):
        problems.append("the running-statistics outputs (training mode) are not supported")
    return "; ".join(problems) or None


def _why_reshape_unsupported(ctx: _Ctx, n: onnx.NodeProto) -> str | None:
    if n.input[1] not in ctx.consts:
        return "target shape must be constant"
    shape = ctx.shapes.get(n.input[0])
    if shape is None or any(d is None for d in shape[1:]):
        return "input shape must be known (except the batch dimension)"
    features = int(np.prod(shape[1:]))
    # ctx.batch: the model's static batch size, else 7 (cannot be confused with a feature count)
    probe = (ctx.batch, *shape[1:])
    target = [int(d) for d in ctx.consts[n.input[1]].ravel()]
    if _attrs(n).get("allowzero", 0) and 0 in target:
        return "allowzero=1 with a 0 in the target shape is not supported"
    out = _reshaped(probe, target)
    if out is None:
        return "target shape does not fit the input"
    return None if out == (ctx.batch, features) else "only a reshape that flattens to [batch, features] is supported"


def _reshaped(shape: tuple[int, ...], target: list[int]) -> tuple[int, ...] | None:
    """ONNX Reshape's output shape (0 copies the input dimension, one -1 is inferred), or None."""
    if (
        target.count(-1) > 1
        or any(d < -1 for d in target)
        or any(d == 0 and i >= len(shape) for i, d in enumerate(target))
    ):
        return None
    dims = [shape[i] if d == 0 else d for i, d in enumerate(target)]
    total, known = int(np.prod(shape)), int(np.prod([d for d in dims if d != -1]))
    if -1 in dims:
        if known == 0 or total % known:
            return None
        dims[dims.index(-1)] = total // known
    return tuple(dims) if int(np.prod(dims)) == total else None


# ---- building --------------------------------------------------------------------------------
def _build_graph(ctx: _Ctx) -> Graph:
    g = ctx.model.graph
    params: dict[str, np.ndarray] = {}
    nodes: list[Node] = []
    with np.errstate(all="ignore"):  # overflow to Inf / NaN is checked below, by name
        for n in _live_nodes(ctx):
            converted = _convert(ctx, n, params)
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


def _one_d(ctx: _Ctx) -> bool:
    """Whether the model has 1-D convolutions or pools (input [N, C, L]): its rank-3 tensors are
    [N, C, 1, L] in the IR."""
    windows = ("Conv", "MaxPool", "AveragePool")
    return any(n.op_type in windows and _rank(ctx, n.input[0]) == 3 for n in _live_nodes(ctx))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _convert(ctx: _Ctx, n: onnx.NodeProto, params: dict) -> Node | list[Node]:
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
        b = ctx.consts[const].astype(np.float32)
        if (_rank(ctx, x) or 2) <= 2 or b.ndim <= 1:
            b = b.reshape(-1)
        while b.ndim > 1 and b.shape[0] == 1:  # ONNX broadcasting: [1, C, 1, 1] is [C, 1, 1]
            b = b[0]
        if _rank(ctx, x) == 3 and b.ndim >= 2 and _one_d(ctx):  # a 1-D [C, L] tensor is [C, 1, L] in the IR
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
        return Node("conv2d", n.name, inputs, [n.output[0]], attrs=_window(ctx, n, a)[0])
    if op == "MaxPool":
        return Node("maxpool2d", n.name, [n.input[0]], [n.output[0]], attrs=_window(ctx, n, a)[0])
    if op == "AveragePool":  # count_include_pad: absent before opset 7, where the default is 0
        attrs = {**_window(ctx, n, a)[0], "count_include_pad": bool(a.get("count_include_pad", 0))}
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


def _activation(ctx: _Ctx, n: onnx.NodeProto, a: dict, params: dict) -> Node:
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
