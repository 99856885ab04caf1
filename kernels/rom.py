"""ROM images for rtl/dense_mac.v, written as $readmemh files.

Weight ROM: word o*NCH + c (NCH = ceil(n_in / parallel)) packs W[o, c*parallel + p] at bits
[p*bits +: bits], two's complement, zero where c*parallel + p >= n_in.
Vector ROM (bias): one word per element, two's complement.
Sparse entry ROM (rtl/sparse_mac.v): the words of a kernels.sparse_mac.SparseEncoding in row
order; entry p of a word at bits [p*(w_bits+D) +: w_bits+D] (D = delta_bits), the weight in
two's complement at its low w_bits bits, the unsigned delta at the next D bits.
Row-count ROM: one unsigned word per row, the number of entry words of that row (>= 1).

Protected ROMs (kernels/rom_protect.py, docs/fixed-point.md "Protected ROMs"): write_mem with
protection "parity" or "secded" stores each word as its codeword, the data bits low and the
check bits above them; the layouts above describe the data bits.

Reading back (the bit-flip audit): read_mem is write_mem's inverse, and field_values reads one
field of a layout out of the data words.
"""

import re
from pathlib import Path

import numpy as np

from kernels.rom_protect import codeword_bits, encode_words


def twos_complement(value: int, bits: int) -> int:
    """`value` as an unsigned `bits`-bit ROM field (ValueError if it does not fit)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not lo <= value <= hi:
        raise ValueError(f"{value} does not fit in {bits} signed bits")
    return value & ((1 << bits) - 1)


def dense_rom_words(w_q: np.ndarray, parallel: int, bits: int) -> list[int]:
    """Weight ROM of a [out, in] integer matrix read `parallel` weights per word."""
    w_q = np.asarray(w_q, dtype=np.int64)
    n_out, n_in = w_q.shape
    n_words_per_row = -(-n_in // parallel)
    padded = np.zeros((n_out, n_words_per_row * parallel), dtype=np.int64)
    padded[:, :n_in] = w_q
    words = []
    for row in padded:
        for c in range(n_words_per_row):
            word = 0
            for p in range(parallel):
                word |= twos_complement(int(row[c * parallel + p]), bits) << (p * bits)
            words.append(word)
    return words


def vector_rom_words(v: np.ndarray, bits: int) -> list[int]:
    """One two's-complement word per element of a 1-D integer vector."""
    return [twos_complement(int(x), bits) for x in np.asarray(v, dtype=np.int64).ravel()]


def sparse_rom_words(enc, w_bits: int) -> list[int]:
    """Entry ROM of a kernels.sparse_mac.SparseEncoding, one word per row of enc.weights."""
    d_bits = int(enc.delta_bits)
    entry_bits = w_bits + d_bits
    words = []
    for w_row, d_row in zip(np.asarray(enc.weights, dtype=np.int64), np.asarray(enc.deltas, dtype=np.int64)):
        word = 0
        for p, (w, d) in enumerate(zip(w_row, d_row)):
            if not 0 <= int(d) < (1 << d_bits):
                raise ValueError(f"delta {int(d)} does not fit in {d_bits} unsigned bits")
            entry = twos_complement(int(w), w_bits) | (int(d) << w_bits)
            word |= entry << (p * entry_bits)
        words.append(word)
    return words


def row_count_words(enc) -> list[int]:
    """Row-count ROM: the number of entry words of each row (unsigned, >= 1)."""
    counts = [int(c) for c in np.asarray(enc.row_words, dtype=np.int64).ravel()]
    if any(c < 1 for c in counts):
        raise ValueError("every row holds at least one word")
    return counts


def write_mem(path, words: list[int], width: int, protection: str = "none", lanes: int = 1) -> None:
    """Write `words` for $readmemh: one word per line, ceil(stored width / 4) hex digits. With
    protection "parity" or "secded" (kernels/rom_protect.py) each `width`-bit word is stored as
    its codeword of codeword_bits(width, protection) bits; "none" writes the words as they are."""
    for word in words:
        if not 0 <= word < (1 << width):
            raise ValueError(f"word {word:#x} does not fit in {width} bits")
    if protection != "none":
        words = encode_words(words, width, protection, lanes)
        width = codeword_bits(width, protection, lanes)
    digits = -(-width // 4)
    with open(path, "w") as f:
        for word in words:
            f.write(f"{word:0{digits}x}\n")


def read_mem(path, words: int, width: int) -> list[int]:
    """The words of a $readmemh file as write_mem writes it: one hex word per line, `words` of
    them, each within `width` stored bits (the codeword's, with any check bits). ValueError
    naming the file when it is not such a file; OSError when it cannot be read."""
    lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
    if len(lines) != words:
        raise ValueError(f"{path}: {len(lines)} words, the design has {words}")
    if not all(re.fullmatch(r"[0-9a-fA-F]+", ln) for ln in lines):  # no sign, "0x" or "_", which int() takes
        raise ValueError(f"{path}: not a $readmemh file")
    values = [int(ln, 16) for ln in lines]
    wide = next((w for w, v in enumerate(values) if v >> width), None)
    if wide is not None:
        raise ValueError(f"{path}: word {wide} is wider than the ROM's {width} bits")
    return values


def signed_field(u: int, bits: int) -> int:
    """An unsigned `bits`-bit ROM field read as two's complement (twos_complement's inverse)."""
    return u - (1 << bits) if u >> (bits - 1) else u


def field_values(words: list[int], index: np.ndarray, offsets, bits: int, signed: bool) -> np.ndarray:
    """One field of a ROM layout read out of its data words, as a flat array indexed like the
    stored array: `index[w, s]` is the element slot s of word w holds (-1: padding), at bits
    [offsets[s], offsets[s] + bits); 0 where no slot holds an element."""
    values = np.zeros(int(index.max(initial=-1)) + 1, dtype=np.int64)
    mask = (1 << bits) - 1
    for w, s in zip(*np.nonzero(index >= 0)):
        u = (words[w] >> offsets[s]) & mask
        values[index[w, s]] = signed_field(u, bits) if signed else u
    return values
