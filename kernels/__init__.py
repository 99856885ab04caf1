"""Bit-exact numeric kernels: the semantics of every hardware operation, in numpy.

Each function implements one operation of docs/fixed-point.md. The golden executor and the
cocotb scoreboards call these; rtl/ and the ONNX backend are tested against them.
Imports numpy only.
"""

from kernels.add import add
from kernels.argmax import argmax
from kernels.concat import concat
from kernels.conv2d import conv2d, conv_accumulator_bits
from kernels.dense_mac import dense_accumulator_bits, dense_mac
from kernels.fixed import bits_for_signed, int_range, round_half_even, saturate
from kernels.pool2d import avg_pool2d, global_avg_pool, max_pool2d
from kernels.quantize import dequantize, quantize
from kernels.requantize import requantize

__all__ = [
    "int_range",
    "bits_for_signed",
    "round_half_even",
    "saturate",
    "quantize",
    "dequantize",
    "dense_mac",
    "dense_accumulator_bits",
    "requantize",
    "add",
    "concat",
    "argmax",
    "conv2d",
    "conv_accumulator_bits",
    "max_pool2d",
    "avg_pool2d",
    "global_avg_pool",
]
