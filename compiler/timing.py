"""Edge-by-edge model of a generated design's stream handshakes: its cycles without simulating it.

The ROM-streaming engines (dense, sparse, circulant) have closed-form latency and interval
(compiler/cost.py). The line-buffered engines (rtl/conv2d.v, rtl/pool2d.v) have none: they load
while they compute, their in_ready depends on when rows are released, and back-pressure from a
slower engine downstream stalls them. So for a design with such engines the cost model replays
the documented control of every engine, one clock edge at a time: counters, valid bits and
buffer occupancy, never data. Each class below mirrors its module's control registers (names
as in the RTL); the design runs as sim/test_design.py drives it (inputs back to back, out_ready
high), which is what `mpc simulate` measures.

A stage is a frozen description (hashable, so runs are cached); `run_stream` chains their
models, ending in rtl/argmax.v.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from kernels.conv2d import conv_output_size


# ------------------------------------------------------------------------ stage descriptions
@dataclass(frozen=True)
class RomStage:
    """dense_mac / sparse_mac: `row_words[o]` ROM words for output o (dense: NCH each)."""
    n_in: int
    row_words: tuple[int, ...]

    @property
    def n_out(self) -> int:
        return len(self.row_words)


@dataclass(frozen=True)
class CirculantStage:
    """circulant_mac: load, `forward` cycles of input FFTs, then per output block `per_out`
    cycles before its outputs (compiler.cost.circulant_schedule)."""
    n_in: int
    n_out: int
    block: int
    forward: int
    per_out: int


@dataclass(frozen=True)
class LineStage:
    """conv2d (kind "conv") or pool2d (kind "pool": c_in = c_out, p_co = 1, p_ci = c_in, p_k = 1)."""
    kind: str
    c_in: int
    h: int
    w: int
    c_out: int
    kh: int
    kw: int
    stride: int
    pads: tuple[int, int, int, int]     # top, left, bottom, right
    p_co: int = 1
    p_ci: int = 1
    p_k: int = 1                        # kernel positions per read

    @property
    def h_out(self) -> int:
        return conv_output_size(self.h, self.kh, self.stride, self.pads[0], self.pads[2])

    @property
    def w_out(self) -> int:
        return conv_output_size(self.w, self.kw, self.stride, self.pads[1], self.pads[3])

    @property
    def n_in(self) -> int:
        return self.c_in * self.h * self.w

    @property
    def n_out(self) -> int:
        return self.c_out * self.h_out * self.w_out

    @property
    def group(self) -> int:
        """G: reads per group of outputs (conv: ceil(KH*KW/P_K)*NCW; pool: one output, KH*KW)."""
        words = math.ceil(self.c_in / self.p_ci) if self.kind == "conv" else 1
        return math.ceil(self.kh * self.kw / self.p_k) * words

    @property
    def groups(self) -> int:
        """NCG: output-channel groups per pixel (pool: one per channel)."""
        return math.ceil(self.c_out / self.p_co) if self.kind == "conv" else self.c_out

    @property
    def row_cycles(self) -> int:
        return self.w_out * self.groups * self.group

    @property
    def compute_cycles(self) -> int:
        """Reads per frame, one per edge, no bubbles."""
        return self.h_out * self.row_cycles

    def rows(self, oy: int) -> tuple[int, int, int]:
        """(lo, rel, hi) of output row oy: the RTL headers' first held row, rows held after it, last row needed."""
        t, h, s = self.pads[0], self.h, self.stride
        lo = min(max(oy * s - t, 0), h)
        last = oy == self.h_out - 1
        rel = h if last else min(max((oy + 1) * s - t, 0), h)
        hi = h - 1 if last else max(min(oy * s - t + self.kh - 1, h - 1), rel - 1)
        return lo, rel, hi


# ------------------------------------------------------------------------ engine models
class _Argmax:
    """rtl/argmax.v: in_ready = !full; the beat leaves the edge after the N-th logit."""

    def __init__(self, n: int):
        self.n, self.count, self.full = n, 0, False

    def in_ready(self) -> bool:
        return not self.full

    def out_valid(self) -> bool:
        return self.full

    def step(self, accept: bool, out_ready: bool) -> None:
        if accept:
            self.count += 1
            if self.count == self.n:
                self.count, self.full = 0, True
        elif self.full and out_ready:
            self.full = False


class _RomEngine:
    """rtl/dense_mac.v, rtl/sparse_mac.v: two input buffers, one ROM word per edge, four pipeline
    edges (read, products, accumulate, engine_output), the pipeline frozen while the output is held."""

    def __init__(self, stage: RomStage):
        self.n_in = stage.n_in
        self.words = sum(stage.row_words)
        ends = [sum(stage.row_words[:o + 1]) - 1 for o in range(stage.n_out)]
        self.row_last = [False] * self.words
        for e in ends:
            self.row_last[e] = True
        self.full = [False, False]
        self.load_buf = self.read_buf = self.load_idx = self.issue_idx = 0
        self.rd_valid = self.rd_last = self.dot_valid = self.dot_last = self.acc_done = self.valid = False

    def in_ready(self) -> bool:
        return not self.full[self.load_buf]

    def out_valid(self) -> bool:
        return self.valid

    def step(self, accept: bool, out_ready: bool) -> None:
        advance = not self.valid or out_ready
        issue = self.full[self.read_buf] and advance
        row_last = self.row_last[self.issue_idx]
        if accept:
            self.load_idx += 1
            if self.load_idx == self.n_in:
                self.load_idx, self.full[self.load_buf], self.load_buf = 0, True, 1 - self.load_buf
        if issue:
            self.issue_idx += 1
            if self.issue_idx == self.words:
                self.issue_idx, self.full[self.read_buf], self.read_buf = 0, False, 1 - self.read_buf
        if advance:
            self.valid, self.acc_done = self.acc_done, self.dot_valid and self.dot_last
            self.dot_valid, self.dot_last = self.rd_valid, self.rd_last
            self.rd_valid, self.rd_last = issue, row_last


class _CirculantEngine:
    """rtl/circulant_mac.v: S_LOAD (in_ready) for N_IN inputs, then fixed-length FFT/MAC states;
    only S_OUT waits for `advance`."""

    def __init__(self, stage: CirculantStage):
        self.s = stage
        self.phase, self.count, self.countdown, self.block, self.n, self.valid = "load", 0, 0, 0, 0, False

    def in_ready(self) -> bool:
        return self.phase == "load"

    def out_valid(self) -> bool:
        return self.valid

    def step(self, accept: bool, out_ready: bool) -> None:
        s = self.s
        advance = not self.valid or out_ready
        if advance:
            self.valid = self.phase == "out"
        if self.phase == "load" and accept:
            self.count += 1
            if self.count == s.n_in:
                self.count, self.phase, self.countdown = 0, "busy", s.forward + s.per_out
        elif self.phase == "busy":
            self.countdown -= 1
            if self.countdown == 0:
                self.phase = "out"
        elif self.phase == "out" and advance:
            self.n += 1
            if self.n == s.block or self.block * s.block + self.n == s.n_out:
                self.n, self.block = 0, self.block + 1
                if self.block * s.block >= s.n_out:
                    self.block, self.phase = 0, "load"
                else:
                    self.phase, self.countdown = "busy", s.per_out


class _LineEngine:
    """rtl/conv2d.v, rtl/pool2d.v: a ring of KH + STRIDE input rows, one read per edge (conv: of
    P_K kernel positions) over an output row once its rows are held, rows released at the row's
    last read.

    conv2d: read, products, accumulate, then a P_CO-beat output shift register (the pipeline
    stalls only while a finished group finds it full); pool2d: read, reduce, output register
    (the pipeline stalls while the output is held)."""

    def __init__(self, stage: LineStage):
        self.s = stage
        self.nrows = stage.kh + stage.stride
        self.row_elems = stage.w * stage.c_in
        self.need, self.release = [], []
        for oy in range(stage.h_out):
            lo, rel, hi = stage.rows(oy)
            self.need.append(hi - lo + 1)
            self.release.append(rel - lo)
        g, ncg = stage.group, stage.groups
        # per read position within an output row: last read of a group / of a pixel's groups
        self.grp_last = [p % g == g - 1 for p in range(stage.row_cycles)]
        self.cg_last = [(p // g) % ncg == ncg - 1 for p in range(stage.row_cycles)]
        self.last_n = stage.c_out - (ncg - 1) * stage.p_co
        self.ready = self.load_elem = self.oy = self.pos = self.pend = 0
        self.running = False
        self.rd_valid = self.rd_last = self.rd_cg_last = False
        self.dot_valid = self.dot_last = self.dot_cg_last = False
        self.acc_done = self.acc_cg_last = False      # conv: finished group; pool: red_done
        self.valid = False                            # pool's output register

    def in_ready(self) -> bool:
        return self.ready < self.nrows

    def out_valid(self) -> bool:
        return self.pend != 0 if self.s.kind == "conv" else self.valid

    def step(self, accept: bool, out_ready: bool) -> None:
        if self.s.kind == "conv":
            out_free = self.pend == 0 or (self.pend == 1 and out_ready)
            advance = not self.acc_done or out_free
        else:
            advance = not self.valid or out_ready
        issue = (self.running or self.ready >= self.need[self.oy]) and advance
        row_end = self.pos == self.s.row_cycles - 1
        row_done = accept and self.load_elem == self.row_elems - 1
        self.ready += int(row_done) - (self.release[self.oy] if issue and row_end else 0)
        if accept:
            self.load_elem = 0 if row_done else self.load_elem + 1
        grp_last, cg_last = self.grp_last[self.pos], self.cg_last[self.pos]
        if issue:
            self.running = not row_end
            self.pos = 0 if row_end else self.pos + 1
            if row_end:
                self.oy = (self.oy + 1) % self.s.h_out
        if self.s.kind == "conv":
            self._conv_pipeline(advance, issue, grp_last, cg_last, out_ready)
        elif advance:
            self.valid, self.acc_done = self.acc_done, self.rd_valid and self.rd_last
            self.rd_valid, self.rd_last = issue, grp_last

    def _conv_pipeline(self, advance, issue, grp_last, cg_last, out_ready) -> None:
        out_free = self.pend == 0 or (self.pend == 1 and out_ready)
        if self.acc_done and out_free:       # load the shift register with a finished group
            self.pend = self.last_n if self.acc_cg_last else self.s.p_co
        elif self.pend and out_ready:
            self.pend -= 1
        if advance:
            self.acc_done, self.acc_cg_last = self.dot_valid and self.dot_last, self.dot_cg_last
            self.dot_valid, self.dot_last, self.dot_cg_last = self.rd_valid, self.rd_last, self.rd_cg_last
            self.rd_valid, self.rd_last, self.rd_cg_last = issue, grp_last, cg_last


def _work(stage) -> int:
    """Edges one frame keeps an engine busy: loading, computing, emitting (an upper bound)."""
    if isinstance(stage, RomStage):
        compute = sum(stage.row_words)
    elif isinstance(stage, CirculantStage):
        compute = stage.forward + math.ceil(stage.n_out / stage.block) * stage.per_out
    else:
        compute = stage.row_cycles * stage.h_out
    return stage.n_in + compute + stage.n_out


def _model(stage):
    if isinstance(stage, RomStage):
        return _RomEngine(stage)
    if isinstance(stage, CirculantStage):
        return _CirculantEngine(stage)
    return _LineEngine(stage)


# ------------------------------------------------------------------------ the chain
@dataclass(frozen=True)
class StreamRun:
    first_inputs: tuple[int, ...]   # edge at which each frame's first input was accepted
    last_inputs: tuple[int, ...]    # ... its last input
    first_outputs: tuple[int, ...]  # edge of each frame's first output handshake
    outputs: tuple[int, ...]        # ... its last (with argmax: the one output beat)

    @property
    def latency(self) -> int:
        """Frame 0: first input accepted -> its output, as sim/test_design.py measures it."""
        return self.outputs[0] - self.first_inputs[0]


def stream_edges(stages, n_classes: int | None, frames: int) -> tuple[list[int], list[int]]:
    """Stream `frames` frames back to back through the engines (then rtl/argmax.v collecting
    `n_classes` logits, unless None), out_ready high: the edges of every input handshake and
    of every output handshake of the last engine (with argmax: one per frame)."""
    models = [_model(s) for s in stages]
    if n_classes is not None:
        models.append(_Argmax(n_classes))
    per_frame_out = 1 if n_classes is not None else stages[-1].n_out
    total_in, total_out = stages[0].n_in * frames, per_frame_out * frames
    # Even with no overlap at all each frame passes every engine in its own work: beyond that, hung.
    limit = 2 * frames * (sum(_work(s) for s in stages) + 2 * (n_classes or 0) + 16 * len(stages)) + 64
    accepted, outputs = [], []
    edge = 0
    while len(outputs) < total_out:
        edge += 1
        if edge > limit:
            raise RuntimeError(f"timing model: {len(outputs)} of {total_out} outputs after {limit} edges "
                               "(a hung pipeline)")
        readies = [m.in_ready() for m in models] + [True]
        valids = [len(accepted) < total_in] + [m.out_valid() for m in models]
        if valids[0] and readies[0]:
            accepted.append(edge)
        if valids[-1]:
            outputs.append(edge)
        for k, m in enumerate(models):
            m.step(valids[k] and readies[k], readies[k + 1])
    return accepted, outputs


@functools.lru_cache(maxsize=64)
def run_stream(stages: tuple, n_classes: int | None, frames: int) -> StreamRun:
    """`stream_edges`, summarized per frame."""
    accepted, outputs = stream_edges(stages, n_classes, frames)
    n_in, n_out = len(accepted) // frames, len(outputs) // frames
    return StreamRun(tuple(accepted[::n_in]), tuple(accepted[n_in - 1::n_in]), tuple(outputs[::n_out]),
                     tuple(outputs[n_out - 1::n_out]))


STEADY_FRAMES = 8   # frames streamed back to back to reach a design's steady state


def steady_interval(run: StreamRun) -> int:
    """Cycles between the last two outputs: the steady state once the buffers have filled."""
    return run.outputs[-1] - run.outputs[-2]
