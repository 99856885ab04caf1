"""Work and energy per inference: counted operations and memory accesses, priced with a
published table of energy per operation. A model, not a measurement.

Source of every energy number: M. Horowitz, "Computing's energy problem (and what we can do
about it)", IEEE ISSCC 2014, pp. 10-14 (45 nm, 0.9 V), the table on arithmetic and memory
access energy. Widths the table does not list are interpolated between its entries:
adders linearly in the width, multipliers linearly in the product of the operand widths
(an array multiplier's size); below the smallest entry, proportionally.

Two machines run the same layers (report.json `layers`, same shapes):
- float32 baseline: a conventional processor, float32 multiply-add per weight use, every weight
  and bias fetched once from DRAM (a convolution's further uses of a weight from the cache),
  activations from an 8 KB cache, no zero skipped;
- compiled design: integer multipliers at the layer's weight x activation width, adders at its
  accumulator width, weights and biases read once per inference from on-chip ROM (priced as
  8 KB SRAM), activations from on-chip buffers (priced as 8 KB SRAM: generous for registers).
Not counted, on either side: control, clock tree, leakage, instruction overheads (Horowitz's
~70 pJ per instruction would raise the baseline), the requantize/argmax logic, pooling
(comparisons and additions, no weights) and line buffers.
"""

from __future__ import annotations

import numpy as np

from compiler import hw
from compiler.hw.base import dense_macs

CITATION = 'M. Horowitz, "Computing\'s energy problem (and what we can do about it)", IEEE ISSCC 2014, 45 nm, 0.9 V'

# Horowitz 2014, energy per operation (pJ), by operand width in bits.
INT_ADD_PJ = {8: 0.03, 32: 0.1}
INT_MULT_PJ = {8: 0.2, 32: 3.1}
FP32_ADD_PJ = 0.9
FP32_MULT_PJ = 3.7
# Horowitz 2014, energy per 64-bit access (pJ): 8 KB SRAM cache 10, DRAM 1.3-2.6 nJ (the low end
# is taken, which favours the float baseline).
SRAM_8KB_64BIT_PJ = 10.0
DRAM_64BIT_PJ = 1300.0

FLOAT_BITS = 32

ASSUMPTIONS = [
    "Dynamic energy of counted arithmetic and memory accesses only (a model, not a measurement): "
    "control, clock tree, leakage and instruction overheads are left out on both sides, and so are pooling "
    "(comparisons and additions, no weights) and the convolution engines' line buffers.",
    "float32 baseline: a conventional processor runs every layer densely, one float32 multiply and add per "
    "weight use (a convolution uses each weight once per output position); weights and biases come from DRAM "
    "once per inference (1.3 nJ per 64 bits), a convolution's further uses of a weight and all activations "
    "from an 8 KB cache (10 pJ per 64 bits).",
    "compiled design: integer multiplies at weight x activation bits and adds at accumulator bits; each "
    "engine reads its whole weight/bias ROM once per inference (a convolution engine once per output "
    "position) and one activation per multiply, both priced as 8 KB on-chip SRAM (10 pJ per 64 bits); a "
    "sparse engine skips zero weights, dense and convolution engines do not.",
    "Widths between the table's entries are interpolated: adders linearly in the width, multipliers in the "
    "product of the operand widths.",
]


def _interpolate(table: dict[int, float], x: float) -> float:
    """Linear between the table's points; proportional to x below the first (and above the last)."""
    xs = sorted(table)
    if x <= xs[0]:
        return table[xs[0]] * x / xs[0]
    if x >= xs[-1]:
        return table[xs[-1]] * x / xs[-1]
    return float(np.interp(x, xs, [table[k] for k in xs]))


def int_add_pj(bits: int) -> float:
    return _interpolate(INT_ADD_PJ, bits)


def int_mult_pj(a_bits: int, b_bits: int) -> float:
    return _interpolate({w * w: e for w, e in INT_MULT_PJ.items()}, a_bits * b_bits)


def sram_pj(bits: float) -> float:
    return bits * SRAM_8KB_64BIT_PJ / 64


def dram_pj(bits: float) -> float:
    return bits * DRAM_64BIT_PJ / 64


def layer_work(layer: dict) -> dict:
    """Operations of one inference of a report.json layer entry on its engine
    (compiler/hw/<engine>.py `inference_work`)."""
    return hw.engine(layer["engine"]).inference_work(layer)


def total_work(layers: list[dict]) -> dict:
    works = [layer_work(layer) for layer in layers]
    return {key: sum(w[key] for w in works) for key in works[0]} | {
        "zero_weights": sum(layer["zero_weights"] for layer in layers)
    }


def compiled_energy_pj(layers: list[dict]) -> dict:
    """Energy per inference of the compiled design, by part (pJ)."""
    parts = dict.fromkeys(("multiply", "add", "weight_memory", "activation_memory"), 0.0)
    for layer in layers:
        work = layer_work(layer)
        in_bits = layer["input_format"]["bits"]
        widths = hw.engine(layer["engine"]).multiply_bits(layer)
        parts["multiply"] += work["multiplies"] * int_mult_pj(*widths)
        parts["add"] += work["additions"] * int_add_pj(layer["acc_bits"])
        parts["weight_memory"] += sram_pj(work["weight_read_bits"])
        parts["activation_memory"] += sram_pj(work["multiplies"] * in_bits)
    return parts


def float32_energy_pj(layers: list[dict]) -> dict:
    """Energy per inference of the same layers in float32 on a conventional processor (pJ)."""
    parts = dict.fromkeys(("multiply", "add", "weight_memory", "activation_memory"), 0.0)
    for layer in layers:
        macs, weights, n_out = dense_macs(layer), int(np.prod(layer["shape"])), layer["shape"][0]
        parts["multiply"] += macs * FP32_MULT_PJ
        parts["add"] += macs * FP32_ADD_PJ
        # each weight and bias once from DRAM; a convolution's other uses of a weight from the cache
        parts["weight_memory"] += dram_pj((weights + n_out) * FLOAT_BITS) + sram_pj((macs - weights) * FLOAT_BITS)
        parts["activation_memory"] += sram_pj(macs * FLOAT_BITS)
    return parts


def energy_section(layers: list[dict]) -> dict:
    """report.json hardware fields: `work`, `energy_pj`, `energy_ratio`, `energy_model`."""
    baseline, compiled = float32_energy_pj(layers), compiled_energy_pj(layers)
    total_baseline, total_compiled = sum(baseline.values()), sum(compiled.values())
    return {
        "work": total_work(layers),
        "energy_pj": {
            "float32_baseline": round(total_baseline, 1),
            "compiled": round(total_compiled, 1),
            "float32_baseline_parts": {k: round(v, 1) for k, v in baseline.items()},
            "compiled_parts": {k: round(v, 1) for k, v in compiled.items()},
        },
        "energy_ratio": round(total_baseline / total_compiled, 2) if total_compiled else None,
        "energy_model": {"source": CITATION, "assumptions": ASSUMPTIONS, "table_pj": table_pj()},
    }


def table_pj() -> dict:
    """The table the model prices with, as recorded in report.json."""
    return {
        "int_add": {str(k): v for k, v in INT_ADD_PJ.items()},
        "int_mult": {str(k): v for k, v in INT_MULT_PJ.items()},
        "fp32_add": FP32_ADD_PJ,
        "fp32_mult": FP32_MULT_PJ,
        "sram_8kb_per_64_bits": SRAM_8KB_64BIT_PJ,
        "dram_per_64_bits": DRAM_64BIT_PJ,
    }
