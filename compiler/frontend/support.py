"""Which ONNX nodes mpc imports: `why_unsupported` names what keeps a node out (every check the
frontend makes of a single node), `window_attrs` reads a Conv's or a pool's window (docs/ir.md)."""

from __future__ import annotations

import numpy as np
import onnx

from compiler.frontend.context import ACTIVATIONS, Ctx, node_attrs, tensor_rank

SUPPORTED = (
    "Gemm, MatMul, Add (a bias vector, or two tensors of one shape), Concat on the channel axis, Relu, Flatten, "
    "Reshape-as-flatten, Identity, Dropout, Conv, MaxPool, "
    "AveragePool, GlobalAveragePool, ReduceMean over H and W, BatchNormalization, "
    "trailing Softmax/LogSoftmax, activations Sigmoid, Tanh, LeakyRelu, PRelu, Elu, Selu, HardSigmoid, "
    "HardSwish, Clip (Relu6)"
)


def check_node(ctx: Ctx, n: onnx.NodeProto):
    """Return (name, op, why) if the node is unsupported, else None."""
    why = why_unsupported(ctx, n)
    return (n.name, n.op_type, why) if why else None


def why_unsupported(ctx: Ctx, n: onnx.NodeProto) -> str | None:
    a = node_attrs(n)
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
        if tensor_rank(ctx, n.input[0]) != 2:
            return "input must be 2-D [batch, features] (flatten first)"
        return None
    if op == "Add":
        const = [i for i in n.input if i in ctx.consts]
        if not const:
            return _why_join_unsupported(ctx, n)
        if len(const) != 1 or ctx.consts[const[0]].squeeze().ndim > 1:
            return "only adding a constant bias vector is supported"
        return None
    if op == "Concat":
        return _why_concat_unsupported(ctx, n, a)
    if op == "Conv":
        return _why_window_unsupported(ctx, n, a, "convolution")
    if op in ("MaxPool", "AveragePool"):
        return _why_window_unsupported(ctx, n, a, "max pooling" if op == "MaxPool" else "average pooling")
    if op == "GlobalAveragePool":
        rank = tensor_rank(ctx, n.input[0])
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
        if slope.size != max(slope.shape, default=1) or (slope.size > 1 and tensor_rank(ctx, n.input[0]) not in (2, 4)):
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
        rank = tensor_rank(ctx, n.input[0])
        axis = a.get("axis", -1 if ctx.opset >= 13 else 1)
        if rank is None or axis not in (-1, rank - 1):
            return f"only a softmax over the last axis is supported (axis={axis}, rank={rank})"
        if n.output[0] not in ctx.graph_outputs:
            return "only a trailing (graph-output) softmax is supported"
        return None
    return f"op type is not supported by mpc (supported: {SUPPORTED})"


def _why_join_unsupported(ctx: Ctx, n: onnx.NodeProto) -> str | None:
    """An Add of two computed tensors (a residual join): no broadcasting."""
    if len(n.input) != 2 or n.input[0] == n.input[1]:
        return "an Add of two computed tensors needs two distinct inputs"
    a, b = ctx.shapes.get(n.input[0]), ctx.shapes.get(n.input[1])
    if a is None or b is None:
        return "the shapes of both inputs must be known"
    if len(a) != len(b) or any(p != q for p, q in zip(a[1:], b[1:])):
        return f"adding tensors of shapes {list(a)} and {list(b)} (broadcasting) is not supported"
    return _flattened_image_input(ctx, n)


def _flattened_image_input(ctx: Ctx, n: onnx.NodeProto) -> str | None:
    """A join of a flattened image is refused (lower's rule): the image streams channel-last
    while the integer graph is row-major, so the two halves of the join would not line up."""
    producers = {o: m for m in ctx.model.graph.node for o in m.output}
    for t in (t for t in n.input if t):
        src = producers.get(t)
        while src is not None and (src.op_type in ("Relu", "Identity", "Dropout") or src.op_type in ACTIVATIONS):
            src = producers.get(src.input[0])
        shape = ctx.shapes.get(src.input[0]) if src is not None and src.op_type in ("Flatten", "Reshape") else None
        if shape is not None and len(shape) > 2 and int(np.prod([d or 2 for d in shape[2:]])) > 1:
            return f"input {t!r} is a flattened image; join the images before the flatten"
    return None


def _why_concat_unsupported(ctx: Ctx, n: onnx.NodeProto, a: dict) -> str | None:
    """A Concat of computed tensors along the channel axis (1 of [N, C, ...])."""
    inputs = [t for t in n.input if t]
    if len(inputs) < 2:
        return "a Concat needs at least two inputs"
    if any(t in ctx.consts for t in inputs):
        return "a Concat with a constant input is not supported (only computed tensors are joined)"
    rank = tensor_rank(ctx, inputs[0])
    if rank is None or rank not in (2, 3, 4):
        return f"only a Concat of [N, F] or [N, C, H, W] tensors is supported (rank {rank})"
    axis = int(a.get("axis", 1))
    if axis % rank != 1:
        return f"only a Concat along the channel axis (1) is supported (axis={axis}, rank={rank})"
    shapes = [ctx.shapes.get(t) for t in inputs]
    known = [s for s in shapes if s is not None]
    if len(known) < len(shapes) or any(len(s) != rank or s[2:] != known[0][2:] for s in known):
        return f"the inputs' shapes {[list(s) if s else None for s in shapes]} must agree but in the channel axis"
    return _flattened_image_input(ctx, n)


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


def window_attrs(ctx: Ctx, n: onnx.NodeProto, a: dict) -> tuple[dict, list[str]]:
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


def _why_window_unsupported(ctx: Ctx, n: onnx.NodeProto, a: dict, what: str) -> str | None:
    rank = tensor_rank(ctx, n.input[0])
    problems = []
    if n.op_type == "Conv":
        if n.input[1] not in ctx.consts:
            return "weight W must be a constant initializer"
        if len(n.input) > 2 and n.input[2] and n.input[2] not in ctx.consts:
            return "bias B must be a constant initializer"
        rank = rank if rank is not None else ctx.consts[n.input[1]].ndim
        if rank not in (3, 4):  # 3: 1-D, mapped onto 2-D with H = 1 (window_attrs)
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
    problems += window_attrs(ctx, n, a)[1]
    return "; ".join(problems) or None


def _reduce_axes(ctx: Ctx, n: onnx.NodeProto, a: dict) -> list[int] | None:
    if len(n.input) > 1 and n.input[1]:
        return [int(v) for v in ctx.consts[n.input[1]].ravel()] if n.input[1] in ctx.consts else None
    return list(a["axes"]) if "axes" in a else []


def _why_reduce_mean_unsupported(ctx: Ctx, n: onnx.NodeProto, a: dict) -> str | None:
    rank = tensor_rank(ctx, n.input[0])
    axes = _reduce_axes(ctx, n, a)
    if rank != 4 or axes is None or sorted(x % 4 for x in axes) != [2, 3]:
        return (
            f"only a mean over H and W of [N, C, H, W] (global average pooling) is supported (axes={axes}, rank={rank})"
        )
    return None


def _why_batchnorm_unsupported(ctx: Ctx, n: onnx.NodeProto, a: dict) -> str | None:
    rank = tensor_rank(ctx, n.input[0])
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


def _why_reshape_unsupported(ctx: Ctx, n: onnx.NodeProto) -> str | None:
    if n.input[1] not in ctx.consts:
        return "target shape must be constant"
    shape = ctx.shapes.get(n.input[0])
    if shape is None or any(d is None for d in shape[1:]):
        return "input shape must be known (except the batch dimension)"
    features = int(np.prod(shape[1:]))
    # ctx.batch: the model's static batch size, else 7 (cannot be confused with a feature count)
    probe = (ctx.batch, *shape[1:])
    target = [int(d) for d in ctx.consts[n.input[1]].ravel()]
    if node_attrs(n).get("allowzero", 0) and 0 in target:
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
