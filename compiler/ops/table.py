"""table: an activation as a lookup table indexed by the input code (docs/fixed-point.md
"table"); the nine float activations (as ONNX defines them, docs/ir.md) lower to one each."""

from __future__ import annotations

import numpy as np

from compiler.errors import PassError
from compiler.ir import Node
from compiler.ops.base import Op, register
from compiler.ops.formats import checked_activation_format
from compiler.ops.torch_util import per_channel
from kernels.activation import activation_table, table_lookup


@register
class Table(Op):
    name = "table"

    def golden(self, graph, node, xs):
        return table_lookup(xs[0], graph.params[node.inputs[1]])  # a gather

    def stand_in(self, graph, node, xs, params, values):
        """Its local slope at the input code."""
        import torch

        table = np.asarray(graph.params[node.inputs[1]], dtype=np.float64)
        slope = np.gradient(table) if len(table) > 1 else np.zeros_like(table)
        code = values[node.inputs[0]] + len(table) // 2  # the input code with its sign bit inverted
        return xs[0] * torch.as_tensor(slope[np.clip(code, 0, len(table) - 1)], dtype=torch.float64)

    def emit(self, b, graph, node, xs):
        """Gather(table, code + 2**(in_bits-1)), int8 in and out, bit-exact."""
        from onnx import TensorProto

        table = graph.params[node.inputs[1]]
        name = node.outputs[0]
        idx = b.op("Cast", [xs[0]], f"{name}__i64", to=TensorProto.INT64)
        idx = b.op("Add", [idx, b.const(len(table) // 2, np.int64, "offset")], f"{name}__index")
        return b.op("Gather", [b.const(table, np.int8, "table"), idx], f"{name}__int8", axis=0)


class Activation(Op):
    """A float activation: lowered to a `table`. An accumulator is requantized to the calibrated
    format of the activation's input first; then the table maps every input code to the
    calibrated output format (relu stays the requantize's fused ReLU)."""

    def lower(self, lowering, node):
        lowering.to_activation(node)
        attrs = dict(node.attrs)
        attrs |= self.table_attrs(lowering.graph, node)
        in_fmt = lowering.cur_fmt
        out_fmt = checked_activation_format(
            lowering.acts[node.outputs[0]], lowering.act_bits, f"the output of {node.name!r}"
        )
        table = activation_table(node.op, attrs, in_fmt.bits, in_fmt.frac, out_fmt.bits, out_fmt.frac)
        lowering.params[f"{node.name}.table"] = table.astype(np.int32)
        attrs = {
            "function": node.op,
            "function_attrs": attrs,
            "input_format": in_fmt.to_dict(),
            "format": out_fmt.to_dict(),
            "shape": list(lowering.cur_shape),
        }
        table_node = Node("table", node.name, [lowering.cur, f"{node.name}.table"], [node.outputs[0]], attrs=attrs)
        lowering.emit(table_node, out_fmt, is_acc=False)

    def table_attrs(self, graph, node: Node) -> dict:
        """What the table needs beyond the node's attrs (a PRelu's slope)."""
        return {}


@register
class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, node, args):
        import torch

        return torch.sigmoid(args[0])


@register
class Tanh(Activation):
    name = "tanh"

    def forward(self, node, args):
        import torch

        return torch.tanh(args[0])


@register
class LeakyRelu(Activation):
    name = "leaky_relu"

    def forward(self, node, args):
        from torch.nn import functional as F

        return F.leaky_relu(args[0], float(node.attrs["alpha"]))


@register
class PRelu(Activation):
    name = "prelu"

    def forward(self, node, args):
        import torch

        x, slope = args[0], args[1]
        return torch.where(x < 0, x * (per_channel(slope, x) if slope.numel() > 1 else slope), x)

    def table_attrs(self, graph, node):
        slope = np.asarray(graph.params[node.inputs[1]], dtype=np.float64).ravel()
        if slope.size == 0 or np.any(slope != slope[0]):
            raise PassError(
                f"lower: PRelu {node.name!r} has {slope.size} different slopes (one per channel); "
                "only a single slope is supported (one table per activation)"
            )
        return {"slope": float(slope[0])}


@register
class Elu(Activation):
    name = "elu"

    def forward(self, node, args):
        from torch.nn import functional as F

        return F.elu(args[0], float(node.attrs["alpha"]))


@register
class Selu(Activation):
    name = "selu"

    def forward(self, node, args):
        import torch

        x, a = args[0], node.attrs
        return float(a["gamma"]) * torch.where(x > 0, x, float(a["alpha"]) * torch.expm1(torch.clamp(x, max=0.0)))


@register
class HardSigmoid(Activation):
    name = "hard_sigmoid"

    def forward(self, node, args):
        import torch

        return torch.clamp(float(node.attrs["alpha"]) * args[0] + float(node.attrs["beta"]), 0.0, 1.0)


@register
class HardSwish(Activation):
    name = "hard_swish"

    def forward(self, node, args):
        import torch

        return args[0] * torch.clamp(args[0] / 6.0 + 0.5, 0.0, 1.0)


@register
class Clip(Activation):
    name = "clip"

    def forward(self, node, args):
        import torch

        return torch.clamp(args[0], node.attrs.get("min"), node.attrs.get("max"))
