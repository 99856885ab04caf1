import numpy as np
import pytest

from kernels.circulant_mac import (
    bit_reverse,
    block_grid,
    circulant_error,
    circulant_exact,
    circulant_expand,
    circulant_mac,
    circulant_matvec_fft,
    circulant_project,
    circulant_vectors,
    fft_fixed,
    plan_circulant,
    rshift_round,
    twiddles,
)
from kernels.circulant_rom import bias_rom_words, spectra_rom_words, twiddle_rom_words
from kernels.fixed import int_range


def random_layer(rng, b, n_in, n_out, bias=True, **plan):
    p, q = block_grid(n_out, n_in, b)
    vectors = rng.integers(-128, 128, size=(p, q, b))
    vectors[0, 0, 0] = -128
    bias_q = rng.integers(-5000, 5000, size=n_out) if bias else None
    return plan_circulant(vectors, bias_q, n_in, n_out, in_bits=8, **plan)


def extreme_inputs(rng, layer, n_random=20):
    """All-min, all-max, alternating, each output row's worst case, random."""
    lo, hi = int_range(layer.in_bits)
    w = circulant_expand(layer.vectors_q)[: layer.n_out, : layer.n_in]
    n = layer.n_in
    rows = [np.full(n, lo), np.full(n, hi), np.where(np.arange(n) % 2 == 0, lo, hi)]
    rows += [np.where(row >= 0, lo, hi) for row in w] + [np.where(row >= 0, hi, lo) for row in w]
    rows += list(rng.integers(lo, hi + 1, size=(n_random, n)))
    return np.array(rows, dtype=np.int64)


# ------------------------------------------------------------------------ structure
def test_expand_follows_the_documented_convention():
    vectors = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    dense = circulant_expand(vectors)
    assert dense.shape == (8, 12)
    for i, j, r, c in [(0, 0, 0, 0), (0, 2, 1, 3), (1, 1, 3, 0), (1, 2, 2, 2), (0, 1, 0, 1)]:
        assert dense[i * 4 + r, j * 4 + c] == vectors[i, j, (r - c) % 4]


@pytest.mark.parametrize("b", [2, 4, 8, 16, 32])
def test_float_fft_matvec_equals_dense_matmul(b):
    rng = np.random.default_rng(b)
    vectors = rng.normal(size=(3, 5, b))
    x = rng.normal(size=(7, 5 * b))
    dense = circulant_expand(vectors)
    np.testing.assert_allclose(circulant_matvec_fft(vectors, x), x @ dense.T, atol=1e-10)
    np.testing.assert_allclose(circulant_matvec_fft(vectors, x[2]), dense @ x[2], atol=1e-10)


@pytest.mark.parametrize("shape,b", [((16, 24), 8), ((13, 21), 8), ((10, 6), 4), ((5, 3), 4)])
def test_projection_is_the_least_squares_optimum(shape, b):
    """Against lstsq over the block-circulant parameters, padded corners included."""
    rng = np.random.default_rng(1)
    dense = rng.normal(size=shape)
    vectors = circulant_project(dense, b)
    n_out, n_in = shape
    p, q = block_grid(n_out, n_in, b)
    # Column t of the design matrix is the cropped expansion of the t-th unit parameter vector.
    basis = np.eye(p * q * b).reshape(-1, p, q, b)
    design = np.stack([circulant_expand(e)[:n_out, :n_in].ravel() for e in basis], axis=1)
    best, *_ = np.linalg.lstsq(design, dense.ravel(), rcond=None)
    fitted = circulant_expand(vectors)[:n_out, :n_in]
    np.testing.assert_allclose(fitted.ravel(), design @ best, atol=1e-10)
    touched = design.any(axis=0)  # a diagonal fully inside the padding is free: we pick 0
    np.testing.assert_allclose(vectors.ravel()[touched], best[touched], atol=1e-10)
    assert np.all(vectors.ravel()[~touched] == 0)


def test_projection_of_a_circulant_matrix_is_itself_and_vectors_are_exact():
    rng = np.random.default_rng(2)
    vectors = rng.integers(-128, 128, size=(2, 3, 4))
    dense = circulant_expand(vectors)[:7, :10]
    got = circulant_vectors(dense, 4)
    assert got.dtype == dense.dtype
    assert np.array_equal(circulant_expand(got)[:7, :10], dense)
    dense[0, 1] += 1
    with pytest.raises(ValueError, match="not block-circulant"):
        circulant_vectors(dense, 4)


# ------------------------------------------------------------------------ fixed point
def test_rshift_round_is_round_half_up_and_left_shift_for_negative():
    v = np.array([-7, -6, -5, -2, -1, 0, 1, 2, 5, 6, 7])
    assert list(rshift_round(v, 2)) == list(np.floor((v + 2) / 4).astype(int))
    assert list(rshift_round(np.array([-6, 6]), 2)) == [-1, 2]  # -1.5 -> -1, 1.5 -> 2
    assert list(rshift_round(v, -3)) == list(v * 8)
    assert list(rshift_round(v, 0)) == list(v)


def test_twiddles_and_bit_reversal():
    cos_q, sin_q = twiddles(8, 16)
    assert list(cos_q) == [65536, 46341, 0, -46341]
    assert list(sin_q) == [0, 46341, 65536, 46341]
    assert list(bit_reverse(8)) == [0, 4, 2, 6, 1, 5, 3, 7]
    assert list(bit_reverse(2)) == [0, 1]


def reference_fft(re, im, frac, inverse):
    """The documented FFT written out butterfly by butterfly with Python integers, addressing
    the buffer as the RTL does (top = m with a 0 inserted at bit s-1, bottom = top + half)."""
    b = len(re)
    stages = b.bit_length() - 1
    cos_q, sin_q = (list(map(int, t)) for t in twiddles(b, frac))
    rev = bit_reverse(b)
    buf = [[int(re[rev[n]]), int(im[rev[n]])] for n in range(b)]
    rnd = lambda v, s: (v + (1 << (s - 1))) >> s
    for st in range(stages):
        half = 1 << st
        for m in range(b // 2):
            top = ((m >> st) << (st + 1)) | (m & (half - 1))
            bot = top + half
            k = (m & (half - 1)) << (stages - 1 - st)
            wr, wi = cos_q[k], sin_q[k] if inverse else -sin_q[k]
            cr, ci = buf[bot]
            tr, ti = rnd(wr * cr - wi * ci, frac), rnd(wr * ci + wi * cr, frac)
            ar, ai = buf[top]
            buf[top] = [rnd(ar + tr, 1), rnd(ai + ti, 1)]
            buf[bot] = [rnd(ar - tr, 1), rnd(ai - ti, 1)]
    return buf


def reference_circulant(x, layer):
    """docs/fixed-point.md "Block-circulant layers (FFT)" step by step, one vector at a time."""
    b, half = layer.block, layer.block // 2 + 1
    p, q = layer.grid
    rnd = lambda v, s: (v + (1 << (s - 1))) >> s if s > 0 else v << -s
    x = list(map(int, x)) + [0] * (q * b - layer.n_in)
    spectra = [
        reference_fft([v << layer.fft_guard for v in x[j * b : (j + 1) * b]], [0] * b, layer.twiddle_frac, False)[:half]
        for j in range(q)
    ]
    out = []
    for i in range(p):
        v = []
        for k in range(half):
            acc_r = sum(
                int(layer.spectra_re[i, j, k]) * spectra[j][k][0] - int(layer.spectra_im[i, j, k]) * spectra[j][k][1]
                for j in range(q)
            )
            acc_i = sum(
                int(layer.spectra_re[i, j, k]) * spectra[j][k][1] + int(layer.spectra_im[i, j, k]) * spectra[j][k][0]
                for j in range(q)
            )
            v.append((rnd(acc_r, layer.spectral_shift), rnd(acc_i, layer.spectral_shift)))
        full = v + [(r, -m) for r, m in reversed(v[1 : b // 2])]
        y = reference_fft([r for r, _ in full], [m for _, m in full], layer.twiddle_frac, True)
        out += [rnd(r, layer.ifft_guard) if layer.ifft_guard else r for r, _ in y]
    acc = np.array(out[: layer.n_out], dtype=np.int64)
    return acc if layer.bias_q is None else acc + layer.bias_q


@pytest.mark.parametrize(
    "b,n_in,n_out,plan",
    [
        (2, 6, 4, {}),
        (4, 10, 7, {}),
        (8, 16, 16, {}),
        (8, 20, 13, dict(spectrum_bits=10, fft_guard=3)),
        (16, 32, 16, dict(ifft_guard=0, twiddle_frac=12)),
    ],
)
def test_kernel_matches_step_by_step_reference(b, n_in, n_out, plan):
    rng = np.random.default_rng(b + n_in)
    layer = random_layer(rng, b, n_in, n_out, bias=n_in != 32, **plan)
    x = extreme_inputs(rng, layer, n_random=10)
    got = circulant_mac(x, layer)
    want = np.array([reference_circulant(row, layer) for row in x])
    assert np.array_equal(got, want)


@pytest.mark.parametrize("b", [2, 4, 8, 16, 32, 64])
def test_no_intermediate_overflows_its_derived_width(b):
    """check=True verifies every stage against the widths the bounds gave, at the extremes."""
    rng = np.random.default_rng(b)
    layer = random_layer(rng, b, 2 * b, 2 * b)
    layer_all_max = plan_circulant(np.full_like(layer.vectors_q, 127), None, 2 * b, 2 * b, in_bits=8)
    for lay in (layer, layer_all_max):
        circulant_mac(extreme_inputs(rng, lay), lay, check=True)


def test_width_check_can_fail():
    rng = np.random.default_rng(0)
    layer = random_layer(rng, 8, 16, 8)
    x = extreme_inputs(rng, layer)
    layer.fft_bits = 12
    with pytest.raises(OverflowError, match="forward FFT"):
        circulant_mac(x, layer)


def test_accumulator_format_matches_dense_for_random_weights():
    """The error bound keeps acc_bits at the dense layer's width (or one more), not log2(b) more."""
    from kernels.dense_mac import dense_accumulator_bits

    rng = np.random.default_rng(3)
    for b in (4, 8, 16, 32):
        layer = random_layer(rng, b, 128, 64)
        dense_bits = dense_accumulator_bits(circulant_expand(layer.vectors_q)[:64, :128], layer.bias_q, 8)
        assert dense_bits <= layer.acc_bits <= dense_bits + 1


@pytest.mark.parametrize("b", [2, 4, 8, 16, 32])
def test_fixed_point_error_is_small_and_within_its_bound(b):
    rng = np.random.default_rng(10 + b)
    layer = random_layer(rng, b, 128, 64)
    x = extreme_inputs(rng, layer)
    report = circulant_error(x, layer)
    assert np.array_equal(
        circulant_exact(x[:1], layer)[0], circulant_expand(layer.vectors_q)[:64, :128] @ x[0] + layer.bias_q
    )
    assert report["max_abs"] <= report["bound"]
    if b <= 4:  # twiddles are 0 and +-1 and spectra are Gaussian integers: exact
        assert report["max_abs"] == 0
    assert report["max_abs"] <= 1e-4 * report["max_exact"]


def test_forward_fft_approximates_the_scaled_dft():
    rng = np.random.default_rng(5)
    z = rng.integers(-128, 128, size=(4, 16)) << 10
    re, im = fft_fixed(z, np.zeros_like(z), 16, inverse=False)
    want = np.fft.fft(z, axis=-1) / 16
    assert np.abs(re - want.real).max() <= 4 and np.abs(im - want.imag).max() <= 4
    back_re, _ = fft_fixed(re, im, 16, inverse=True)
    assert np.abs(back_re - np.fft.ifft(re + 1j * im, axis=-1).real).max() <= 4


# ------------------------------------------------------------------------ ROM images
def test_rom_words_decode_to_the_layer():
    rng = np.random.default_rng(4)
    layer = random_layer(rng, 4, 12, 7)
    p, q = layer.grid
    words = spectra_rom_words(layer)
    sb = layer.spectrum_bits
    signed = lambda v, bits: v - (1 << bits) if v >> (bits - 1) else v
    for i in range(p):
        for k in range(3):
            for j in range(q):
                word = words[(i * 3 + k) * q + j]
                assert signed(word & ((1 << sb) - 1), sb) == layer.spectra_re[i, j, k]
                assert signed(word >> sb, sb) == layer.spectra_im[i, j, k]
    tw = twiddle_rom_words(8, 16)
    assert [signed(w & 0x3FFFF, 18) for w in tw] == list(twiddles(8, 16)[0])
    assert [signed(w >> 18, 18) for w in tw] == list(twiddles(8, 16)[1])
    assert len(bias_rom_words(layer)) == 7


def test_rebuild_from_stored_integers_gives_the_same_layer():
    from kernels.circulant_mac import rebuild_circulant

    rng = np.random.default_rng(6)
    layer = random_layer(rng, 8, 20, 13)
    again = rebuild_circulant(layer.attrs(), layer.spectra_re, layer.spectra_im, layer.vectors_q, layer.bias_q)
    assert again.attrs() == layer.attrs()
    x = extreme_inputs(rng, layer)
    assert np.array_equal(circulant_mac(x, again), circulant_mac(x, layer))
    with pytest.raises(ValueError, match="differ from the derived"):
        rebuild_circulant(
            dict(layer.attrs(), acc_bits=layer.acc_bits - 1),
            layer.spectra_re,
            layer.spectra_im,
            layer.vectors_q,
            layer.bias_q,
        )
    with pytest.raises(ValueError, match="fft_guard must be >= 0"):
        plan_circulant(layer.vectors_q, None, 20, 13, in_bits=8, fft_guard=-1)
