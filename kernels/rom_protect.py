"""Protected ROM words: per-word even parity or SECDED Hamming (rtl/rom_check.v decodes them).

The written contract of every protected weight ROM (rtl/dense_mac.v, rtl/sparse_mac.v,
rtl/circulant_mac.v, rtl/conv2d.v with PROTECT != 0; docs/fixed-point.md "Protected ROMs").
Standard library only.

Protections (the engines' Verilog parameter PROTECT in brackets):
  "none"   [0]  the word as it is: no check bits.
  "parity" [1]  one check bit: the XOR of the D data bits (even parity over the codeword).
                Detects an odd number of flipped bits; corrects nothing.
  "secded" [2]  Hamming SEC plus an overall parity bit: R + 1 check bits, R the smallest with
                2**R >= D + R + 1 (D = 8 -> 5 check bits, 64 -> 8, 128 -> 9). Corrects any single
                flipped bit (data or check), detects any two.

Codeword layout (what a $readmemh line holds, kernels.rom.write_mem): the D data bits in the low
bits [D-1:0], exactly as the unprotected word, then the check bits above them:
    code = data | check << D
so a reader that ignores the bits at D and above sees the data. parity: check is 1 bit. secded:
bit D + i (i = 0 .. R-1) is Hamming check bit i, bit D + R is the overall parity.

The Hamming construction (rtl/rom_check.v matches it bit for bit). Number the Hamming positions
1 .. D + R. Check bit i sits at position 2**i; the data bits sit at the other positions (3, 5, 6,
7, 9, 10, ...) in order: data bit 0 at 3, bit 1 at 5, bit 2 at 6, bit 3 at 7, bit 4 at 9, ...
  * check bit i = XOR of the data bits whose position has bit i set;
  * the overall parity bit = XOR of the D data bits and the R Hamming check bits, so the XOR of
    all D + R + 1 codeword bits is 0.
Decoding: the syndrome s (R bits) = XOR of the positions of every set bit among the data bits and
the Hamming check bits (equivalently, bit i of s = stored check bit i XOR the recomputed one);
q = XOR of all D + R + 1 codeword bits.
  * s == 0, q == 0: clean (status 0).
  * q == 1, s == 0: the overall parity bit flipped: data as stored, corrected (status 1).
  * q == 1, 1 <= s <= D + R: the bit at position s flipped: a data bit is flipped back (a check
    bit needs nothing), corrected (status 1).
  * q == 1, s > D + R: no single flip explains it: detected (status 2), data as stored.
  * q == 0, s != 0: two flips (an even number): detected (status 2), data as stored.
parity: status 2 when the XOR of all D + 1 bits is 1, else 0; data always as stored.
"""

from __future__ import annotations

from functools import cache

PROTECTIONS = ("none", "parity", "secded")
PROTECT_CODE = {"none": 0, "parity": 1, "secded": 2}  # the engines' Verilog parameter PROTECT

CLEAN, CORRECTED, DETECTED = 0, 1, 2


def _check(data_bits: int, protection: str) -> None:
    if protection not in PROTECT_CODE:
        raise ValueError(f"unknown ROM protection {protection!r}: use one of {', '.join(PROTECTIONS)}")
    if int(data_bits) < 1:
        raise ValueError(f"a ROM word has at least 1 data bit, not {data_bits}")


def hamming_bits(data_bits: int) -> int:
    """R: the smallest number of Hamming check bits with 2**R >= data_bits + R + 1."""
    r = 0
    while (1 << r) < data_bits + r + 1:
        r += 1
    return r


def check_bits(data_bits: int, protection: str, lanes: int = 1) -> int:
    """Check bits stored above the data bits of one ROM word: per lane 0, 1, or R + 1 for secded
    (R of the lane's data_bits / lanes bits), times the lanes."""
    lane = _lane_bits(data_bits, lanes)
    _check(lane, protection)
    if protection == "none":
        return 0
    if protection == "parity":
        return lanes
    return lanes * (hamming_bits(lane) + 1)


def codeword_bits(data_bits: int, protection: str, lanes: int = 1) -> int:
    """The stored width of one ROM word: data + check bits."""
    return data_bits + check_bits(data_bits, protection, lanes)


def _lane_bits(data_bits: int, lanes: int) -> int:
    if not isinstance(lanes, int) or lanes < 1 or data_bits % lanes:
        raise ValueError(f"a {data_bits}-bit word does not split into {lanes} equal lanes")
    return data_bits // lanes


@cache
def data_positions(data_bits: int) -> tuple[int, ...]:
    """The Hamming position of each data bit: the positions >= 3 that are no power of two."""
    positions: list[int] = []
    p = 2
    while len(positions) < data_bits:
        p += 1
        if p & (p - 1):
            positions.append(p)
    return tuple(positions)


@cache
def _bit_at_position(data_bits: int) -> dict[int, int]:
    return {p: j for j, p in enumerate(data_positions(data_bits))}


def _parity(value: int) -> int:
    return value.bit_count() & 1


def _hamming_check(word: int, data_bits: int) -> int:
    """The R Hamming check bits of `word`: the XOR of the positions of its set data bits."""
    s = 0
    for j, p in enumerate(data_positions(data_bits)):
        if (word >> j) & 1:
            s ^= p
    return s


def encode(word: int, data_bits: int, protection: str, lanes: int = 1) -> int:
    """The stored codeword of a `data_bits`-bit word: `word | check << data_bits`. With `lanes`
    > 1 the word is `lanes` equal lanes (a ROM word's weights), each its own code: lane i's check
    bits (C each) at data_bits + i*C, the data bits still low and unchanged."""
    if lanes != 1:
        lane = _lane_bits(data_bits, lanes)
        width = check_bits(lane, protection)
        code = int(word)
        if not 0 <= code < (1 << data_bits):
            raise ValueError(f"word {code:#x} does not fit in {data_bits} bits")
        for i in range(lanes):
            check = _encode_one((code >> (i * lane)) & ((1 << lane) - 1), lane, protection) >> lane
            code |= check << (data_bits + i * width)
        return code
    return _encode_one(word, data_bits, protection)


def _encode_one(word: int, data_bits: int, protection: str) -> int:
    _check(data_bits, protection)
    word = int(word)
    if not 0 <= word < (1 << data_bits):
        raise ValueError(f"word {word:#x} does not fit in {data_bits} bits")
    if protection == "none":
        return word
    if protection == "parity":
        return word | _parity(word) << data_bits
    r = hamming_bits(data_bits)
    check = _hamming_check(word, data_bits)
    overall = _parity(word) ^ _parity(check)
    return word | check << data_bits | overall << (data_bits + r)


def decode(code: int, data_bits: int, protection: str, lanes: int = 1) -> tuple[int, int]:
    """(data, status) of a stored codeword: status 0 clean, 1 corrected (secded: one flipped
    bit anywhere), 2 detected and not corrected (the data bits as stored). With `lanes`, each
    lane decoded on its own (see `encode`); the status is the worst lane's."""
    if lanes != 1:
        lane = _lane_bits(data_bits, lanes)
        width = check_bits(lane, protection)
        code = int(code)
        if not 0 <= code < (1 << codeword_bits(data_bits, protection, lanes)):
            raise ValueError(f"codeword {code:#x} does not fit")
        data, status = 0, CLEAN
        for i in range(lanes):
            lane_code = (code >> (i * lane)) & ((1 << lane) - 1)
            lane_code |= ((code >> (data_bits + i * width)) & ((1 << width) - 1)) << lane
            value, lane_status = _decode_one(lane_code, lane, protection)
            data, status = data | value << (i * lane), max(status, lane_status)
        return data, status
    return _decode_one(code, data_bits, protection)


def _decode_one(code: int, data_bits: int, protection: str) -> tuple[int, int]:
    _check(data_bits, protection)
    code = int(code)
    width = codeword_bits(data_bits, protection)
    if not 0 <= code < (1 << width):
        raise ValueError(f"codeword {code:#x} does not fit in {width} bits")
    data = code & ((1 << data_bits) - 1)
    if protection == "none":
        return data, CLEAN
    if protection == "parity":
        return data, DETECTED if _parity(code) else CLEAN
    r = hamming_bits(data_bits)
    syndrome = ((code >> data_bits) & ((1 << r) - 1)) ^ _hamming_check(data, data_bits)
    odd = _parity(code)
    if not odd:
        return data, CLEAN if syndrome == 0 else DETECTED
    if syndrome > data_bits + r:
        return data, DETECTED
    bit = _bit_at_position(data_bits).get(syndrome)  # None: a check bit (or the overall parity)
    if bit is not None:
        data ^= 1 << bit
    return data, CORRECTED


def encode_words(words, data_bits: int, protection: str, lanes: int = 1) -> list[int]:
    """`encode` of every word of a ROM image."""
    return [encode(w, data_bits, protection, lanes) for w in words]


# ---- what a changed word costs an attacker who knows the code (the bit-flip audit)
def code_lane(position: int, data_bits: int, protection: str, lanes: int = 1) -> int:
    """The code lane a codeword bit belongs to: data bits low, lane by lane, then each lane's
    check bits above them (see `encode`)."""
    if position < data_bits:
        return position // (data_bits // lanes)
    return (position - data_bits) // max(1, check_bits(data_bits // lanes, protection))


def undetected_flips(old: int, new: int, data_bits: int, protection: str, lanes: int = 1) -> list[int]:
    """The stored bits to flip so that the codeword of data word `old` decodes as `new` without a
    fault: every bit in which the two codewords differ, except, under secded, one per changed
    lane, which the decoder then "corrects" into the new word. [] when the word is unchanged."""
    if new == old:
        return []
    diff = encode(new, data_bits, protection, lanes) ^ encode(old, data_bits, protection, lanes)
    positions = [k for k in range(diff.bit_length()) if diff >> k & 1]
    if protection != "secded":
        return positions
    corrected = set({code_lane(k, data_bits, protection, lanes): k for k in positions}.values())  # each lane's last
    return [k for k in positions if k not in corrected]
