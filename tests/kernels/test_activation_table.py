"""kernels.activation: the table's contract (docs/fixed-point.md "table"), the lookup, the schedule."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.activation import (
    FUNCTIONS,
    TableFifo,
    TableSchedule,
    activation_table,
    table_codes,
    table_lookup,
)

ATTRS = {"leaky_relu": {"alpha": 0.1}, "prelu": {"slope": 0.25}, "clip": {"min": 0.0, "max": 6.0}}


@pytest.mark.parametrize("op", list(FUNCTIONS))
@pytest.mark.parametrize("in_bits,in_frac,out_bits,out_frac", [(8, 4, 8, 7), (4, 1, 6, 3), (2, 0, 3, -1)])
def test_table_is_the_rounded_saturated_function(op, in_bits, in_frac, out_bits, out_frac):
    table = activation_table(op, ATTRS.get(op, {}), in_bits, in_frac, out_bits, out_frac)
    assert table.shape == (1 << in_bits,) and table.dtype == np.int64
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    assert table.min() >= lo and table.max() <= hi
    x = table_codes(in_bits) * 2.0**-in_frac
    exact = FUNCTIONS[op](x, ATTRS.get(op, {})) * 2.0**out_frac
    inside = (exact >= lo - 0.5) & (exact <= hi + 0.5)
    assert np.all(np.abs(table[inside] - exact[inside]) <= 0.5)  # round to nearest
    assert np.all(table[exact > hi + 0.5] == hi) and np.all(table[exact < lo - 0.5] == lo)  # saturated


def test_ties_round_half_even():
    # identity through clip: code 1 at Q(4, 1) is 0.5, at Q(4, 0) a tie -> 0; code 3 (1.5) -> 2
    table = activation_table("clip", {"min": -100.0, "max": 100.0}, 4, 1, 4, 0)
    assert table_lookup(np.array([1, 3, -1, -3]), table).tolist() == [0, 2, 0, -2]


def test_known_values():
    table = activation_table("sigmoid", {}, 8, 4, 8, 7)
    assert table_lookup(np.array([0]), table)[0] == 64  # sigmoid(0) = 0.5
    assert table_lookup(np.array([127]), table)[0] == 127  # ~1.0 saturates to 127/128
    relu6 = activation_table("clip", {"min": 0.0, "max": 6.0}, 8, 4, 8, 4)
    assert table_lookup(np.array([-128, -1, 0, 5, 127]), relu6).tolist() == [0, 0, 0, 5, 96]


def test_lookup_indexes_by_code_and_refuses_out_of_range():
    table = np.arange(16) * 3
    x = np.array([[-8, -1], [0, 7]])
    assert table_lookup(x, table).tolist() == [[0, 21], [24, 45]]
    with pytest.raises(ValueError):
        table_lookup(np.array([8]), table)


def test_schedule_and_fifo_model_agree():
    s = TableSchedule(5)
    assert (s.n_out, s.compute_cycles, s.latency) == (5, 5, 5)
    assert s.output_edges([3, 4, 5]) == [4, 5, 6]
    fifo = TableFifo(s)
    # out_ready low: two elements taken, then in_ready falls
    taken = 0
    for _ in range(4):
        ready = fifo.in_ready()
        fifo.step(ready, False)
        taken += ready
    assert taken == 2 and not fifo.in_ready() and fifo.out_valid()
    fifo.step(False, True)
    assert fifo.in_ready()


def test_check_edges_catches_a_third_element_held():
    s = TableSchedule(3)
    s.check_edges([1, 2, 4], [3, 4, 5])
    with pytest.raises(AssertionError):
        s.check_edges([1, 2, 3], [4, 5, 6])
