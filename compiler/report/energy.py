"""Work and energy per inference: counted operations and memory accesses, priced with a
published table of energy per operation. A model, not a measurement.

Source of every energy number: M. Horowitz, "Computing's energy problem (and what we can do
about it)", IEEE ISSCC 2014, pp. 10-14 (45 nm, 0.9 V), the table on arithmetic and memory
access energy. Widths the table does not list are interpolated between its entries:
adders linearly in the width, multipliers linearly in the product of the operand widths
(an array multiplier's size); below the smallest entry, proportionally.

The compiled design runs its own layers (report.json `layers`): integer multipliers at the
layer's weight x activation width, adders at its accumulator width, weights and biases read once
per inference from on-chip ROM (priced as 8 KB SRAM), activations from on-chip buffers (priced as
8 KB SRAM: generous for registers).

Three baselines run the *original imported* model's layers (OUT/checkpoints/00-import, their
shapes before pruning, neuron/channel removal or block-circulant structure), so every build of
one model has the same baselines (report.json `hardware.energy_baselines`):
- float32_dram: a conventional processor, float32 multiply-add per weight use, every weight
  and bias fetched once from DRAM (a convolution's further uses of a weight from the cache),
  activations from an 8 KB cache, no zero skipped (also `energy_pj.float32_baseline`);
- float32_sram: the same with every weight and bias read from an 8 KB on-chip SRAM;
- uncompressed: the same layers as dense int8 post-training quantization on the default engines
  of this compiler (dense, conv), priced like the compiled design. Its ratio to the compiled
  design is what compression saved.
Not counted, on either side: control, clock tree, leakage, instruction overheads (Horowitz's
~70 pJ per instruction would raise the baseline), the requantize/argmax logic, pooling
(comparisons and additions, no weights) and line buffers.
"""

from __future__ import annotations

import numpy as np

from compiler import hw
from compiler.hw.base import dense_macs
from compiler.ir import Graph

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
PTQ_BITS = 8  # the uncompressed baseline: int8 weights and activations
BASELINES = ("float32_dram", "float32_sram", "uncompressed")  # report.json hardware.energy_baselines

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
    "Every baseline prices the original imported model's layers (their shapes before pruning, neuron or channel "
    "removal and block-circulant structure), so all builds of one model share the same baselines.",
    "float32 baseline, weights in SRAM: the float32 baseline with every weight and bias read from an 8 KB on-chip "
    "SRAM (10 pJ per 64 bits) instead of DRAM: what is left once weights are on chip.",
    f"uncompressed baseline (what compression saved): the original layers as dense int{PTQ_BITS} post-training "
    f"quantization on the same engines (dense layers on the dense engine, convolutions on the conv engine): "
    f"{PTQ_BITS}-bit weights and activations, accumulators of {2 * PTQ_BITS} + ceil(log2(n_in)) bits (the widest "
    f"sum of n_in {PTQ_BITS} x {PTQ_BITS}-bit products; lower's width, from the actual weights, is often "
    "narrower), each engine's weight and bias ROM (no padding) read once per inference (a convolution engine once "
    "per output position) "
    "and priced as 8 KB SRAM like the compiled design, no zero skipped.",
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


def float32_energy_pj(layers: list[dict], weights_in: str = "dram") -> dict:
    """Energy per inference of the same layers in float32 on a conventional processor (pJ), each
    weight and bias read once from `weights_in` ("dram" or "sram", an 8 KB on-chip SRAM)."""
    fetch = {"dram": dram_pj, "sram": sram_pj}[weights_in]
    parts = dict.fromkeys(("multiply", "add", "weight_memory", "activation_memory"), 0.0)
    for layer in layers:
        macs, weights, n_out = dense_macs(layer), int(np.prod(layer["shape"])), layer["shape"][0]
        parts["multiply"] += macs * FP32_MULT_PJ
        parts["add"] += macs * FP32_ADD_PJ
        # each weight and bias once from DRAM (SRAM); a convolution's other uses of a weight from the cache
        parts["weight_memory"] += fetch((weights + n_out) * FLOAT_BITS) + sram_pj((macs - weights) * FLOAT_BITS)
        parts["activation_memory"] += sram_pj(macs * FLOAT_BITS)
    return parts


def float32_work(layers: list[dict]) -> dict:
    """Operations of the float32 baselines: every weight use a multiply-add and a 32-bit read."""
    macs = sum(dense_macs(layer) for layer in layers)
    biases = sum(layer["shape"][0] for layer in layers)
    return {
        "multiplies": macs,
        "additions": macs,
        "weight_reads": macs,
        "weight_read_bits": (macs + biases) * FLOAT_BITS,
        "skipped_zeros": 0,
    }


def imported_layers(original: Graph, compiled_layers: list[dict]) -> list[dict]:
    """The original imported model's weighted layers as report.json-like entries (`name`, `op`,
    `shape`, `output_positions`, `dense_multiplies`): what every baseline prices. A
    convolution's output positions (H_out * W_out, which no pass changes) come from its compiled
    layer of the same name (passes keep layer names)."""
    positions = {layer["name"]: layer.get("output_positions", 1) for layer in compiled_layers}
    layers = []
    for node in original.weighted_nodes(include_conv=True):
        shape = [int(d) for d in original.params[node.inputs[1]].shape]
        if node.op == "conv2d" and node.name not in positions:
            raise ValueError(f"energy baselines: convolution {node.name!r} has no compiled layer of that name")
        n = positions.get(node.name, 1) if node.op == "conv2d" else 1
        layers.append(
            {
                "name": node.name,
                "op": node.op,
                "shape": shape,
                "output_positions": n,
                "dense_multiplies": n * int(np.prod(shape)),
            }
        )
    return layers


def uncompressed_layers(layers: list[dict]) -> list[dict]:
    """`layers` (imported_layers) as dense int8 PTQ on the op's default engine (dense, conv):
    PTQ_BITS-bit weights and activations, accumulators of 2 * PTQ_BITS + ceil(log2(n_in)) bits,
    a ROM of every weight and bias without padding."""
    entries = []
    for layer in layers:
        n_out, weights = layer["shape"][0], int(np.prod(layer["shape"]))
        n_in = max(1, weights // n_out)  # terms per output: n_in, or C_in * kH * kW
        acc_bits = 2 * PTQ_BITS + (n_in - 1).bit_length()  # + ceil(log2(n_in))
        engine = hw.engines_for("conv2d" if layer.get("op") == "conv2d" else "dense")[0]
        entries.append(
            layer
            | {
                "engine": engine.kind,
                "bits": PTQ_BITS,
                "input_format": {"bits": PTQ_BITS},
                "acc_bits": acc_bits,
                "rom_bits": weights * PTQ_BITS + n_out * acc_bits,
                "zero_weights": 0,
            }
        )
    return entries


def energy_section(layers: list[dict], baseline_layers: list[dict] | None = None) -> dict:
    """report.json hardware fields: `work`, `energy_pj`, `energy_ratio`, `energy_baselines`,
    `energy_model`. `baseline_layers` (imported_layers: the original model) are what the
    baselines price; without them, the compiled layers' shapes."""
    base_layers = baseline_layers if baseline_layers is not None else layers
    compiled = compiled_energy_pj(layers)
    total_compiled = sum(compiled.values())
    uncompressed = uncompressed_layers(base_layers)
    priced = {
        "float32_dram": (float32_energy_pj(base_layers, "dram"), float32_work(base_layers)),
        "float32_sram": (float32_energy_pj(base_layers, "sram"), float32_work(base_layers)),
        "uncompressed": (compiled_energy_pj(uncompressed), total_work(uncompressed)),
    }
    baselines = {
        name: {
            "energy_pj": round(sum(parts.values()), 1),
            "ratio": round(sum(parts.values()) / total_compiled, 2) if total_compiled else None,
            "parts": {k: round(v, 1) for k, v in parts.items()},
            "work": {k: v for k, v in work.items() if k != "zero_weights"},
        }
        for name, (parts, work) in priced.items()
    }
    dram = baselines["float32_dram"]
    return {
        "work": total_work(layers),
        "energy_pj": {
            "float32_baseline": dram["energy_pj"],
            "compiled": round(total_compiled, 1),
            "float32_baseline_parts": dram["parts"],
            "compiled_parts": {k: round(v, 1) for k, v in compiled.items()},
        },
        "energy_ratio": dram["ratio"],
        "energy_baselines": baselines,
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
