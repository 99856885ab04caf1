"""Import normalization: small ONNX-level rewrites that turn what exporters write into the
plain NCHW / [N, F] graphs the frontend converts (docs/ir.md, "Import normalization").

Each rewrite is a function `ModelProto -> (ModelProto, changed)` in qonnx's Transformation
style; `normalize` upgrades old opsets with onnx's version converter (when that is safe) and
applies the rewrites in order, repeatedly, until none changes the model. Every rewrite keeps the
model's function exactly (up to float rounding of permuted sums); anything it cannot prove it
leaves alone, and the frontend then names what it refuses. A failure inside normalization
returns the model unchanged.

The one fact a rewrite cannot keep inside the graph is an NHWC input (tf2onnx's
`Transpose(perm=[0, 3, 1, 2])` right after the input): it is removed, the input is declared
NCHW and `metadata_props["mpc.input_layout"] = "nhwc"` records it; the frontend copies it to
`Graph.meta["input_layout"]`, data loading transposes NHWC data, and model.int.onnx takes NHWC.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

TARGET_OPSET = 13
LAYOUT_KEY = "mpc.input_layout"
RESHAPE_OPS = ("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose")
ELEMENTWISE_UNARY = ("Relu", "Identity", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Softsign", "Softplus")
ELEMENTWISE_BINARY = ("Add", "Mul", "Sub", "Div")
NCHW_FROM_NHWC = [0, 3, 1, 2]
NHWC_FROM_NCHW = [0, 2, 3, 1]

Rewrite = Callable[[onnx.ModelProto], tuple[onnx.ModelProto, bool]]


def normalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every applicable rewrite applied to a fixpoint (a copy; the argument is kept)."""
    original = model
    try:
        model = _upgrade_opset(model)
        for _ in range(200):
            changed = False
            for rewrite in REWRITES:
                model, did = rewrite(model)
                changed |= did
            if not changed:
                break
        if model is not original:
            onnx.checker.check_model(model)
            shape_inference.infer_shapes(model, strict_mode=True)
        return model
    except Exception:  # normalization is best effort: the frontend reports what it refuses
        return original


# ---- helpers ---------------------------------------------------------------------------------
def opset_of(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _attrs(n: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in n.attribute}


def _consts(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    out = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and "value" in _attrs(n):
            out[n.output[0]] = numpy_helper.to_array(_attrs(n)["value"])
    return out


def _shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        t = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and t.HasField("shape"):
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
    return shapes


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output}


def _graph_outputs(model: onnx.ModelProto) -> set[str]:
    return {o.name for o in model.graph.output}


def _rename_input(model: onnx.ModelProto, old: str, new: str) -> None:
    for n in model.graph.node:
        for k, i in enumerate(n.input):
            if i == old:
                n.input[k] = new


def _remove(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> None:
    for n in nodes:
        model.graph.node.remove(n)


def _touched(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    del model.graph.value_info[:]  # stale after a rewrite; shape inference derives them again
    return _prune(model)[0], True


def _prune(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """Drop nodes whose outputs nothing reads, and initializers nothing reads."""
    changed = False
    while True:
        used = {i for n in model.graph.node for i in n.input} | _graph_outputs(model)
        dead = [n for n in model.graph.node if not any(o in used for o in n.output if o)]
        if not dead:
            break
        _remove(model, dead)
        changed = True
    used = {i for n in model.graph.node for i in n.input} | _graph_outputs(model)
    used |= {i.name for i in model.graph.input}  # an initializer listed as an input stays one
    for t in [t for t in model.graph.initializer if t.name not in used]:
        model.graph.initializer.remove(t)
        changed = True
    return model, changed


def _add_init(model: onnx.ModelProto, value: np.ndarray, hint: str) -> str:
    names = {t.name for t in model.graph.initializer} | {o for n in model.graph.node for o in n.output}
    k = 0
    while f"{hint}__norm{k}" in names:
        k += 1
    name = f"{hint}__norm{k}"
    model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
    return name


def _fresh(model: onnx.ModelProto, hint: str) -> str:
    names = {t.name for t in model.graph.initializer} | {v for n in model.graph.node for v in [*n.input, *n.output]}
    k = 0
    while f"{hint}__norm{k}" in names:
        k += 1
    return f"{hint}__norm{k}"


def _perm(n: onnx.NodeProto, rank: int | None) -> list[int] | None:
    p = _attrs(n).get("perm")
    if p is not None:
        return [int(v) for v in p]
    return list(range(rank))[::-1] if rank else None


def _is_pure_reshape(n: onnx.NodeProto, shapes: dict) -> bool:
    """The node only regroups its input's elements, in row-major order (a Reshape in effect)."""
    if n.op_type != "Transpose":
        return n.op_type in RESHAPE_OPS and n.output[0] in shapes and n.input[0] in shapes
    shape = shapes.get(n.input[0])
    perm = _perm(n, len(shape) if shape else None)
    if shape is None or perm is None:
        return False
    moved = [p for p in perm if shape[p] != 1]  # non-unit axes (the batch counts as one)
    return moved == sorted(moved)


def _same_shape(a: tuple | None, b: tuple | None) -> bool:
    return a is not None and b is not None and len(a) == len(b) and all(x == y for x, y in zip(a, b))


# ---- the rewrites ------------------------------------------------------------------------------
def _upgrade_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """Opset 13 through onnx's version converter when the model's is lower and has exporter
    layout idioms to rewrite, unless a node holds a training-mode form the frontend must refuse
    by name (the converter would drop it). The rewrites do not depend on it (they read shapes,
    never Squeeze/Unsqueeze axes), so a failing conversion keeps the model's own opset."""
    if opset_of(model) >= TARGET_OPSET or any(o.domain not in ("", "ai.onnx") for o in model.opset_import):
        return model
    if not any(n.op_type in ("Transpose", "Squeeze", "Unsqueeze") for n in model.graph.node):
        return model  # nothing for the rewrites: the frontend reads the model's own opset
    for n in model.graph.node:
        a = _attrs(n)
        if n.op_type == "BatchNormalization" and (
            a.get("is_test", 1) == 0 or a.get("spatial", 1) != 1 or any(o for o in n.output[1:])
        ):
            return model
    try:
        from onnx import version_converter

        upgraded = version_converter.convert_version(model, TARGET_OPSET)
        onnx.checker.check_model(upgraded)
        shape_inference.infer_shapes(upgraded, strict_mode=True)
        return upgraded
    except Exception:  # an adapter missing or failing: keep the model's own opset
        return model


def fixed_batch(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """A static leading input dimension is the batch: make it symbolic, and a Reshape target
    that names it (tf's `[789444, -1]`) copies it instead (0)."""
    consts = {t.name for t in model.graph.initializer}
    real = [i for i in model.graph.input if i.name not in consts]
    if len(real) != 1:
        return model, False
    dims = real[0].type.tensor_type.shape.dim
    if not dims or not dims[0].HasField("dim_value"):
        return model, False
    batch = dims[0].dim_value
    original = model
    model = _copy(model)
    shapes = _shapes(model)
    values = _consts(model)
    for n in model.graph.node:
        if n.op_type != "Reshape" or (shapes.get(n.input[0]) or (None,))[0] != batch:
            continue
        if n.input[1] not in values:
            if batch != 1:
                return original, False  # a computed target may carry the batch: leave the model as it is
            continue
        target = values[n.input[1]].astype(np.int64)
        if target.ndim == 1 and len(target) and target[0] == batch:
            if _attrs(n).get("allowzero", 0) and 0 in target:
                return original, False
            target = target.copy()
            target[0] = 0  # copies the batch; allowzero (0 as a size) matters only where a 0 was
            n.input[1] = _add_init(model, target, n.input[1])
            for k in [k for k, a in enumerate(n.attribute) if a.name == "allowzero"]:
                del n.attribute[k]
    for vi in [next(i for i in model.graph.input if i.name == real[0].name), *model.graph.output]:
        d = vi.type.tensor_type.shape.dim
        if d and d[0].HasField("dim_value") and d[0].dim_value == batch:
            d[0].dim_param = "N"
    return _touched(model)


def input_layout(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """An NHWC input read only through Transpose(0, 3, 1, 2): declare the input NCHW, drop the
    Transpose, and record the layout in metadata_props (the data keeps arriving NHWC)."""
    consts = {t.name for t in model.graph.initializer}
    real = [i for i in model.graph.input if i.name not in consts]
    if len(real) != 1 or any(p.key == LAYOUT_KEY for p in model.metadata_props):
        return model, False
    readers = _consumers(model).get(real[0].name, [])
    dims = real[0].type.tensor_type.shape.dim
    if (
        len(dims) != 4
        or not readers
        or any(n.op_type != "Transpose" or _perm(n, 4) != NCHW_FROM_NHWC for n in readers)
        or real[0].name in _graph_outputs(model)
    ):
        return model, False
    model = _copy(model)
    inp = next(i for i in model.graph.input if i.name == real[0].name)
    old = [onnx.TensorShapeProto.Dimension() for _ in range(4)]
    for k in range(4):
        old[k].CopyFrom(inp.type.tensor_type.shape.dim[k])
    for k, src in enumerate(NCHW_FROM_NHWC):
        inp.type.tensor_type.shape.dim[k].CopyFrom(old[src])
    readers = [n for n in model.graph.node if n.op_type == "Transpose" and inp.name in n.input]
    for n in readers:
        _rename_input(model, n.output[0], inp.name)
    _remove(model, readers)
    model.metadata_props.add(key=LAYOUT_KEY, value="nhwc")
    return _touched(model)


def cancel_transposes(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """Transpose(q) of Transpose(p) becomes one Transpose, or nothing when they cancel; an
    identity Transpose is removed."""
    shapes = _shapes(model)
    producers = _producers(model)
    outputs = _graph_outputs(model)
    for n in model.graph.node:
        if n.op_type != "Transpose" or n.output[0] in outputs:
            continue
        rank = len(shapes[n.input[0]]) if n.input[0] in shapes else None
        outer = _perm(n, rank)
        if outer is None:
            continue
        if outer == sorted(outer):
            model = _copy(model)
            _rename_input(model, n.output[0], n.input[0])
            return _touched(model)
        inner_node = producers.get(n.input[0])
        if inner_node is None or inner_node.op_type != "Transpose":
            continue
        inner = _perm(inner_node, len(outer))
        if inner is None:
            continue
        model = _copy(model)
        node = next(m for m in model.graph.node if m.name == n.name and list(m.output) == list(n.output))
        node.input[0] = inner_node.input[0]
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("perm", [inner[p] for p in outer]))
        return _touched(model)
    return model, False


def cancel_reshape_chains(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """A chain of Squeeze / Unsqueeze / Reshape / Flatten / order-keeping Transpose that ends in
    the shape it started from is removed."""
    shapes = _shapes(model)
    producers = _producers(model)
    outputs = _graph_outputs(model)
    for n in model.graph.node:
        if not _is_pure_reshape(n, shapes) or n.output[0] in outputs:
            continue
        end = shapes[n.output[0]]
        cur = n
        while True:
            start = cur.input[0]
            if _same_shape(shapes.get(start), end):
                model = _copy(model)
                _rename_input(model, n.output[0], start)
                return _touched(model)
            prev = producers.get(start)
            if prev is None or not _is_pure_reshape(prev, shapes):
                break
            cur = prev
    return model, False


def batchnorm_2d(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """BatchNormalization reached from an [N, C] tensor through a reshaping chain (torch's
    Unsqueeze, tf2onnx's Unsqueeze + Transpose) onto [N, C, 1, ...], whose output a reshaping
    chain takes back to [N, C]: one BatchNormalization on [N, C]."""
    shapes = _shapes(model)
    producers = _producers(model)
    consumers = _consumers(model)
    outputs = _graph_outputs(model)
    for n in model.graph.node:
        if n.op_type != "BatchNormalization" or any(o for o in n.output[1:]):
            continue
        x_in = shapes.get(n.input[0])
        if x_in is None or len(x_in) < 3 or any(d != 1 for d in x_in[2:]):
            continue
        start, prev = n.input[0], producers.get(n.input[0])
        while prev is not None and _is_pure_reshape(prev, shapes) and len(shapes[start]) != 2:
            start = prev.input[0]
            prev = producers.get(start)
        if not _same_shape(shapes.get(start), x_in[:2]):
            continue
        end, chain = n.output[0], []
        while len(consumers.get(end, [])) == 1 and end not in outputs and len(shapes.get(end, ())) != 2:
            nxt = consumers[end][0]
            if not _is_pure_reshape(nxt, shapes) or nxt.input[0] != end:
                break
            chain.append(nxt)
            end = nxt.output[0]
        if not chain or not _same_shape(shapes.get(end), x_in[:2]):
            continue
        model = _copy(model)
        bn = next(m for m in model.graph.node if list(m.output) == list(n.output))
        drop = [m for m in model.graph.node if any(list(m.output) == list(c.output) for c in chain)]
        _remove(model, drop)
        bn.input[0] = start
        bn.output[0] = end
        return _touched(model)
    return model, False


def sink_transposes(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """Transpose -> elementwise op (Relu, ..., Add / Mul / Sub / Div with a constant) becomes the
    op -> Transpose (the constant permuted), when the op's chain of single readers ends in a
    Transpose: the two Transposes then meet and `cancel_transposes` removes or merges them."""
    shapes = _shapes(model)
    consumers = _consumers(model)
    consts = _consts(model)
    outputs = _graph_outputs(model)
    for t in model.graph.node:
        if t.op_type != "Transpose" or t.input[0] not in shapes or t.output[0] in outputs:
            continue
        readers = consumers.get(t.output[0], [])
        if len(readers) != 1 or not _elementwise(readers[0], t.output[0], consts):
            continue
        cur = readers[0]
        while True:  # follow single readers through elementwise ops to a Transpose
            nxt = consumers.get(cur.output[0], [])
            if len(nxt) != 1 or cur.output[0] in outputs:
                nxt_node = None
                break
            nxt_node = nxt[0]
            if nxt_node.op_type == "Transpose" or not _elementwise(nxt_node, cur.output[0], consts):
                break
            cur = nxt_node
        if nxt_node is None or nxt_node.op_type != "Transpose":
            continue
        perm = _perm(t, len(shapes[t.input[0]]))
        if perm is None:
            continue
        model = _copy(model)
        op = next(m for m in model.graph.node if list(m.output) == list(readers[0].output))
        tr = next(m for m in model.graph.node if list(m.output) == list(t.output))
        inverse = list(np.argsort(perm))
        for k, i in enumerate(op.input):
            if i == t.output[0]:
                op.input[k] = t.input[0]
            elif i in consts:
                c = consts[i]
                c = c.reshape((1,) * (len(perm) - c.ndim) + c.shape)
                op.input[k] = _add_init(model, np.transpose(c, inverse), i)
        out = op.output[0]
        mid = _fresh(model, out)
        op.output[0] = mid
        tr.input[0] = mid
        tr.output[0] = out
        # keep graph order topological: the op now comes before the Transpose
        nodes = list(model.graph.node)
        nodes.remove(tr)
        nodes.insert(nodes.index(op) + 1, tr)
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        return _touched(model)
    return model, False


def _elementwise(n: onnx.NodeProto, x: str, consts: dict) -> bool:
    if n.op_type in ELEMENTWISE_UNARY or (n.op_type == "Dropout" and len([o for o in n.output if o]) == 1):
        return n.input[0] == x
    if n.op_type in ELEMENTWISE_BINARY:
        others = [i for i in n.input if i != x]
        return len(others) == 1 and others[0] in consts and n.input.count(x) == 1
    return False


def flatten_transpose(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """Transpose(0, 2, 3, 1) before a Flatten / flattening Reshape (tf2onnx's NHWC flatten)
    whose readers are MatMul / Gemm with constant weights: flatten NCHW directly and permute the
    weight's input rows to match, so the dense layer's result is identical."""
    shapes = _shapes(model)
    consumers = _consumers(model)
    inits = {t.name: t for t in model.graph.initializer}
    outputs = _graph_outputs(model)
    for t in model.graph.node:
        shape = shapes.get(t.input[0])
        if t.op_type != "Transpose" or shape is None or len(shape) != 4 or _perm(t, 4) != NHWC_FROM_NCHW:
            continue
        _, c, h, w = shape
        readers = consumers.get(t.output[0], [])
        if not all((c, h, w)) or len(readers) != 1 or t.output[0] in outputs:
            continue
        flat = readers[0]
        flat_shape = shapes.get(flat.output[0])
        if flat.op_type not in ("Flatten", "Reshape") or flat.input[0] != t.output[0] or flat.output[0] in outputs:
            continue
        if flat.op_type == "Flatten" and _attrs(flat).get("axis", 1) != 1:
            continue
        if flat_shape is None or len(flat_shape) != 2 or flat_shape[1] != c * h * w:
            continue
        dense = consumers.get(flat.output[0], [])
        if not dense or not all(_dense_weight(d, flat.output[0], inits, consumers) for d in dense):
            continue
        model = _copy(model)
        inits = {t.name: t for t in model.graph.initializer}
        order = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()  # NHWC slot -> NCHW index
        for d in dense:
            node = next(m for m in model.graph.node if list(m.output) == list(d.output))
            weight = numpy_helper.to_array(inits[node.input[1]])
            rows_last = node.op_type == "Gemm" and _attrs(node).get("transB", 0)
            if node.op_type == "Gemm" and _attrs(node).get("transA", 0):
                raise AssertionError("unreachable: _dense_weight refuses transA")
            moved = np.empty_like(weight)
            if rows_last:
                moved[:, order] = weight
            else:
                moved[order] = weight
            node.input[1] = _add_init(model, moved, node.input[1])
        f = next(m for m in model.graph.node if list(m.output) == list(flat.output))
        f.input[0] = t.input[0]
        return _touched(model)
    return model, False


def _dense_weight(n: onnx.NodeProto, x: str, inits: dict, consumers: dict) -> bool:
    if n.op_type not in ("MatMul", "Gemm") or n.input[0] != x or len(n.input) < 2 or n.input[1] not in inits:
        return False
    if n.op_type == "Gemm" and _attrs(n).get("transA", 0):
        return False
    return len(inits[n.input[1]].dims) == 2


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


REWRITES: list[Rewrite] = [
    fixed_batch,
    input_layout,
    cancel_transposes,
    cancel_reshape_chains,
    batchnorm_2d,
    sink_transposes,
    flatten_transpose,
]
