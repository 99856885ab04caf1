"""Activations as exact integer lookup tables (docs/fixed-point.md, "table"), and the
activation engine's schedule (rtl/activation.v).

An activation maps an input code `q` in `Q(in_bits, in_frac)` to an output code in
`Q(out_bits, out_frac)`. Every one of the `2**in_bits` codes has its entry, computed once:

    table[q + 2**(in_bits-1)] = clip(round_half_even(f(q * 2**-in_frac) * 2**out_frac), out range)

with `f` evaluated in float64 (`FUNCTIONS`: ONNX's definitions). Entries are in ascending code
order: index `i` holds the code `i - 2**(in_bits-1)` (in hardware: the input with its sign bit
inverted). Imports numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernels.fixed import round_half_even, saturate

SELU_ALPHA = 1.67326319217681884765625  # ONNX Selu defaults (float32 values)
SELU_GAMMA = 1.05070102214813232421875


def _sigmoid(x, a):
    return 1.0 / (1.0 + np.exp(-x))


def _leaky_relu(x, a):
    return np.where(x < 0, float(a.get("alpha", 0.01)) * x, x)


def _prelu(x, a):
    return np.where(x < 0, float(a["slope"]) * x, x)


def _elu(x, a):
    return np.where(x < 0, float(a.get("alpha", 1.0)) * np.expm1(np.minimum(x, 0.0)), x)


def _selu(x, a):
    alpha, gamma = float(a.get("alpha", SELU_ALPHA)), float(a.get("gamma", SELU_GAMMA))
    return gamma * np.where(x <= 0, alpha * np.expm1(np.minimum(x, 0.0)), x)


def _hard_sigmoid(x, a):
    return np.clip(float(a.get("alpha", 0.2)) * x + float(a.get("beta", 0.5)), 0.0, 1.0)


def _hard_swish(x, a):
    return x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def _clip(x, a):
    return np.clip(x, float(a.get("min", -np.inf)), float(a.get("max", np.inf)))


# op name -> f(x: float64 array, attrs) (ONNX's formulas; `prelu` takes its one slope in attrs)
FUNCTIONS = {
    "sigmoid": _sigmoid,
    "tanh": lambda x, a: np.tanh(x),
    "leaky_relu": _leaky_relu,
    "prelu": _prelu,
    "elu": _elu,
    "selu": _selu,
    "hard_sigmoid": _hard_sigmoid,
    "hard_swish": _hard_swish,
    "clip": _clip,
}


def table_codes(in_bits: int) -> np.ndarray:
    """The input codes in table order: -2**(in_bits-1) .. 2**(in_bits-1) - 1."""
    return np.arange(-(1 << (in_bits - 1)), 1 << (in_bits - 1), dtype=np.int64)


def activation_table(op: str, attrs: dict, in_bits: int, in_frac: int, out_bits: int, out_frac: int) -> np.ndarray:
    """The table of `op` from Q(in_bits, in_frac) to Q(out_bits, out_frac): [2**in_bits] int64."""
    x = table_codes(in_bits).astype(np.float64) * 2.0**-in_frac
    with np.errstate(over="ignore"):
        y = np.asarray(FUNCTIONS[op](x, attrs), dtype=np.float64)
    return saturate(round_half_even(y * 2.0**out_frac), out_bits).astype(np.int64)


def table_lookup(x_q: np.ndarray, table: np.ndarray) -> np.ndarray:
    """y = table[x_q + 2**(in_bits-1)] elementwise (in_bits from the table's length)."""
    table = np.asarray(table, dtype=np.int64)
    offset = len(table) // 2
    idx = np.asarray(x_q, dtype=np.int64) + offset
    if idx.size and (idx.min() < 0 or idx.max() >= len(table)):
        raise ValueError(f"table lookup: input codes outside the table's {len(table)} entries")
    return table[idx]


# ------------------------------------------------------------------------ schedule
TABLE_PIPELINE_EDGES = 1  # accepted at edge e -> its output can complete at edge e + 1
TABLE_BUFFER = 2  # output FIFO depth: in_ready = (entries < 2) is a register, full rate


@dataclass(frozen=True)
class TableSchedule:
    """rtl/activation.v: one element per handshake through a 2-entry output FIFO.

    An element accepted at edge e is looked up in the ROM on the way into the FIFO and leaves
    at edge e + 1 at the earliest (out_ready high: one edge of latency, one element per edge).
    in_ready is high while the FIFO holds fewer than 2 elements (a register), so the engine
    runs at full rate and absorbs one edge of downstream back-pressure without stalling."""

    n_in: int  # elements per frame (the engine is elementwise: n_out = n_in)

    @property
    def n_out(self) -> int:
        return self.n_in

    @property
    def compute_cycles(self) -> int:
        return self.n_in

    @property
    def latency(self) -> int:
        """First input accepted -> last output, inputs one per edge, never stalled."""
        return self.n_in - 1 + TABLE_PIPELINE_EDGES

    def output_edges(self, accepted: list[int]) -> list[int]:
        """Output handshake edges with out_ready always high: each accepted edge + 1."""
        return [e + TABLE_PIPELINE_EDGES for e in accepted]

    def check_edges(self, accepted: list[int], outputs: list[int]) -> None:
        """Invariants of any handshake sequence (with back-pressure): output k leaves at least
        one edge after it arrived, outputs in order, and at most TABLE_BUFFER elements are held
        (input k + 2 is accepted only after the edge at which output k leaves)."""
        assert len(accepted) == len(outputs), f"{len(accepted)} inputs, {len(outputs)} outputs"
        for k, (a, o) in enumerate(zip(accepted, outputs)):
            assert o >= a + TABLE_PIPELINE_EDGES, f"element {k}: accepted at {a}, out at {o}"
            if k:
                assert o > outputs[k - 1], f"element {k}: two outputs at edge {o}"
            if k >= TABLE_BUFFER:
                assert a > outputs[k - TABLE_BUFFER], (
                    f"element {k} accepted at {a} while element {k - TABLE_BUFFER} is still held "
                    f"(out at {outputs[k - TABLE_BUFFER]})"
                )


class TableFifo:
    """The engine's control, edge by edge (compiler/hw/timing.py): the FIFO's occupancy."""

    def __init__(self, schedule: TableSchedule):
        self.count = 0

    def in_ready(self) -> bool:
        return self.count < TABLE_BUFFER

    def out_valid(self) -> bool:
        return self.count > 0

    def step(self, accept: bool, out_ready: bool) -> None:
        give = self.count > 0 and out_ready
        self.count += int(accept) - int(give)
