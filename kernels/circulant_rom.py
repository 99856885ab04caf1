"""ROM images and parameters for rtl/circulant_mac.v (layouts documented in the RTL header).

Spectra ROM (SM lanes, QS = ceil(Q / SM)): word (i*H + k)*QS + g, H = B/2 + 1, holds in lane u
(bits [u*2*SPEC_BITS +: 2*SPEC_BITS]) the weight spectrum bin k of block (i, j = g*SM + u):
real part in the lane's low SPEC_BITS, imaginary part above; lanes past Q hold 0. SM = 1:
word (i*H + k)*Q + j.
Twiddle ROM: word k = 0 .. B/2-1 holds cos_q[k] at [TW-1:0] and sin_q[k] at [2*TW-1:TW],
TW = twiddle_frac + 2. Bias ROM: N_OUT words (kernels.rom.vector_rom_words), zeros if none.
All values two's complement.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kernels.circulant_mac import CirculantLayer, twiddles
from kernels.rom import twos_complement, vector_rom_words, write_mem


def _pair_word(re: int, im: int, bits: int) -> int:
    return twos_complement(int(re), bits) | (twos_complement(int(im), bits) << bits)


def spectra_rom_words(layer: CirculantLayer, lanes: int = 1) -> list[int]:
    """Weight spectra in the engine's read order: block row i, bin k, group of `lanes` block
    columns j (one word; lane u = column g*lanes + u, zero past Q)."""
    return spectra_words(layer.spectra_re, layer.spectra_im, layer.spectrum_bits, lanes)


def spectra_words(re: np.ndarray, im: np.ndarray, bits: int, lanes: int = 1) -> list[int]:
    """spectra_rom_words of [p, q, H] arrays (the bit-flip audit probes its layout with it)."""
    re, im = np.asarray(re), np.asarray(im)
    p, q, h = re.shape
    groups = -(-q // lanes)
    pad = ((0, 0), (0, groups * lanes - q), (0, 0))
    order = (0, 3, 1, 2)  # [p, groups, lanes, H] -> [p, H, groups, lanes]
    re_w = np.pad(re, pad).reshape(p, groups, lanes, h).transpose(order).reshape(-1, lanes)
    im_w = np.pad(im, pad).reshape(p, groups, lanes, h).transpose(order).reshape(-1, lanes)
    lane_bits = 2 * bits
    return [
        sum(_pair_word(r, i, bits) << (u * lane_bits) for u, (r, i) in enumerate(zip(rs, ims)))
        for rs, ims in zip(re_w, im_w)
    ]


def twiddle_rom_words(block: int, twiddle_frac: int) -> list[int]:
    cos_q, sin_q = twiddles(block, twiddle_frac)
    return [_pair_word(c, s, twiddle_frac + 2) for c, s in zip(cos_q, sin_q)]


def bias_bits(layer: CirculantLayer) -> int:
    """Width of the bias ROM words: the bias fits in it, and it is never wider than acc_bits."""
    if layer.bias_q is None or not np.any(layer.bias_q):
        return 2
    return max(2, int(np.abs(layer.bias_q).max()).bit_length() + 1)


def bias_rom_words(layer: CirculantLayer) -> list[int]:
    bias = np.zeros(layer.n_out, dtype=np.int64) if layer.bias_q is None else layer.bias_q
    return vector_rom_words(bias, bias_bits(layer))


def circulant_rtl_parameters(
    layer: CirculantLayer,
    out_bits: int = 8,
    shift: int = 0,
    relu: bool = False,
    requant: bool = False,
    w_file: str = "spectra.mem",
    tw_file: str = "twiddles.mem",
    b_file: str = "bias.mem",
    butterflies: int = 1,
    lanes: int = 1,
) -> dict:
    """The Verilog parameters of rtl/circulant_mac.v for this layer (BF butterfly units, SM
    spectral lanes)."""
    return {
        "N_IN": layer.n_in,
        "N_OUT": layer.n_out,
        "B": layer.block,
        "BF": butterflies,
        "SM": lanes,
        "IN_BITS": layer.in_bits,
        "TW_FRAC": layer.twiddle_frac,
        "FFT_GUARD": layer.fft_guard,
        "SPEC_BITS": layer.spectrum_bits,
        "XS_BITS": layer.fft_bits,
        "DATA_BITS": max(layer.fft_bits, layer.ifft_bits),
        "MAC_BITS": layer.mac_bits,
        "SPEC_SHIFT": layer.spectral_shift,
        "IFFT_GUARD": layer.ifft_guard,
        "B_BITS": bias_bits(layer),
        "ACC_BITS": layer.acc_bits,
        "OUT_BITS": out_bits,
        "SHIFT": shift,
        "RELU": int(relu),
        "REQUANT": int(requant),
        "W_FILE": w_file,
        "TW_FILE": tw_file,
        "B_FILE": b_file,
    }


def write_circulant_roms(
    layer: CirculantLayer,
    folder,
    prefix: str = "",
    protection: str = "none",
    per_lane: bool = False,
    lanes: int = 1,
) -> dict[str, str]:
    """Write the three .mem files (each word as its `protection` codeword, kernels/rom_protect.py;
    `per_lane`: every real and imaginary part (cos, sin) of a spectra (twiddle) word its own
    code; `lanes`: the engine's SM spectra per word); return {"W_FILE", "TW_FILE", "B_FILE"} -> paths."""
    pair = 2 if per_lane else 1
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        key: folder / f"{prefix}{name}.mem"
        for key, name in (("W_FILE", "spectra"), ("TW_FILE", "twiddles"), ("B_FILE", "bias"))
    }
    words = spectra_rom_words(layer, lanes)
    write_mem(paths["W_FILE"], words, 2 * layer.spectrum_bits * lanes, protection, 2 * lanes if per_lane else 1)
    tw_bits = 2 * (layer.twiddle_frac + 2)
    write_mem(paths["TW_FILE"], twiddle_rom_words(layer.block, layer.twiddle_frac), tw_bits, protection, pair)
    write_mem(paths["B_FILE"], bias_rom_words(layer), bias_bits(layer), protection)
    return {k: str(v) for k, v in paths.items()}
