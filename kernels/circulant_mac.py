"""Block-circulant layers (CirCNN): structure, float FFT matvec, and the fixed-point FFT matvec.

Convention. A weight matrix [p*b, q*b] is a p x q grid of b x b circulant blocks; block (i, j)
is defined by one vector w[i, j] of length b:

    W[i*b + r, j*b + c] = w[i, j][(r - c) mod b]

so block (i, j) times x_j is the circular convolution w[i, j] (*) x_j, whose DFT is
DFT(w[i, j]) * DFT(x_j). A layer [n_out, n_in] whose sizes are not multiples of b is the
top-left corner of such a grid: inputs are zero-padded and padded outputs dropped.

The integer kernel `circulant_mac` is docs/fixed-point.md "Block-circulant layers (FFT)",
bit for bit; rtl/circulant_mac.v is tested against it. Imports numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from kernels.fixed import bits_for_signed

# Default precision of the fixed-point FFT (docs/fixed-point.md explains each choice).
TWIDDLE_FRAC = 16  # twiddles in Q(18, 16): an 18-bit DSP operand
SPECTRUM_BITS = 16  # weight-spectrum components, 16 bits each
FFT_EXTRA_GUARD = 6  # forward FFT guard bits = log2(b) + this
IFFT_GUARD = 2  # inverse FFT guard bits below the accumulator LSB
INT64_SAFE_BITS = 62  # widest product the numpy kernel computes exactly


# ------------------------------------------------------------------------------- structure
def block_grid(n_out: int, n_in: int, b: int) -> tuple[int, int]:
    """(p, q): block rows and columns covering an [n_out, n_in] matrix (zero-padded)."""
    return -(-n_out // b), -(-n_in // b)


def circulant_index(b: int) -> np.ndarray:
    """idx[r, c] = (r - c) mod b: which vector element sits at row r, column c of a block."""
    r = np.arange(b)
    return (r[:, None] - r[None, :]) % b


def circulant_expand(vectors: np.ndarray) -> np.ndarray:
    """Defining vectors [p, q, b] -> the dense block-circulant matrix [p*b, q*b]."""
    vectors = np.asarray(vectors)
    p, q, b = vectors.shape
    blocks = vectors[:, :, circulant_index(b)]  # [p, q, b(rows), b(cols)]
    return blocks.transpose(0, 2, 1, 3).reshape(p * b, q * b)


def circulant_project(dense: np.ndarray, b: int) -> np.ndarray:
    """Least-squares nearest block-circulant matrix: its defining vectors [p, q, b].

    Each vector element owns one wrapped diagonal of its block and appears nowhere else, so
    the squared error splits per diagonal and its minimizer is the mean of the diagonal's
    entries. Only entries inside [n_out, n_in] count (padding is not data); a diagonal with
    no entry inside (possible in a heavily cropped corner block) touches no real weight and
    gets 0.
    """
    dense = np.asarray(dense, dtype=np.float64)
    sums = diagonal_sums(dense, b)
    counts = diagonal_sums(np.ones_like(dense), b)
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)


def diagonal_sums(m: np.ndarray, b: int) -> np.ndarray:
    """[p, q, b]: the sum of the entries of an [n_out, n_in] matrix (zero-padded to whole
    blocks) on each wrapped block diagonal, element d of block (i, j) summing (r - c) mod b = d:
    the least-squares projection's numerator, and the gradient with respect to the defining
    vectors of a loss whose gradient with respect to the expanded matrix is m."""
    n_out, n_in = m.shape
    p, q = block_grid(n_out, n_in, b)
    padded = np.zeros((p * b, q * b))
    padded[:n_out, :n_in] = m
    blocks = padded.reshape(p, b, q, b).transpose(0, 2, 1, 3)  # [p, q, r, c]
    sums = np.zeros((p, q, b))
    idx = circulant_index(b)
    for d in range(b):
        sums[:, :, d] = blocks[:, :, idx == d].sum(axis=-1)
    return sums


def circulant_vectors(w: np.ndarray, b: int) -> np.ndarray:
    """Defining vectors of a matrix that is exactly block-circulant (e.g. integer weights).

    Raises ValueError if it is not: the integer engine must never run an approximation.
    """
    w = np.asarray(w)
    vectors = circulant_project(w, b)
    n_out, n_in = w.shape
    if not np.array_equal(circulant_expand(vectors)[:n_out, :n_in], w):
        raise ValueError(f"the [{n_out}, {n_in}] matrix is not block-circulant with block size {b}")
    return vectors.astype(w.dtype) if np.issubdtype(w.dtype, np.integer) else vectors


# ------------------------------------------------------------------------------- float FFT
def circulant_matvec_fft(vectors: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y = circulant_expand(vectors) @ x by FFT: y_i = irfft(sum_j rfft(w_ij) * rfft(x_j)).

    x: [q*b] or [N, q*b] (batched over samples) -> [p*b] or [N, p*b].
    """
    vectors = np.asarray(vectors)
    return circulant_matvec_spectra(circulant_spectra(vectors), x, vectors.shape[-1])


def circulant_spectra(vectors: np.ndarray) -> np.ndarray:
    """Weight spectra [b/2 + 1, q, p] (bin-major, contiguous) for circulant_matvec_spectra."""
    return np.ascontiguousarray(np.fft.rfft(np.asarray(vectors), axis=-1).transpose(2, 1, 0))


def circulant_matvec_spectra(spectra: np.ndarray, x: np.ndarray, b: int) -> np.ndarray:
    """The same product from precomputed weight spectra (as the hardware keeps them). The sum
    over input blocks runs in the frequency domain as one complex matrix product per bin
    (contiguous, so BLAS runs it), then one inverse FFT per output block. float32 stays float32."""
    _, q, p = spectra.shape
    x = np.asarray(x)
    single = x.ndim == 1
    xb = x.reshape(-1, q, b)
    x_spec = np.ascontiguousarray(np.fft.rfft(xb, axis=-1).transpose(2, 0, 1))  # [H, N, q]
    y = np.fft.irfft(np.matmul(x_spec, spectra), n=b, axis=0)  # [b, N, p]
    y = y.transpose(1, 2, 0).reshape(len(xb), p * b)
    return y[0] if single else y


# ------------------------------------------------------------------------------- fixed point
def rshift_round(v: np.ndarray, s: int) -> np.ndarray:
    """floor((v + 2**(s-1)) / 2**s) for s > 0 (round half up), v for s == 0, v * 2**-s for s < 0."""
    v = np.asarray(v, dtype=np.int64)
    if s > 0:
        return (v + (1 << (s - 1))) >> s
    return v << (-s)


def twiddles(b: int, frac: int) -> tuple[np.ndarray, np.ndarray]:
    """(cos_q, sin_q)[k] = round_half_even(cos|sin(2*pi*k/b) * 2**frac), k = 0 .. b/2 - 1."""
    angle = 2.0 * np.pi * np.arange(b // 2) / b
    cos_q = np.rint(np.cos(angle) * 2.0**frac).astype(np.int64)
    sin_q = np.rint(np.sin(angle) * 2.0**frac).astype(np.int64)
    return cos_q, sin_q


def bit_reverse(b: int) -> np.ndarray:
    """rev[n] = n with its log2(b) address bits reversed."""
    stages = _log2_exact(b)
    return np.array([int(format(n, f"0{stages}b")[::-1], 2) if stages else 0 for n in range(b)])


def fft_fixed(
    re: np.ndarray, im: np.ndarray, twiddle_frac: int, inverse: bool, bound_bits: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The fixed-point radix-2 FFT of docs/fixed-point.md, over the last axis (length b).

    Input in natural order (permuted to bit-reversed order first), decimation-in-time stages
    s = 1..log2(b), output in natural order. Each butterfly (a, c) with twiddle w:
        t  = rshift_round(w * c, twiddle_frac)     (real and imaginary part each)
        a' = rshift_round(a + t, 1),  c' = rshift_round(a - t, 1)
    w = cos - i sin (forward) or cos + i sin (inverse); the halving makes the result
    DFT(z) / b (forward) or the exact inverse DFT (inverse), up to rounding.
    With bound_bits, every stage's output is checked to fit that signed width.
    """
    b = re.shape[-1]
    stages = _log2_exact(b)
    cos_q, sin_q = twiddles(b, twiddle_frac)
    if not inverse:
        sin_q = -sin_q
    order = bit_reverse(b)
    re = np.asarray(re, dtype=np.int64)[..., order]
    im = np.asarray(im, dtype=np.int64)[..., order]
    batch = re.shape[:-1]
    for s in range(1, stages + 1):
        half = 1 << (s - 1)
        groups = b // (2 * half)
        wr = cos_q[np.arange(half) * groups]  # twiddle index j * b / 2**s
        wi = sin_q[np.arange(half) * groups]
        re = re.reshape(*batch, groups, 2, half)
        im = im.reshape(*batch, groups, 2, half)
        ar, ai, cr, ci = re[..., 0, :], im[..., 0, :], re[..., 1, :], im[..., 1, :]
        tr = rshift_round(wr * cr - wi * ci, twiddle_frac)
        ti = rshift_round(wr * ci + wi * cr, twiddle_frac)
        re = np.stack([rshift_round(ar + tr, 1), rshift_round(ar - tr, 1)], axis=-2).reshape(*batch, b)
        im = np.stack([rshift_round(ai + ti, 1), rshift_round(ai - ti, 1)], axis=-2).reshape(*batch, b)
        if bound_bits is not None:
            _check_fits(re, im, bound_bits, f"{'inverse' if inverse else 'forward'} FFT stage {s}")
    return re, im


@dataclass
class CirculantLayer:
    """Everything the integer engine of one block-circulant layer needs (see `plan_circulant`).

    Integers only: the weight spectra are computed once by the compiler and stored (ROM in
    hardware) and the twiddles are the fixed table `twiddles()` (the RTL's twiddle ROM).
    """

    block: int  # b, a power of two >= 2
    n_in: int
    n_out: int
    in_bits: int  # input x_q in Q(in_bits, fx)
    twiddle_frac: int  # T: twiddles in Q(T + 2, T)
    fft_guard: int  # G: the forward FFT works on x_q * 2**G
    spectrum_bits: int  # each weight-spectrum component is a signed spectrum_bits integer
    spectrum_frac: int  # E: spectra_q ~ DFT(w_q) * 2**E
    ifft_guard: int  # Gy: the inverse FFT output is acc * 2**Gy
    spectra_re: np.ndarray  # [p, q, b/2 + 1] int64, bins 0 .. b/2
    spectra_im: np.ndarray
    bias_q: np.ndarray | None  # [n_out] at the accumulator's scale, or None
    vectors_q: np.ndarray  # [p, q, b] the integer defining vectors (for error reports)
    # widths derived from worst-case bounds (no input in range can overflow them):
    fft_bits: int = 0  # forward FFT data and stored input spectra
    mac_bits: int = 0  # spectral accumulator sum_j W * X
    ifft_bits: int = 0  # inverse FFT data
    acc_bits: int = 0  # output accumulator, Q(acc_bits, fw + fx) as for dense
    bounds: dict = field(default_factory=dict)

    @property
    def stages(self) -> int:
        return _log2_exact(self.block)

    @property
    def grid(self) -> tuple[int, int]:
        return self.spectra_re.shape[0], self.spectra_re.shape[1]

    @property
    def spectral_shift(self) -> int:
        """R: the spectral accumulator is rounded by R bits (R < 0: shifted left) before the IFFT."""
        return self.fft_guard - self.stages + self.spectrum_frac - self.ifft_guard

    def attrs(self) -> dict:
        """The scalar parameters, JSON-serializable (for node attrs and reports)."""
        p, q = self.grid
        return {
            "block": self.block,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "p": p,
            "q": q,
            "in_bits": self.in_bits,
            "twiddle_frac": self.twiddle_frac,
            "fft_guard": self.fft_guard,
            "spectrum_bits": self.spectrum_bits,
            "spectrum_frac": self.spectrum_frac,
            "ifft_guard": self.ifft_guard,
            "spectral_shift": self.spectral_shift,
            "fft_bits": self.fft_bits,
            "mac_bits": self.mac_bits,
            "ifft_bits": self.ifft_bits,
            "acc_bits": self.acc_bits,
        }


def weight_spectra(vectors_q: np.ndarray, spectrum_bits: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Quantized DFT of each defining vector, bins 0..b/2: (re, im, E) with
    re + i im = round_half_even(DFT(w_q) * 2**E) and E the largest exponent that keeps every
    component within spectrum_bits signed bits."""
    spectra = np.fft.rfft(np.asarray(vectors_q, dtype=np.float64), axis=-1)
    b = vectors_q.shape[-1]
    spectra[..., 0] = spectra[..., 0].real  # bins 0 and b/2 of a real vector are real;
    spectra[..., b // 2] = spectra[..., b // 2].real  # drop float noise in their imaginary part
    peak = float(max(np.abs(spectra.real).max(initial=0.0), np.abs(spectra.imag).max(initial=0.0)))
    top = (1 << (spectrum_bits - 1)) - 1
    frac = spectrum_bits - 1 if peak == 0.0 else math.floor(math.log2((top + 0.5) / peak))
    while True:
        re = np.rint(spectra.real * 2.0**frac).astype(np.int64)
        im = np.rint(spectra.imag * 2.0**frac).astype(np.int64)
        if max(np.abs(re).max(initial=0), np.abs(im).max(initial=0)) <= top:
            return re, im, frac
        frac -= 1  # float rounding put a component one past the top: take one bit less


def plan_circulant(
    vectors_q: np.ndarray,
    bias_q: np.ndarray | None,
    n_in: int,
    n_out: int,
    in_bits: int,
    twiddle_frac: int = TWIDDLE_FRAC,
    spectrum_bits: int = SPECTRUM_BITS,
    fft_guard: int | None = None,
    ifft_guard: int = IFFT_GUARD,
) -> CirculantLayer:
    """Spectra, shifts and worst-case widths of one layer with integer vectors [p, q, b]."""
    vectors_q = np.asarray(vectors_q, dtype=np.int64)
    spectra_re, spectra_im, frac = weight_spectra(vectors_q, spectrum_bits)
    return rebuild_circulant(
        dict(
            n_in=n_in,
            n_out=n_out,
            in_bits=in_bits,
            twiddle_frac=twiddle_frac,
            fft_guard=_log2_exact(vectors_q.shape[-1]) + FFT_EXTRA_GUARD if fft_guard is None else fft_guard,
            spectrum_bits=spectrum_bits,
            spectrum_frac=frac,
            ifft_guard=ifft_guard,
        ),
        spectra_re,
        spectra_im,
        vectors_q,
        bias_q,
    )


def rebuild_circulant(
    attrs: dict, spectra_re: np.ndarray, spectra_im: np.ndarray, vectors_q: np.ndarray, bias_q: np.ndarray | None
) -> CirculantLayer:
    """A layer from stored integers (e.g. an integer graph's params and `CirculantLayer.attrs()`),
    without recomputing the spectra; the widths are derived again and, where `attrs` states
    them, must agree."""
    vectors_q = np.asarray(vectors_q, dtype=np.int64)
    p, q, b = vectors_q.shape
    if b < 2 or b & (b - 1):
        raise ValueError(f"a circulant block size must be a power of two >= 2, got {b}")
    if block_grid(attrs["n_out"], attrs["n_in"], b) != (p, q):
        raise ValueError(f"vectors {vectors_q.shape} do not cover a [{attrs['n_out']}, {attrs['n_in']}] layer")
    if np.shape(spectra_re) != (p, q, b // 2 + 1) or np.shape(spectra_im) != (p, q, b // 2 + 1):
        raise ValueError(f"spectra must be [{p}, {q}, {b // 2 + 1}]")
    for key in ("twiddle_frac", "spectrum_bits"):
        if attrs[key] < 2:
            raise ValueError(f"{key} must be >= 2, got {attrs[key]}")
    for key in ("fft_guard", "ifft_guard"):
        if attrs[key] < 0:
            raise ValueError(f"{key} must be >= 0, got {attrs[key]}")
    layer = CirculantLayer(
        block=b,
        n_in=attrs["n_in"],
        n_out=attrs["n_out"],
        in_bits=attrs["in_bits"],
        twiddle_frac=attrs["twiddle_frac"],
        fft_guard=attrs["fft_guard"],
        spectrum_bits=attrs["spectrum_bits"],
        spectrum_frac=attrs["spectrum_frac"],
        ifft_guard=attrs["ifft_guard"],
        spectra_re=np.asarray(spectra_re, dtype=np.int64),
        spectra_im=np.asarray(spectra_im, dtype=np.int64),
        bias_q=None if bias_q is None else np.asarray(bias_q, dtype=np.int64),
        vectors_q=vectors_q,
    )
    _derive_widths(layer)
    stated = {k: attrs[k] for k in ("fft_bits", "mac_bits", "ifft_bits", "acc_bits") if k in attrs}
    derived = {k: getattr(layer, k) for k in stated}
    if stated != derived:
        raise ValueError(f"stored widths {stated} differ from the derived {derived}")
    return layer


# ---- worst-case widths and error --------------------------------------------------------
# Bounds are on the modulus |z| of complex values (a component never exceeds it). The twiddle
# product's rounding adds at most sqrt(2)/2 before a butterfly's halving and the halving's
# round-half-up at most sqrt(2)/2 after it, so one stage maps a value bound r to
#     r * (1 + w_max) / 2 + 3*sqrt(2)/4                           (w_max = max |w_q| / 2**T)
# and an error bound e (computed minus exact-arithmetic FFT with exact twiddles) to
#     (e * w_max + e + dw * rho + sqrt(2)/2) / 2 + sqrt(2)/2      (dw = max |w_q / 2**T - w|)
# where rho bounds the exact values (an exact halving stage never grows them). A tiny relative
# margin covers evaluating the bounds in float.
_MARGIN = 1.0 + 1e-9
_HALF_DIAG = math.sqrt(2.0) / 2.0  # largest modulus of a complex rounding error


def _twiddle_quality(b: int, frac: int) -> tuple[float, float]:
    """(w_max, dw): the largest quantized twiddle modulus and the largest twiddle error."""
    cos_q, sin_q = twiddles(b, frac)
    w_q = (cos_q + 1j * sin_q) / 2.0**frac
    exact = np.exp(2j * np.pi * np.arange(b // 2) / b)
    return float(np.abs(w_q).max()) * _MARGIN, float(np.abs(w_q - exact).max()) * _MARGIN


def _fft_value_bound(r: float, stages: int, w_max: float) -> float:
    for _ in range(stages):
        r = r * (1.0 + w_max) / 2.0 + 3.0 * _HALF_DIAG / 2.0
    return r * _MARGIN


def _fft_error_bound(e: float, rho: float, stages: int, w_max: float, dw: float) -> float:
    for _ in range(stages):
        e = (e * (1.0 + w_max) + dw * rho + _HALF_DIAG) / 2.0 + _HALF_DIAG
    return e * _MARGIN


def _derive_widths(layer: CirculantLayer) -> None:
    b, stages = layer.block, layer.stages
    p, q = layer.grid
    w_max, dw = _twiddle_quality(b, layer.twiddle_frac)
    x_peak = float(1 << (layer.in_bits - 1)) * 2.0**layer.fft_guard  # |x_q * 2**G| <= this
    fwd = _fft_value_bound(x_peak, stages, w_max)
    fwd_err = _fft_error_bound(0.0, x_peak, stages, w_max, dw)
    spec_mod = np.sqrt(layer.spectra_re.astype(np.float64) ** 2 + layer.spectra_im.astype(np.float64) ** 2)
    spec_sum = spec_mod.sum(axis=1)  # [p, H]: sum_j |W_ij[k]|
    mac = fwd * spec_sum * _MARGIN  # |sum_j W X|
    mac_err = (fwd_err * spec_sum + q * _HALF_DIAG * x_peak) * _MARGIN  # incl. spectrum rounding
    r = layer.spectral_shift
    round_err = _HALF_DIAG if r > 0 else 0.0
    ifft_in = mac.max(axis=1) / 2.0**r + round_err  # [p], per block row
    ifft_in_err = mac_err.max(axis=1) / 2.0**r + round_err
    ifft_out = np.array([_fft_value_bound(v, stages, w_max) for v in ifft_in])
    ifft_err = np.array([_fft_error_bound(e, v, stages, w_max, dw) for e, v in zip(ifft_in_err, ifft_in)])
    gy = layer.ifft_guard
    half_lsb = 0.5 if gy > 0 else 0.0
    # |acc - bias| is bounded twice: by the IFFT's own value bound, and by the exact product's
    # bound (as for dense) plus the error bound. Both hold; the smaller decides the width.
    by_values = ifft_out / 2.0**gy + half_lsb
    error = ifft_err / 2.0**gy + half_lsb  # accumulator LSBs
    exact = float(1 << (layer.in_bits - 1)) * np.abs(layer.vectors_q).sum(axis=(1, 2))
    bias = np.zeros(p * b, dtype=np.int64)
    if layer.bias_q is not None:
        bias[: layer.n_out] = np.abs(layer.bias_q)
    out = np.ceil(np.minimum(by_values, exact + error)) + bias.reshape(p, b).max(axis=1)
    layer.fft_bits = bits_for_signed(math.ceil(fwd))
    layer.mac_bits = bits_for_signed(math.ceil(mac.max(initial=0.0)))
    layer.ifft_bits = bits_for_signed(math.ceil(ifft_out.max()))
    layer.acc_bits = bits_for_signed(int(out.max()))
    layer.bounds = {
        "fft": fwd,
        "mac": float(mac.max(initial=0.0)),
        "ifft": float(ifft_out.max()),
        "acc": int(out.max()),
        "error": float(error.max()),
    }
    widest = max(layer.ifft_bits + layer.twiddle_frac + 2, layer.fft_bits + layer.spectrum_bits) + 2
    if max(widest, layer.mac_bits) > INT64_SAFE_BITS:
        raise ValueError(
            f"circulant layer needs {max(widest, layer.mac_bits)}-bit intermediates; the "
            f"kernel computes exactly up to {INT64_SAFE_BITS} (use fewer guard/spectrum bits)"
        )


# ---- the integer kernel -------------------------------------------------------------------
def circulant_mac(x_q: np.ndarray, layer: CirculantLayer, check: bool = True) -> np.ndarray:
    """x_q [N, n_in] integers -> acc [N, n_out] int64 in Q(acc_bits, fw + fx), bit-exact with
    rtl/circulant_mac.v. With `check`, every intermediate is verified to fit its derived width."""
    x_q = np.asarray(x_q, dtype=np.int64)
    if x_q.ndim != 2 or x_q.shape[1] != layer.n_in:
        raise ValueError(f"x_q must be [N, {layer.n_in}], got {x_q.shape}")
    b = layer.block
    p, q = layer.grid
    n = x_q.shape[0]
    padded = np.zeros((n, q * b), dtype=np.int64)
    padded[:, : layer.n_in] = x_q
    blocks = padded.reshape(n, q, b) << layer.fft_guard
    x_re, x_im = fft_fixed(
        blocks, np.zeros_like(blocks), layer.twiddle_frac, inverse=False, bound_bits=layer.fft_bits if check else None
    )
    half = b // 2 + 1
    x_re, x_im = x_re[..., :half], x_im[..., :half]  # [N, q, H]
    w_re, w_im = layer.spectra_re, layer.spectra_im  # [p, q, H]
    acc_re = np.einsum("nqk,pqk->npk", x_re, w_re) - np.einsum("nqk,pqk->npk", x_im, w_im)
    acc_im = np.einsum("nqk,pqk->npk", x_re, w_im) + np.einsum("nqk,pqk->npk", x_im, w_re)
    if check:
        _check_fits(acc_re, acc_im, layer.mac_bits, "spectral accumulator")
    v_re, v_im = _hermitian(rshift_round(acc_re, layer.spectral_shift), rshift_round(acc_im, layer.spectral_shift), b)
    y_re, _ = fft_fixed(v_re, v_im, layer.twiddle_frac, inverse=True, bound_bits=layer.ifft_bits if check else None)
    acc = rshift_round(y_re.reshape(n, p * b), layer.ifft_guard)[:, : layer.n_out]
    if layer.bias_q is not None:
        acc = acc + layer.bias_q
    if check:
        _check_fits(acc, acc, layer.acc_bits, "accumulator")
    return acc


def _hermitian(re: np.ndarray, im: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Bins 0..b/2 -> the full b bins of a real signal's spectrum: bin b-k = conj(bin k)."""
    mirror = slice(b // 2 - 1, 0, -1)  # bins b/2-1 .. 1
    return (np.concatenate([re, re[..., mirror]], axis=-1), np.concatenate([im, -im[..., mirror]], axis=-1))


def circulant_exact(x_q: np.ndarray, layer: CirculantLayer) -> np.ndarray:
    """The exact product of the same integer inputs and weights (what `circulant_mac` approximates)."""
    w = circulant_expand(layer.vectors_q)[: layer.n_out, : layer.n_in]
    acc = np.asarray(x_q, dtype=np.int64) @ w.T
    return acc if layer.bias_q is None else acc + layer.bias_q


def circulant_error(x_q: np.ndarray, layer: CirculantLayer) -> dict:
    """Accuracy cost of the fixed-point FFT on inputs x_q, in accumulator LSBs (units of
    2**-(fw + fx)): max / mean absolute error against the exact integer product, the proven
    worst-case bound, and the largest exact |acc| for scale."""
    exact = circulant_exact(x_q, layer)
    err = np.abs(circulant_mac(x_q, layer) - exact)
    return {
        "max_abs": int(err.max(initial=0)),
        "mean_abs": float(err.mean()) if err.size else 0.0,
        "bound": layer.bounds["error"],
        "max_exact": int(np.abs(exact).max(initial=0)),
    }


def _check_fits(re: np.ndarray, im: np.ndarray, bits: int, where: str) -> None:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    for part in (re, im):
        if part.size and (int(part.min()) < lo or int(part.max()) > hi):
            raise OverflowError(f"{where}: a value outside {bits} signed bits (bound violated)")


def _log2_exact(b: int) -> int:
    if b < 1 or b & (b - 1):
        raise ValueError(f"block size must be a power of two, got {b}")
    return b.bit_length() - 1


# ---- schedule of rtl/circulant_mac.v ----------------------------------------------------------
@dataclass(frozen=True)
class CirculantSchedule:
    """The cycle terms of rtl/circulant_mac.v's header (L = log2 b, H = b/2 + 1, Q input and P
    output blocks, BF butterfly units, SM spectral lanes, QS = ceil(Q / SM)): after loading N_IN
    inputs, each input block costs b/BF (fill) + L*b/(2*BF) (butterflies) + ceil(H/BF) (store
    spectrum), each output block QS*H + 1 (spectral MACs) + L*b/(2*BF) (butterflies) + 1 (hand-over
    to the output buffer, once the block before has left it), its outputs leaving one per edge
    while the next block computes. BF = SM = 1 is the one-complex-multiplier engine (3 real
    multipliers). One input buffer, freed at the vector's last fill (`release` cycles into its
    compute), so the next vector loads while it computes. Also the stage of the edge-by-edge
    timing model (compiler/hw)."""

    n_in: int
    n_out: int
    block: int
    bf: int = 1  # butterfly units (BF): a power of two dividing block / 2
    sm: int = 1  # spectral lanes (SM): input blocks multiplied per MAC cycle, 1 .. Q

    def __post_init__(self):
        if self.block < 2 or self.block & (self.block - 1):
            raise ValueError(f"a circulant block size must be a power of two >= 2, got {self.block}")
        if self.bf < 1 or self.bf & (self.bf - 1) or (self.block // 2) % self.bf:
            raise ValueError(f"butterfly units must be a power of two dividing b/2 = {self.block // 2}, got {self.bf}")
        if not 1 <= self.sm <= self.q:
            raise ValueError(f"spectral lanes must be 1 .. Q = {self.q}, got {self.sm}")

    @property
    def stages(self) -> int:
        return self.block.bit_length() - 1

    @property
    def bins(self) -> int:
        return self.block // 2 + 1

    @property
    def p(self) -> int:
        return -(-self.n_out // self.block)

    @property
    def q(self) -> int:
        return -(-self.n_in // self.block)

    @property
    def lanes(self) -> int:
        """Complex multipliers: shared by the butterfly units and the spectral lanes."""
        return max(self.bf, self.sm)

    @property
    def multipliers(self) -> int:
        """Real multipliers: 3 per complex multiplier (Gauss's product, rtl/circulant_mac.v)."""
        return 3 * self.lanes

    @property
    def mac_groups(self) -> int:
        """QS: MAC cycles per bin (SM input blocks each)."""
        return -(-self.q // self.sm)

    @property
    def butterfly_cycles(self) -> int:
        """One FFT: L stages of b/(2*BF) cycles."""
        return self.stages * self.block // (2 * self.bf)

    @property
    def per_input_block(self) -> int:
        return self.block // self.bf + self.butterfly_cycles + -(-self.bins // self.bf)

    @property
    def per_out(self) -> int:
        """Cycles of one output block before its outputs."""
        return self.mac_groups * self.bins + 1 + self.butterfly_cycles

    @property
    def forward(self) -> int:
        return self.q * self.per_input_block

    @property
    def block_step(self) -> int:
        """Between the hand-overs of consecutive output blocks to the output buffer: the next
        block's compute (+1 hand-over cycle), or emitting this block's b outputs if longer."""
        return max(self.per_out + 1, self.block)

    @property
    def inverse(self) -> int:
        return self.p * self.per_out

    @property
    def compute_cycles(self) -> int:
        """End of loading (the compute start) -> last output."""
        return self.output_edge(self.n_out - 1) - self.n_in

    @property
    def restart(self) -> int:
        """Compute start -> the next vector's compute start, its input loaded: the last block's
        hand-over (the first block's waits for the last outputs of the vector before)."""
        last_block = self.n_out - (self.p - 1) * self.block
        return max(self.forward + self.per_out + 1, last_block) + (self.p - 1) * self.block_step

    @property
    def latency(self) -> int:
        return self.n_in + self.compute_cycles

    @property
    def release(self) -> int:
        """Compute start -> the edge that frees the input buffer (the last input block's last fill)."""
        return (self.q - 1) * self.per_input_block + self.block // self.bf

    @property
    def interval(self) -> int:
        """Between compute starts (and first inputs) in steady state, inputs one per cycle: its
        restart, or the buffer's release plus loading the next vector if longer."""
        return max(self.restart, self.release + self.n_in)

    @property
    def tail(self) -> int:
        return self.compute_cycles + 1

    def output_edge(self, o: int) -> int:
        """Cycles from the first input to output o's handshake, engine idle (inputs one per
        cycle, out_ready high): N_IN + Q*per_input_block + per_out + i*block_step + n + 2,
        i = o // b, n = o % b. A later vector: output_edge(o) - N_IN + 1 after its compute starts."""
        i, n = divmod(o, self.block)
        return self.n_in + self.forward + self.per_out + i * self.block_step + n + 2

    @property
    def output_span(self) -> int:
        """First -> last output of one vector."""
        return self.output_edge(self.n_out - 1) - self.output_edge(0)
