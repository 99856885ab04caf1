"""ROM images for rtl/conv2d.v ($readmemh files, written with kernels.rom.write_mem).

Weight ROM: NCG = ceil(C_out / P_CO) output-channel groups, NCW = ceil(C_in / P_CI) channel
words, NKS = ceil(kH*kW / P_K) kernel steps of P_K positions each (positions in raster order
k = ky*kW + kx). Word (g*NKS + ks)*NCW + cw packs W[g*P_CO + p, cw*P_CI + l, ky, kx] of position
k = ks*P_K + j at bits [((p*P_K + j)*P_CI + l)*bits +: bits], two's complement, zero where the
channel is past C_out or C_in or the position past kH*kW (a partial last step).
Bias ROM: word g packs b[g*P_CO + p] at bits [p*bits +: bits], zero past C_out.

Block-circulant weight ROM (CIRC_B = b > 0; kernels/circulant_conv.py, P_CO and P_CI multiples
of b, PB = P_CO / b, QB = P_CI / b): the same words, each holding the PB*P_K*QB defining
vectors its P_CO x P_CI x P_K weights come from instead of the weights: word
(g*NKS + ks)*NCW + cw packs element d of v[g*PB + pb, cw*QB + qb, :, ky, kx] of position
k = ks*P_K + j at bits [(((pb*P_K + j)*QB + qb)*b + d)*bits +: bits], zero past p, q or kH*kW.
Weight lane (co*P_K + j)*P_CI + l of the dense word is element ((co - l) mod b) of vector
((co/b)*P_K + j)*QB + l/b: wiring (`expand_circulant_word`, rtl/conv2d.v).

Depthwise weight ROM (DEPTHWISE = 1: group == C, weights [C, 1, kH, kW], P_CI = P_CO): group g
reads only its own channel word, so NCG*NKS words of P_CO*P_K weights: word g*NKS + ks packs
W[g*P_CO + p, 0, ky, kx] of position k = ks*P_K + j at bits [(p*P_K + j)*bits +: bits], zero
past C or kH*kW. Lane (co*P_K + j)*P_CO + l of the dense word is weight co*P_K + j where l == co,
zero elsewhere: wiring (`expand_depthwise_word`, rtl/depthwise_word_expand.v).
"""

import numpy as np

from kernels.rom import twos_complement, write_mem

__all__ = [
    "conv_weight_rom_words",
    "conv_bias_rom_words",
    "circulant_conv_rom_words",
    "depthwise_conv_rom_words",
    "expand_circulant_word",
    "expand_depthwise_word",
    "write_mem",
]


def conv_weight_rom_words(w_q: np.ndarray, p_co: int, p_ci: int, bits: int, p_k: int = 1) -> list[int]:
    w = np.asarray(w_q, dtype=np.int64)
    c_out, c_in, kh, kw = w.shape
    ncg, ncw, nks = -(-c_out // p_co), -(-c_in // p_ci), -(-(kh * kw) // p_k)
    # [C_out, C_in, positions] zero-padded to whole groups, words and steps
    padded = np.zeros((ncg * p_co, ncw * p_ci, nks * p_k), dtype=np.int64)
    padded[:c_out, :c_in, : kh * kw] = w.reshape(c_out, c_in, kh * kw)
    words = []
    for g in range(ncg):
        for ks in range(nks):
            for cw in range(ncw):
                block = padded[g * p_co : (g + 1) * p_co, cw * p_ci : (cw + 1) * p_ci, ks * p_k : (ks + 1) * p_k]
                lanes = block.transpose(0, 2, 1).ravel()  # index (p*P_K + j)*P_CI + l
                word = 0
                for i, value in enumerate(lanes):
                    word |= twos_complement(int(value), bits) << (i * bits)
                words.append(word)
    return words


def conv_bias_rom_words(b_q: np.ndarray, p_co: int, bits: int) -> list[int]:
    b = np.asarray(b_q, dtype=np.int64).ravel()
    ncg = -(-b.size // p_co)
    words = []
    for g in range(ncg):
        word = 0
        for p in range(p_co):
            c = g * p_co + p
            value = int(b[c]) if c < b.size else 0
            word |= twos_complement(value, bits) << (p * bits)
        words.append(word)
    return words


def _check_circulant_split(p_co: int, p_ci: int, b: int) -> None:
    if b < 2 or p_co % b or p_ci % b:
        raise ValueError(f"a block-circulant ROM needs P_CO ({p_co}) and P_CI ({p_ci}) multiples of b = {b}")


def circulant_conv_rom_words(v: np.ndarray, p_co: int, p_ci: int, bits: int, p_k: int = 1) -> list[int]:
    """The block-circulant weight ROM from the defining vectors v [p, q, b, kH, kW]: per word,
    (P_CO/b)*P_K*(P_CI/b) vectors of b weights (the module docstring's layout)."""
    v = np.asarray(v, dtype=np.int64)
    p, q, b, kh, kw = v.shape
    _check_circulant_split(p_co, p_ci, b)
    pb, qb = p_co // b, p_ci // b
    ncg, ncw, nks = -(-p // pb), -(-q // qb), -(-(kh * kw) // p_k)
    padded = np.zeros((ncg * pb, ncw * qb, b, nks * p_k), dtype=np.int64)
    padded[:p, :q, :, : kh * kw] = v.reshape(p, q, b, kh * kw)
    words = []
    for g in range(ncg):
        for ks in range(nks):
            for cw in range(ncw):
                block = padded[g * pb : (g + 1) * pb, cw * qb : (cw + 1) * qb, :, ks * p_k : (ks + 1) * p_k]
                lanes = block.transpose(0, 3, 1, 2).ravel()  # index ((pb*P_K + j)*QB + qb)*b + d
                word = 0
                for i, value in enumerate(lanes):
                    word |= twos_complement(int(value), bits) << (i * bits)
                words.append(word)
    return words


def expand_circulant_word(word: int, p_co: int, p_ci: int, p_k: int, b: int, bits: int) -> int:
    """A block-circulant ROM word -> the dense word of the same weights (conv_weight_rom_words'
    layout), by the wiring rtl/conv2d.v does: lane (co*P_K + j)*P_CI + l takes element
    (co - l) mod b of vector ((co/b)*P_K + j)*(P_CI/b) + l/b."""
    _check_circulant_split(p_co, p_ci, b)
    qb, mask = p_ci // b, (1 << bits) - 1
    dense = 0
    for co in range(p_co):
        for j in range(p_k):
            for lane in range(p_ci):
                src = ((((co // b) * p_k + j) * qb + lane // b) * b + (co - lane) % b) * bits
                dense |= ((word >> src) & mask) << (((co * p_k + j) * p_ci + lane) * bits)
    return dense


def depthwise_conv_rom_words(w_q: np.ndarray, p_co: int, bits: int, p_k: int = 1) -> list[int]:
    """The depthwise weight ROM from w_q [C, 1, kH, kW] (the module docstring's layout)."""
    w = np.asarray(w_q, dtype=np.int64)
    c, one, kh, kw = w.shape
    if one != 1:
        raise ValueError(f"depthwise weights are [C, 1, kH, kW], not {list(w.shape)}")
    ncg, nks = -(-c // p_co), -(-(kh * kw) // p_k)
    padded = np.zeros((ncg * p_co, nks * p_k), dtype=np.int64)  # [channel, position]
    padded[:c, : kh * kw] = w.reshape(c, kh * kw)
    words = []
    for g in range(ncg):
        for ks in range(nks):
            lanes = padded[g * p_co : (g + 1) * p_co, ks * p_k : (ks + 1) * p_k].ravel()  # index p*P_K + j
            word = 0
            for i, value in enumerate(lanes):
                word |= twos_complement(int(value), bits) << (i * bits)
            words.append(word)
    return words


def expand_depthwise_word(word: int, p_co: int, p_k: int, bits: int) -> int:
    """A depthwise ROM word -> the dense word (conv_weight_rom_words' layout, P_CI = P_CO) of the
    same weights, by the wiring rtl/depthwise_word_expand.v does: lane (co*P_K + j)*P_CO + co
    takes weight co*P_K + j, every other lane is zero."""
    mask, dense = (1 << bits) - 1, 0
    for co in range(p_co):
        for j in range(p_k):
            dense |= ((word >> ((co * p_k + j) * bits)) & mask) << (((co * p_k + j) * p_co + co) * bits)
    return dense
