"""The IR's ops, one home each: every op is a class in one module of this package, holding its
golden step, its float forward, its gradient stand-in, its ONNX emitter and its lowering rule
(compiler/ops/base.py). Importing this package registers them all.

Adding an integer op, in this order (`add` went through it; docs/architecture.md has the list):
its contract (docs/fixed-point.md), its kernel (kernels/, exported from kernels/__init__.py) and
the kernel's tests (tests/kernels/), its name in ir.INTEGER_OPS (and ir.FLOAT_OPS with docs/ir.md
if the float graph has it), its module here (golden, forward, stand_in, emit, lower or
`unlowerable`) imported below, its tests (tests/compiler/ops/), then, if it has hardware, its rtl
file, a cocotb bench (sim/), the bench's runner (tests/sim/) and an engine module (compiler/hw/).
"""

from compiler.ops import (  # imported to register their ops
    add,
    avgpool2d,
    canonical,
    circulant,
    concat,
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
