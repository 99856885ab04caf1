"""ROM images for rtl/conv2d.v ($readmemh files, written with kernels.rom.write_mem).

Weight ROM: NCG = ceil(C_out / P_CO) output-channel groups, NCW = ceil(C_in / P_CI) channel
words. Word ((g*kH + ky)*kW + kx)*NCW + cw packs W[g*P_CO + p, cw*P_CI + l, ky, kx] at bits
[(p*P_CI + l)*bits +: bits], two's complement, zero where the channel is past C_out or C_in.
Bias ROM: word g packs b[g*P_CO + p] at bits [p*bits +: bits], zero past C_out.
"""
import numpy as np

from kernels.rom import _twos_complement, write_mem

__all__ = ["conv_weight_rom_words", "conv_bias_rom_words", "write_mem"]


def conv_weight_rom_words(w_q: np.ndarray, p_co: int, p_ci: int, bits: int) -> list[int]:
    w = np.asarray(w_q, dtype=np.int64)
    c_out, c_in, kh, kw = w.shape
    ncg, ncw = -(-c_out // p_co), -(-c_in // p_ci)
    padded = np.zeros((ncg * p_co, ncw * p_ci, kh, kw), dtype=np.int64)
    padded[:c_out, :c_in] = w
    words = []
    for g in range(ncg):
        for ky in range(kh):
            for kx in range(kw):
                for cw in range(ncw):
                    word = 0
                    for p in range(p_co):
                        for lane in range(p_ci):
                            value = int(padded[g * p_co + p, cw * p_ci + lane, ky, kx])
                            word |= _twos_complement(value, bits) << ((p * p_ci + lane) * bits)
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
            word |= _twos_complement(value, bits) << (p * bits)
        words.append(word)
    return words
