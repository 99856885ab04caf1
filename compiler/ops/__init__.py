"""The IR's ops, one home each: every op is a class in one module of this package, holding its
golden step, its float forward, its gradient stand-in, its ONNX emitter and its lowering rule
(compiler/ops/base.py). Importing this package registers them all.

Adding an integer op: its kernel (kernels/), its module here, an engine module
(compiler/hw/) if it has hardware, its rtl file, a bench and a test.
"""

from compiler.ops import (  # imported to register their ops
    add,
    avgpool2d,
    canonical,
    circulant,
    conv2d,
    dense,
    dequantize,
    flatten,
    global_avgpool,
    maxpool2d,
    quantize,
    requantize,
    table,
)
from compiler.ops.base import OPS, Op, get, names, register, stream_inputs

__all__ = ["OPS", "Op", "get", "names", "register", "stream_inputs"]
