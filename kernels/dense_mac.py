"""Dense multiply-accumulate: acc[o] = b[o] + sum_i W[o, i] * x[i] (exact integers)."""

from dataclasses import dataclass

import numpy as np

from kernels.fixed import bits_for_signed


def dense_mac(x_q: np.ndarray, w_q: np.ndarray, b_q: np.ndarray | None) -> np.ndarray:
    """x_q: [N, in] ints, w_q: [out, in] ints, b_q: [out] ints -> [N, out] int64 accumulators."""
    acc = np.asarray(x_q, dtype=np.int64) @ np.asarray(w_q, dtype=np.int64).T
    if b_q is not None:
        acc = acc + np.asarray(b_q, dtype=np.int64)
    return acc


def dense_accumulator_bits(w_q: np.ndarray, b_q: np.ndarray | None, input_bits: int) -> int:
    """Accumulator width that no input in Q(input_bits) can overflow (docs/fixed-point.md)."""
    w = np.abs(np.asarray(w_q, dtype=np.int64))
    worst = w.sum(axis=1) * (1 << (input_bits - 1))
    if b_q is not None:
        worst = worst + np.abs(np.asarray(b_q, dtype=np.int64))
    return bits_for_signed(int(worst.max(initial=0)))


# ---- schedule of the ROM-streaming engines (rtl/dense_mac.v, rtl/sparse_mac.v) ----------------
PIPELINE_EDGES = 3  # ROM read, products, accumulate; output o completes at start + S_o + 3


@dataclass(frozen=True)
class RomSchedule:
    """The cycle contract of rtl/dense_mac.v and rtl/sparse_mac.v (their headers): inputs
    double-buffered, one ROM word per edge, `row_words[o]` words for output o (dense: NCH each),
    output o registered PIPELINE_EDGES edges after row o's last word. Idle engine, inputs one per
    cycle, out_ready high. Also the stage of the edge-by-edge timing model (compiler/hw)."""

    n_in: int
    row_words: tuple[int, ...]

    @property
    def n_out(self) -> int:
        return len(self.row_words)

    @property
    def words(self) -> int:
        """ROM words read per inference, one per edge: the compute cycles."""
        return sum(self.row_words)

    @property
    def latency(self) -> int:
        """First input accepted -> last output."""
        return self.n_in + self.words + PIPELINE_EDGES

    @property
    def interval(self) -> int:
        """Steady-state cycles between inferences (loading overlaps computing)."""
        return max(self.n_in, self.words)

    @property
    def tail(self) -> int:
        """Last input accepted -> last output."""
        return self.words + PIPELINE_EDGES + 1

    @property
    def output_span(self) -> int:
        """First -> last output of one vector."""
        return sum(self.row_words[1:])

    def output_edges(self, start: int) -> list[int]:
        """Edge of each output's handshake when computing starts at edge `start`."""
        ends = np.cumsum(self.row_words)
        return [start + int(e) + PIPELINE_EDGES for e in ends]


def dense_schedule(n_in: int, n_out: int, parallel: int) -> RomSchedule:
    """rtl/dense_mac.v: NCH = ceil(n_in / P) words per output."""
    return RomSchedule(n_in, (-(-n_in // parallel),) * n_out)
