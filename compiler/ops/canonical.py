"""Float ops that `canonicalize` folds away (compiler/passes/canonicalize.py): a bias add into
the layer before it, an identity, a batch normalization into the conv / dense layer before it.
They have a float forward and no integer form; lower refuses what canonicalize left."""

from __future__ import annotations

from compiler.ops.base import Op, register
from compiler.ops.torch_util import per_channel


@register
class BiasAdd(Op):
    name = "bias_add"

    def forward(self, node, args):
        return args[0] + args[1]  # ONNX broadcasting: [F] per feature, [C, 1, 1] per channel


@register
class Identity(Op):
    name = "identity"

    def forward(self, node, args):
        return args[0]


@register
class BatchNorm(Op):
    name = "batchnorm"
    unlowerable = (
        "lower: batch normalization {names} follows no conv/dense layer it could be folded into "
        "(canonicalize folds it only right after one), so it has no integer form"
    )

    def forward(self, node, args):
        x, scale, shift = args[0], args[1], args[2]
        return x * per_channel(scale, x) + per_channel(shift, x)
