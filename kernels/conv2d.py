"""Integer 2-D convolution (docs/fixed-point.md "Convolution and pooling").

Per sample, NCHW; weights [C_out, C_in, kH, kW]; groups = 1; zero padding
pads = (top, left, bottom, right); one stride for both axes:

    acc[co, y, x] = b[co] + sum_{ci, ky, kx} W[co, ci, ky, kx] * x_pad[ci, y*s + ky, x*s + kx]

exact in int64. Imports numpy only.
"""

import math
from dataclasses import dataclass

import numpy as np

from kernels.fixed import bits_for_signed


def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int) -> int:
    """Output length of one axis (floor mode, as torch/ONNX with ceil_mode=0)."""
    n = (size + pad_before + pad_after - kernel) // stride + 1
    if n < 1:
        raise ValueError(f"kernel {kernel} does not fit in {size} + padding")
    return n


def _pads4(pads) -> tuple[int, int, int, int]:
    if isinstance(pads, int):
        return (pads,) * 4
    t, l, b, r = (int(p) for p in pads)
    if min(t, l, b, r) < 0:
        raise ValueError("padding must be >= 0")
    return t, l, b, r


def pad_nchw(x: np.ndarray, pads, value: int = 0) -> np.ndarray:
    t, l, b, r = _pads4(pads)
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def conv2d(x_q: np.ndarray, w_q: np.ndarray, b_q: np.ndarray | None, stride: int = 1, pads=0) -> np.ndarray:
    """x_q [N, C_in, H, W] ints, w_q [C_out, C_in, kH, kW], b_q [C_out] or None
    -> [N, C_out, H_out, W_out] int64 accumulators."""
    x = np.asarray(x_q, dtype=np.int64)
    w = np.asarray(w_q, dtype=np.int64)
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
        raise ValueError(f"shapes {x.shape} and {w.shape} are not NCHW / [C_out, C_in, kH, kW]")
    if stride < 1:
        raise ValueError("stride must be >= 1")
    t, l, b, r = _pads4(pads)
    n, _, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    h_out = conv_output_size(h, kh, stride, t, b)
    w_out = conv_output_size(wd, kw, stride, l, r)
    xp = pad_nchw(x, (t, l, b, r))
    acc = np.zeros((n, c_out, h_out, w_out), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[
                :, :, ky : ky + stride * (h_out - 1) + 1 : stride, kx : kx + stride * (w_out - 1) + 1 : stride
            ]  # [N, C_in, H_out, W_out]
            acc += np.einsum("nchw,oc->nohw", patch, w[:, :, ky, kx])
    if b_q is not None:
        acc += np.asarray(b_q, dtype=np.int64).reshape(1, c_out, 1, 1)
    return acc


def conv_accumulator_bits(w_q: np.ndarray, b_q: np.ndarray | None, input_bits: int) -> int:
    """Accumulator width no input in Q(input_bits) can overflow: dense's rule over each
    output channel's C_in*kH*kW weights (padding only removes terms)."""
    w = np.abs(np.asarray(w_q, dtype=np.int64)).reshape(np.shape(w_q)[0], -1)
    worst = w.sum(axis=1) * (1 << (input_bits - 1))
    if b_q is not None:
        worst = worst + np.abs(np.asarray(b_q, dtype=np.int64))
    return bits_for_signed(int(worst.max(initial=0)))


# ---- schedule of the line-buffered engines (rtl/conv2d.v, rtl/pool2d.v) -----------------------
CONV_PIPELINE_EDGES = 3  # rtl/conv2d.v: beat p of a group completes at its last read + 4 + p


@dataclass(frozen=True)
class LineGeometry:
    """The read schedule of rtl/conv2d.v (kind "conv") and rtl/pool2d.v (kind "pool": c_in =
    c_out, p_co = 1, p_ci = c_in, p_k = 1), as their headers state it: a ring of KH + STRIDE
    input rows; over each output row, one read per edge (conv: of P_K kernel positions x P_CI
    channels for P_CO output channels) once the rows it needs are held. Also the stage of the
    edge-by-edge timing model (compiler/hw), which adds the back-pressure no closed form has.
    `depthwise` (conv only, rtl/conv2d.v DEPTHWISE = 1: c_in = c_out, p_ci = p_co): group g
    reads only its own channel word, so G = NKS."""

    kind: str
    c_in: int
    h: int
    w: int
    c_out: int
    kh: int
    kw: int
    stride: int
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    p_co: int = 1
    p_ci: int = 1
    p_k: int = 1  # kernel positions per read
    depthwise: bool = False  # group == c_in == c_out: each output channel sees its own channel

    def __post_init__(self):
        if self.depthwise and (self.kind != "conv" or self.c_in != self.c_out or self.p_ci != self.p_co):
            raise ValueError(
                f"a depthwise {self.kind} needs c_in = c_out and p_ci = p_co "
                f"(got {self.c_in}, {self.c_out}, {self.p_ci}, {self.p_co})"
            )

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
    def ring_rows(self) -> int:
        return self.kh + self.stride

    @property
    def kernel_steps(self) -> int:
        """NKS = ceil(KH*KW / P_K): reads that cover the kernel positions."""
        return math.ceil(self.kh * self.kw / self.p_k)

    @property
    def group(self) -> int:
        """G: reads per group of outputs (conv: NKS*NCW, depthwise NKS; pool: one output, KH*KW)."""
        words = math.ceil(self.c_in / self.p_ci) if self.kind == "conv" and not self.depthwise else 1
        return self.kernel_steps * words

    @property
    def multipliers(self) -> int:
        """conv: P_CO*P_CI*P_K (depthwise P_CO*P_K: one input lane per output channel)."""
        return self.p_co * self.p_k * (1 if self.depthwise else self.p_ci)

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
        """(lo, rel, hi) of output row oy: first held row, rows held after it are released up to
        `rel` at the row's last read, last row needed before its reads start."""
        t, h, s = self.pads[0], self.h, self.stride
        lo = min(max(oy * s - t, 0), h)
        last = oy == self.h_out - 1
        rel = h if last else min(max((oy + 1) * s - t, 0), h)
        hi = h - 1 if last else max(min(oy * s - t + self.kh - 1, h - 1), rel - 1)
        return lo, rel, hi


def conv_geometry(
    in_shape, c_out: int, kernel, stride: int, pads, p_co: int = 1, p_ci: int = 1, p_k: int = 1, depthwise: bool = False
) -> LineGeometry:
    c_in, h, w = (int(d) for d in in_shape)
    return LineGeometry(
        "conv",
        c_in,
        h,
        w,
        int(c_out),
        int(kernel[0]),
        int(kernel[1]),
        int(stride),
        _pads4(pads),
        int(p_co),
        int(p_ci),
        int(p_k),
        bool(depthwise),
    )
