"""ROM images for rtl/conv2d.v ($readmemh files, written with kernels.rom.write_mem).

Weight ROM: NCG = ceil(C_out / P_CO) output-channel groups, NCW = ceil(C_in / P_CI) channel
words, NKS = ceil(kH*kW / P_K) kernel steps of P_K positions each (positions in raster order
k = ky*kW + kx). Word (g*NKS + ks)*NCW + cw packs W[g*P_CO + p, cw*P_CI + l, ky, kx] of position
k = ks*P_K + j at bits [((p*P_K + j)*P_CI + l)*bits +: bits], two's complement, zero where the
channel is past C_out or C_in or the position past kH*kW (a partial last step).
Bias ROM: word g packs b[g*P_CO + p] at bits [p*bits +: bits], zero past C_out.
"""

import numpy as np

from kernels.rom import twos_complement, write_mem

__all__ = ["conv_weight_rom_words", "conv_bias_rom_words", "write_mem"]


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
