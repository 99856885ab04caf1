"""The engines' hardware cost model: ROM bits and cycles, from the formulas in rtl/'s headers.

One place for these numbers: `lower` uses them to choose an engine per layer, the Verilog
backend and the report quote them, and simulation checks the cycle formulas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kernels.sparse_mac import SparseEncoding, best_delta_bits, encode_sparse, sparse_rom_bits

PIPELINE_EDGES = 3  # ROM read, products, accumulate/output register (rtl/dense_mac.v)


@dataclass(frozen=True)
class EngineCost:
    engine: str
    rom_bits: int          # weights (+ indices) + bias
    compute_cycles: int    # ROM words read per inference: one per cycle, no bubbles
    latency: int           # first input accepted -> last output, engine idle and never stalled
    interval: int          # steady-state cycles between inferences (double-buffered input)


def dense_cost(n_in: int, n_out: int, multipliers: int, w_bits: int, bias_bits: int) -> EngineCost:
    words = n_out * math.ceil(n_in / multipliers)
    rom = words * multipliers * w_bits + n_out * bias_bits
    return EngineCost("dense", rom, words, n_in + words + PIPELINE_EDGES, max(n_in, words))


def sparse_cost(enc: SparseEncoding, w_bits: int, bias_bits: int) -> EngineCost:
    words = int(enc.row_words.sum())
    rom = sparse_rom_bits(enc, w_bits) + enc.n_out * bias_bits
    return EngineCost("sparse", rom, words, enc.n_in + words + PIPELINE_EDGES, max(enc.n_in, words))


def sparse_encoding(w_q: np.ndarray, multipliers: int, w_bits: int) -> SparseEncoding:
    return encode_sparse(w_q, multipliers, best_delta_bits(w_q, multipliers, w_bits))


def break_even_sparsity(enc: SparseEncoding, w_q: np.ndarray, w_bits: int) -> float:
    """Sparsity below which the sparse engine's ROM would exceed the dense one's, at this
    layer's measured cost per stored entry (value + index + padding)."""
    nonzeros = max(1, int(np.count_nonzero(w_q)))
    bits_per_nonzero = sparse_rom_bits(enc, w_bits) / nonzeros
    return float(max(0.0, 1.0 - w_bits / bits_per_nonzero))


def design_latency(first_n_in: int, costs: list[EngineCost]) -> int:
    """Cycles from the first input beat to the output beat, through an empty pipeline: the
    first layer loads its inputs, then each layer computes after its last input arrives
    (its pipeline plus one edge to hand over), and argmax registers the result."""
    return first_n_in + sum(c.compute_cycles + PIPELINE_EDGES + 1 for c in costs)


def design_interval(first_n_in: int, costs: list[EngineCost], n_classes: int) -> int:
    """Steady-state cycles between inferences: the slowest stage (argmax takes N + 1)."""
    return max([first_n_in, n_classes + 1] + [c.compute_cycles for c in costs])
