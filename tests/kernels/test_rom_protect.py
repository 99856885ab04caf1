"""kernels/rom_protect.py: the protected-ROM codewords (parity, SECDED), what changing a word costs an
attacker who knows the code, and kernels.rom.write_mem / read_mem."""

import itertools
import random
import re

import pytest

from kernels.rom import read_mem, write_mem
from kernels.rom_protect import (
    CLEAN,
    CORRECTED,
    DETECTED,
    PROTECT_CODE,
    PROTECTIONS,
    check_bits,
    codeword_bits,
    data_positions,
    decode,
    encode,
    encode_words,
    hamming_bits,
    undetected_flips,
)

DOUBLE_FLIP_WIDTHS = (1, 4, 8, 11, 32, 64, 128)


def _random_words(data_bits: int, n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [0, (1 << data_bits) - 1] + [rng.getrandbits(data_bits) for _ in range(n)]


def test_names_and_parameter_codes():
    assert PROTECTIONS == ("none", "parity", "secded")
    assert PROTECT_CODE == {"none": 0, "parity": 1, "secded": 2}


def test_check_bit_counts():
    assert [check_bits(8, p) for p in PROTECTIONS] == [0, 1, 5]
    assert check_bits(64, "secded") == 8 and check_bits(128, "secded") == 9
    assert check_bits(1, "secded") == 3 and check_bits(4, "secded") == 4 and check_bits(11, "secded") == 5
    assert check_bits(57, "secded") == 7 and check_bits(58, "secded") == 8  # (63, 57) is a perfect code
    clog2 = lambda x: (x - 1).bit_length()
    for d in range(1, 300):
        r = hamming_bits(d)
        assert 2**r >= d + r + 1 and 2 ** (r - 1) < d + r, d
        assert r == clog2(d + 1 + clog2(d + 1)), d  # the closed form of rtl/rom_check.v
        assert codeword_bits(d, "secded") == d + r + 1 and codeword_bits(d, "none") == d
    with pytest.raises(ValueError, match="unknown ROM protection"):
        check_bits(8, "ecc")
    with pytest.raises(ValueError, match="at least 1 data bit"):
        check_bits(0, "parity")


def test_data_positions_skip_powers_of_two():
    assert data_positions(11) == (3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15)
    clog2 = lambda x: (x - 1).bit_length()
    assert all(p == j + 1 + clog2(j + 2 + clog2(j + 2)) for j, p in enumerate(data_positions(1000)))


def test_codeword_layout_keeps_the_data_low():
    # 4 data bits 1011: positions 3 (d0=1), 5 (d1=1), 6 (d2=0), 7 (d3=1); syndrome of the data
    # 3 ^ 5 ^ 7 = 1, so check bits c0=1, c1=0, c2=0; overall parity = 3 data ones + 1 = even: 0
    assert encode(0b1011, 4, "secded") == 0b1011 | 0b001 << 4 | 0 << 7
    assert encode(0b1011, 4, "parity") == 0b1011 | 1 << 4
    assert encode(0b1011, 4, "none") == 0b1011
    for p in PROTECTIONS:
        for word in _random_words(37, 20, 1):
            assert encode(word, 37, p) & ((1 << 37) - 1) == word
    with pytest.raises(ValueError, match="does not fit"):
        encode(16, 4, "secded")
    with pytest.raises(ValueError, match="does not fit"):
        decode(1 << 8, 4, "secded")


@pytest.mark.parametrize("protection", PROTECTIONS)
def test_round_trip_every_width(protection):
    for d in range(1, 141):
        for word in _random_words(d, 8, d):
            code = encode(word, d, protection)
            assert 0 <= code < (1 << codeword_bits(d, protection))
            assert decode(code, d, protection) == (word, CLEAN), (d, word)
    assert encode_words([1, 2, 3], 8, "secded") == [encode(w, 8, "secded") for w in (1, 2, 3)]


def test_secded_corrects_every_single_flip():
    for d in range(1, 141):
        width = codeword_bits(d, "secded")
        for word in _random_words(d, 2, 100 + d):
            code = encode(word, d, "secded")
            for bit in range(width):
                assert decode(code ^ (1 << bit), d, "secded") == (word, CORRECTED), (d, word, bit)


def test_parity_detects_every_odd_flip_count():
    for d in range(1, 141):
        width = codeword_bits(d, "parity")
        for word in _random_words(d, 2, 200 + d):
            code = encode(word, d, "parity")
            for bit in range(width):
                flipped = code ^ (1 << bit)
                assert decode(flipped, d, "parity") == (flipped & ((1 << d) - 1), DETECTED)
            rng = random.Random(d)
            for flips in (2, 3):
                bits = rng.sample(range(width), min(flips, width))
                flipped = code
                for b in bits:
                    flipped ^= 1 << b
                want = DETECTED if len(bits) % 2 else CLEAN  # an even count passes parity
                assert decode(flipped, d, "parity")[1] == want


@pytest.mark.parametrize("d", DOUBLE_FLIP_WIDTHS)
def test_secded_detects_every_double_flip(d):
    width = codeword_bits(d, "secded")
    mask = (1 << d) - 1
    for word in _random_words(d, 1, 300 + d)[:3]:
        code = encode(word, d, "secded")
        for a, b in itertools.combinations(range(width), 2):
            flipped = code ^ (1 << a) ^ (1 << b)
            # detected, and the data bits come back as stored (uncorrected)
            assert decode(flipped, d, "secded") == (flipped & mask, DETECTED), (d, a, b)


def test_secded_every_codeword_of_a_small_width():
    """Every 8-bit-codeword input (4 data bits) decodes consistently: clean inputs are exactly
    the codewords, corrected ones are one flip from the codeword of the returned data."""
    d, width = 4, codeword_bits(4, "secded")
    codes = {encode(w, d, "secded") for w in range(16)}
    for code in range(1 << width):
        data, status = decode(code, d, "secded")
        distance = (code ^ encode(data, d, "secded")).bit_count()
        if status == CLEAN:
            assert code in codes
        elif status == CORRECTED:
            assert distance == 1
        else:
            assert code not in codes and data == code & 0xF


def test_write_mem_protected(tmp_path):
    words = [0x00, 0x7F, 0xA5]
    plain, parity, secded = (tmp_path / f"{p}.mem" for p in PROTECTIONS)
    write_mem(plain, words, 8)
    assert plain.read_text() == "00\n7f\na5\n"  # unchanged default behaviour
    write_mem(parity, words, 8, protection="parity")
    assert [int(x, 16) for x in parity.read_text().split()] == [0x000, 0x17F, 0x0A5]
    write_mem(secded, words, 8, protection="secded")
    lines = secded.read_text().split()
    assert all(len(x) == 4 for x in lines)  # 13 bits: 4 hex digits
    assert [decode(int(x, 16), 8, "secded") for x in lines] == [(w, CLEAN) for w in words]
    with pytest.raises(ValueError, match="does not fit"):
        write_mem(tmp_path / "x.mem", [256], 8, protection="secded")
    with pytest.raises(ValueError, match="unknown ROM protection"):
        write_mem(tmp_path / "x.mem", [1], 8, protection="hamming")


# ------------------------------------------------------------------------ one code per lane
LANE_SPLITS = ((16, 2), (32, 4), (72, 9), (24, 2), (64, 8))


@pytest.mark.parametrize("protection", PROTECTIONS)
@pytest.mark.parametrize(("data_bits", "lanes"), LANE_SPLITS)
def test_lanes_round_trip_and_layout(data_bits, lanes, protection):
    """Each lane is its own L-bit codeword: data low and unchanged, lane i's check bits at
    D + i*C; every word decodes clean to itself."""
    size = data_bits // lanes
    c = check_bits(size, protection)
    assert check_bits(data_bits, protection, lanes) == lanes * c
    assert codeword_bits(data_bits, protection, lanes) == data_bits + lanes * c
    for word in _random_words(data_bits, 30, seed=data_bits + lanes):
        code = encode(word, data_bits, protection, lanes)
        assert code & ((1 << data_bits) - 1) == word
        for i in range(lanes):
            lane = (word >> (i * size)) & ((1 << size) - 1)
            assert (code >> (data_bits + i * c)) & ((1 << c) - 1) == encode(lane, size, protection) >> size
        assert decode(code, data_bits, protection, lanes) == (word, CLEAN)
    assert encode_words([1, 2], data_bits, protection, lanes) == [
        encode(w, data_bits, protection, lanes) for w in (1, 2)
    ]


def _lane_bit_positions(data_bits: int, protection: str, lanes: int, lane: int) -> list[int]:
    size = data_bits // lanes
    c = check_bits(size, protection)
    return [lane * size + b for b in range(size)] + [data_bits + lane * c + b for b in range(c)]


@pytest.mark.parametrize(("data_bits", "lanes"), LANE_SPLITS)
def test_lanes_secded_corrects_one_flip_in_every_lane(data_bits, lanes):
    """The bit-flip attack's pattern (one flip in each of several weights of a word) is corrected
    per lane; two flips in one lane are detected, whatever the other lanes hold."""
    rng = random.Random(data_bits * lanes)
    for word in _random_words(data_bits, 20, seed=lanes):
        code = encode(word, data_bits, "secded", lanes)
        flipped = code
        for lane in range(lanes):
            flipped ^= 1 << rng.choice(_lane_bit_positions(data_bits, "secded", lanes, lane))
        assert decode(flipped, data_bits, "secded", lanes) == (word, CORRECTED)
        double = code
        for bit in rng.sample(_lane_bit_positions(data_bits, "secded", lanes, lanes - 1), 2):
            double ^= 1 << bit
        assert decode(double, data_bits, "secded", lanes)[1] == DETECTED
        assert decode(double ^ (1 << 0), data_bits, "secded", lanes)[1] == DETECTED  # + a lane-0 flip


def test_three_sign_flips_miscorrected_per_word_corrected_per_lane():
    """Three weights' sign bits flipped in one 72-bit word (9 weights of 8 bits): one code over
    the word cannot give the data back; one code per weight does."""
    word = 0x0123456789ABCDEF01
    flips = (1 << 7) | (1 << 31) | (1 << 63)
    assert decode(encode(word, 72, "secded") ^ flips, 72, "secded")[0] != word
    assert decode(encode(word, 72, "secded", 9) ^ flips, 72, "secded", 9) == (word, CORRECTED)


def test_lanes_parity_detects_a_flip_in_any_lane():
    for lane in range(4):
        code = encode(0xDEADBEEF, 32, "parity", 4) ^ (1 << (lane * 8 + 3))
        assert decode(code, 32, "parity", 4) == (0xDEADBEEF ^ (1 << (lane * 8 + 3)), DETECTED)
    both = encode(0xDEADBEEF, 32, "parity", 4) ^ 1 ^ (1 << 8)  # one flip in each of two lanes
    assert decode(both, 32, "parity", 4)[1] == DETECTED


@pytest.mark.parametrize("lanes", [0, 3, 5, -1])
def test_lanes_must_divide_the_word(lanes):
    for call in (
        lambda: encode(0, 16, "secded", lanes),
        lambda: decode(0, 16, "secded", lanes),
        lambda: check_bits(16, "secded", lanes),
        lambda: codeword_bits(16, "parity", lanes),
    ):
        with pytest.raises(ValueError, match="equal lanes"):
            call()


def test_write_mem_with_lanes(tmp_path):
    path = tmp_path / "lanes.mem"
    words = [0x0000, 0xFFFF, 0x12AB]
    write_mem(path, words, 16, protection="secded", lanes=2)
    lines = path.read_text().split()
    assert all(len(x) == 7 for x in lines)  # 16 + 2 * 5 = 26 bits: 7 hex digits
    assert [int(x, 16) for x in lines] == encode_words(words, 16, "secded", 2)


@pytest.mark.parametrize("protection, lanes", [("none", 1), ("parity", 1), ("secded", 1), ("secded", 2), ("parity", 2)])
def test_undetected_flips_turn_the_word_into_the_new_one_without_a_fault(protection, lanes):
    rng = random.Random(3)
    for _ in range(50):
        old, new = rng.getrandbits(16), rng.getrandbits(16)
        code = encode(old, 16, protection, lanes)
        flips = undetected_flips(old, new, 16, protection, lanes)
        for k in flips:
            code ^= 1 << k
        data, status = decode(code, 16, protection, lanes)
        assert data == new and status != DETECTED
        distance = bin(encode(new, 16, protection, lanes) ^ encode(old, 16, protection, lanes)).count("1")
        changed_lanes = sum((old ^ new) >> (i * 16 // lanes) & ((1 << 16 // lanes) - 1) != 0 for i in range(lanes))
        assert len(flips) == distance - (changed_lanes if protection == "secded" else 0)
    assert undetected_flips(0x1234, 0x1234, 16, protection, lanes) == []


def test_read_mem_reads_what_write_mem_wrote(tmp_path):
    words = _random_words(12, 20, seed=5)
    write_mem(tmp_path / "a.mem", words, 12, "secded", 1)
    width = codeword_bits(12, "secded")
    assert read_mem(tmp_path / "a.mem", len(words), width) == encode_words(words, 12, "secded")


@pytest.mark.parametrize(
    "text, message",
    [("1f\n2e\n", "2 words, the design has 3"), ("1f\n-2\n0\n", "not a $readmemh file"),
     ("0x1f\n2\n0\n", "not a $readmemh file"), ("1f\n200\n0\n", "word 1 is wider than the ROM's 8 bits")],
)  # fmt: skip
def test_read_mem_names_a_damaged_file(tmp_path, text, message):
    (tmp_path / "a.mem").write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)):
        read_mem(tmp_path / "a.mem", 3, 8)
