"""Sparse multiply-accumulate over a compressed weight stream (the sparse engine's semantics).

Encoding (docs/fixed-point.md, "Sparse layers"): row by row, each nonzero weight is an entry
(w, d) where d is the number of zeros skipped since the previous entry of the row, so the
entry's column is c = c_prev + d + 1 (c_prev = -1 at the start of a row). A gap longer than
2**D - 1 zeros gets padding entries (0, 2**D - 1), as in EIE. Each row is padded with (0, 0)
entries to a whole number of P-entry words, and holds at least one word. Padding entries have
weight 0, so they add nothing whatever column they land on.

The accumulators are exactly dense_mac's: the encoding only skips zeros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kernels.dense_mac import RomSchedule


@dataclass
class SparseEncoding:
    weights: np.ndarray  # [words, P] int: entry weights
    deltas: np.ndarray  # [words, P] int: zeros skipped before each entry
    row_words: np.ndarray  # [n_out] int: words of each row (>= 1)
    n_in: int
    parallel: int
    delta_bits: int

    @property
    def n_out(self) -> int:
        return len(self.row_words)

    @property
    def entries(self) -> int:
        return int(self.weights.size)


def _row_entries(row: np.ndarray, delta_bits: int) -> list[tuple[int, int]]:
    max_delta = (1 << delta_bits) - 1
    entries, prev = [], -1
    for col in np.flatnonzero(row):
        gap = int(col) - prev - 1
        while gap > max_delta:  # a padding entry advances the column by 2**D
            entries.append((0, max_delta))
            gap -= max_delta + 1
        entries.append((int(row[col]), gap))
        prev = int(col)
    return entries


def encode_sparse(w_q: np.ndarray, parallel: int, delta_bits: int) -> SparseEncoding:
    w_q = np.asarray(w_q, dtype=np.int64)
    weights, deltas, row_words = [], [], []
    for row in w_q:
        entries = _row_entries(row, delta_bits)
        words = max(1, math.ceil(len(entries) / parallel))
        entries += [(0, 0)] * (words * parallel - len(entries))
        weights += [e[0] for e in entries]
        deltas += [e[1] for e in entries]
        row_words.append(words)
    shape = (-1, parallel)
    return SparseEncoding(
        np.array(weights, np.int64).reshape(shape),
        np.array(deltas, np.int64).reshape(shape),
        np.array(row_words, np.int64),
        w_q.shape[1],
        parallel,
        delta_bits,
    )


def entry_columns(enc: SparseEncoding) -> np.ndarray:
    """Column of every entry ([words, P]), restarting at each row."""
    cols = np.zeros_like(enc.deltas)
    word = 0
    for words in enc.row_words:
        steps = (enc.deltas[word : word + words] + 1).ravel()
        cols[word : word + words] = (np.cumsum(steps) - 1).reshape(words, enc.parallel)
        word += words
    return cols


def sparse_mac(x_q: np.ndarray, enc: SparseEncoding, b_q: np.ndarray | None) -> np.ndarray:
    """acc[o] = b[o] + sum over row o's entries of w * x[column] (entries past the last column
    carry weight 0 and read nothing)."""
    x = np.asarray(x_q, dtype=np.int64)
    cols = entry_columns(enc)
    live = enc.weights != 0
    acc = np.zeros((len(x), enc.n_out), np.int64)
    word = 0
    for o, words in enumerate(enc.row_words):
        w = enc.weights[word : word + words][live[word : word + words]]
        c = cols[word : word + words][live[word : word + words]]
        acc[:, o] = x[:, c] @ w
        word += words
    if b_q is not None:
        acc += np.asarray(b_q, dtype=np.int64)
    return acc


def sparse_rom_bits(enc: SparseEncoding, w_bits: int) -> int:
    """Bits of the entry ROM plus the row-length ROM."""
    count_bits = max(1, int(enc.row_words.max()).bit_length())
    return enc.entries * (w_bits + enc.delta_bits) + enc.n_out * count_bits


def best_delta_bits(w_q: np.ndarray, parallel: int, w_bits: int, choices=range(1, 9)) -> int:
    """Delta width with the smallest ROM: narrow deltas need more padding entries."""
    return min(choices, key=lambda d: (sparse_rom_bits(encode_sparse(w_q, parallel, d), w_bits), d))


def sparse_schedule(enc: SparseEncoding) -> RomSchedule:
    """rtl/sparse_mac.v: the dense engine's schedule with each row's own word count."""
    return RomSchedule(enc.n_in, tuple(int(w) for w in enc.row_words))
