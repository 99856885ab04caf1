"""Block-circulant convolutions (docs/fixed-point.md "Block-circulant convolutions").

A groups=1 convolution W [C_out, C_in, kH, kW] is block-circulant in its channel dimensions
when, at every kernel position (ky, kx), W[:, :, ky, kx] is block-circulant with block size b in
the convention of kernels/circulant_mac.py:

    W[i*b + r, j*b + c, ky, kx] = v[i, j, (r - c) mod b, ky, kx]

with C_out and C_in zero-padded to p*b and q*b (p = ceil(C_out / b), q = ceil(C_in / b)); the
padded output channels are dropped, the padded input channels read zeros. The defining vectors
`v [p, q, b, kH, kW]` are what the hardware and model.int.onnx store (p*q*b*kH*kW integers
instead of C_out*C_in*kH*kW). The product itself is kernels.conv2d.conv2d's exact integer MAC
on the expanded weights: the structure changes the storage, not the arithmetic.

`fft_conv_multiplies` gives the alternative cost (FFTs across the channel blocks) for the
comparison in the docs and the benchmarks. Imports numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kernels.circulant_mac import block_grid, circulant_expand, circulant_project, circulant_vectors, diagonal_sums


def conv_circulant_project(w: np.ndarray, b: int) -> np.ndarray:
    """The least-squares nearest block-circulant weights, per kernel position (float):
    defining vectors [p, q, b, kH, kW] (kernels.circulant_mac.circulant_project)."""
    return _per_position(lambda m: circulant_project(m, b), np.asarray(w, dtype=np.float64))


def _per_position(fn, w: np.ndarray) -> np.ndarray:
    """fn ([C_out, C_in] -> [p, q, b]) at every kernel position of w: [p, q, b, kH, kW]."""
    kh, kw = w.shape[2:]
    per = [fn(w[:, :, ky, kx]) for ky in range(kh) for kx in range(kw)]
    return np.stack(per, axis=-1).reshape(*per[0].shape, kh, kw)


def conv_circulant_expand(v: np.ndarray, c_out: int, c_in: int) -> np.ndarray:
    """Defining vectors [p, q, b, kH, kW] -> the weights [C_out, C_in, kH, kW] (padding dropped)."""
    v = np.asarray(v)
    p, q, b, kh, kw = v.shape
    w = np.zeros((p * b, q * b, kh, kw), dtype=v.dtype)
    for ky in range(kh):
        for kx in range(kw):
            w[:, :, ky, kx] = circulant_expand(v[:, :, :, ky, kx])
    return w[:c_out, :c_in]


def conv_circulant_vectors(w: np.ndarray, b: int) -> np.ndarray:
    """The defining vectors [p, q, b, kH, kW] of weights that are exactly block-circulant at
    every kernel position (integer weights keep their dtype). ValueError naming the first
    kernel position where they are not: the engine must never store an approximation."""
    w = np.asarray(w)
    if w.ndim != 4:
        raise ValueError(f"weights of shape {w.shape} are not [C_out, C_in, kH, kW]")
    c_out, c_in, kh, kw = w.shape
    positions = []
    for ky in range(kh):
        for kx in range(kw):
            try:
                positions.append(circulant_vectors(w[:, :, ky, kx], b))
            except ValueError:
                raise ValueError(
                    f"the [{c_out}, {c_in}] weights at kernel position ({ky}, {kx}) are not "
                    f"block-circulant with block size {b}"
                ) from None
    return np.stack(positions, axis=-1).reshape(*positions[0].shape, kh, kw)


def conv_circulant_pullback(grad_w: np.ndarray, b: int) -> np.ndarray:
    """d loss / d v from d loss / d W [C_out, C_in, kH, kW]: each vector element's gradient is
    the sum over the weights it defines (W is linear in v)."""
    return _per_position(lambda m: diagonal_sums(m, b), np.asarray(grad_w, dtype=np.float64))


# ---- the alternative: FFTs across the channel blocks --------------------------------------------
@dataclass(frozen=True)
class CirculantConvMultiplies:
    """Real multiplies per output pixel of a block-circulant conv, computed directly (what
    rtl/conv2d.v does: one multiply per padded weight) or by FFTs across the channel blocks.

    FFT model (the fixed-point FFT of kernels/circulant_mac.py, as rtl/circulant_mac.v does it):
    a length-b transform is (b/2)*log2(b) radix-2 butterflies of one complex (4 real) multiply
    each; the forward FFTs of an input pixel's q channel blocks are shared by every output pixel
    that reads it (amortized: H*W / (H_out*W_out) input pixels per output pixel); each output
    pixel needs kH*kW*p*q*(b/2 + 1) complex spectral products (bins 0 .. b/2, accumulated over
    the kernel positions and input blocks in the frequency domain) and p inverse FFTs."""

    direct: int
    forward: float
    spectral: int
    inverse: int

    @property
    def fft(self) -> float:
        return self.forward + self.spectral + self.inverse

    @property
    def ratio(self) -> float:
        """direct / FFT: how many times fewer multiplies the FFT needs."""
        return self.direct / self.fft


def fft_conv_multiplies(in_shape, c_out: int, kernel, b: int, out_hw) -> CirculantConvMultiplies:
    """Real multiplies per output pixel for a [C_in, H, W] -> [C_out, H_out, W_out] conv with a
    kH x kW kernel, block-circulant with block size b (a power of two >= 2)."""
    c_in, h, w = (int(d) for d in in_shape)
    kh, kw = (int(k) for k in kernel)
    h_out, w_out = (int(d) for d in out_hw)
    p, q = block_grid(int(c_out), c_in, b)
    per_fft = 4 * (b // 2) * int(math.log2(b))
    return CirculantConvMultiplies(
        direct=kh * kw * p * b * q * b,
        forward=q * per_fft * (h * w) / (h_out * w_out),
        spectral=4 * kh * kw * p * q * (b // 2 + 1),
        inverse=p * per_fft,
    )
