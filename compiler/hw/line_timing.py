"""The timing model of the line-buffered engines (rtl/conv2d.v, rtl/pool2d.v), registered for
their stage type kernels.conv2d.LineGeometry: compiler/hw/timing.py replays it edge by edge.
"""

from __future__ import annotations

from compiler.hw.timing import register_model
from kernels.conv2d import LineGeometry


class LineEngine:
    """rtl/conv2d.v, rtl/pool2d.v: a ring of KH + STRIDE input rows, one read per edge (conv: of
    P_K kernel positions) over an output row once its rows are held, rows released at the row's
    last read.

    conv2d: read, products, accumulate, then a P_CO-beat output shift register (the pipeline
    stalls only while a finished group finds it full); pool2d: read, reduce, output register
    (the pipeline stalls while the output is held)."""

    def __init__(self, stage: LineGeometry):
        self.s = stage
        self.row_cycles = stage.row_cycles  # a property of the stage: read once, not every edge
        self.nrows = stage.ring_rows
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
        self.acc_done = self.acc_cg_last = False  # conv: finished group; pool: red_done
        self.valid = False  # pool's output register

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
        row_end = self.pos == self.row_cycles - 1
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
        if self.acc_done and out_free:  # load the shift register with a finished group
            self.pend = self.last_n if self.acc_cg_last else self.s.p_co
        elif self.pend and out_ready:
            self.pend -= 1
        if advance:
            self.acc_done, self.acc_cg_last = self.dot_valid and self.dot_last, self.dot_cg_last
            self.dot_valid, self.dot_last, self.dot_cg_last = self.rd_valid, self.rd_last, self.rd_cg_last
            self.rd_valid, self.rd_last, self.rd_cg_last = issue, grp_last, cg_last


register_model(LineGeometry, LineEngine, lambda s: s.n_in + s.compute_cycles + s.n_out)
