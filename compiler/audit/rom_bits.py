"""The bit-flip audit's target: a build's ROMs as the hardware stores them, bit by bit.

`StoredDesign` reads every attackable ROM image of the build (compiler/build.py, each word
checked) through its engine's layout (Engine.stored: which field of which stored array each
bit holds), checks that the words decode to exactly the build's integers, and gives the graph
any changed data words make. `physical_flips` is what changing a word costs under the ROM's
protection code (kernels/rom_protect.py). The search over these bits is bitflip.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compiler import hw
from compiler.build import Build, BuildError, open_rtl
from compiler.hw.design import engine_specs
from compiler.ir import Graph
from kernels.rom import field_values, signed_field
from kernels.rom_protect import codeword_bits, decode, encode, undetected_flips


@dataclass(frozen=True)
class Bit:
    layer: int
    image: int
    word: int
    bit: int  # within the data word
    store: str
    element: int
    j: int  # bit within the field
    bits: int
    signed: bool


@dataclass
class BitGroup:
    """The attackable bits of one field of one ROM, as arrays (one entry per bit)."""

    layer: int
    rom: int
    spec: hw.RomField
    word: np.ndarray
    bit: np.ndarray  # within the data word
    element: np.ndarray  # into the layer's stored array `field.store`
    j: np.ndarray  # within the field
    done: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self):
        self.done = np.zeros(len(self.word), dtype=bool)

    def at(self, k: int) -> Bit:
        f = self.spec
        return Bit(self.layer, self.rom, int(self.word[k]), int(self.bit[k]), f.store, int(self.element[k]),
                   int(self.j[k]), f.bits, f.signed)  # fmt: skip

    def deltas(self, values: np.ndarray) -> np.ndarray:
        """Value change of flipping each bit, from the store's current values."""
        bits = self.spec.bits
        v = values.ravel()[self.element]
        u = (v & ((1 << bits) - 1)) ^ (np.int64(1) << self.j)
        if self.spec.signed:
            u = np.where(u >> (bits - 1) & 1, u - (1 << bits), u)
        return u - v


@dataclass
class Rom:
    """One attackable ROM file: its codewords as written and its current data words."""

    layer: int
    image: hw.RomImage
    protection: str
    codes: list[int]
    data: list[int] = field(default_factory=list)
    lanes: int = 1  # code lanes of a word (rom_protection_unit = "weight": one per weight)

    def original_data(self, w: int) -> int:
        return self.codes[w] & ((1 << self.image.width) - 1)

    def encode(self, data: int) -> int:
        return encode(data, self.image.width, self.protection, self.lanes)

    def decode(self, code: int) -> tuple[int, int]:
        return decode(code, self.image.width, self.protection, self.lanes)

    @property
    def code_bits(self) -> int:
        """Stored bits of one word: data and check bits."""
        return codeword_bits(self.image.width, self.protection, self.lanes)


# ---------------------------------------------------------------------------------- the design
class StoredDesign:
    """The build's ROMs as stored arrays per layer, and the graph any flipped state gives."""

    def __init__(self, build: Build):
        assert build.design is not None, "open the build with rtl=True"
        self.graph = hw.base.with_zero_biases(build.graph)
        specs = engine_specs(self.graph)
        entries = {e["name"]: e for e in build.design["engines"]}
        self.layers: list[hw.StoredLayer] = []
        self.roms: list[Rom] = []
        for spec in specs:
            stored = hw.engine(spec.engine).stored(self.graph, spec)
            if stored is None:
                continue
            entry = entries.get(spec.name, {})
            protection = entry.get("protection", "none")
            for image in stored.images:
                lanes = image.lanes if entry.get("protect_lanes") else 1
                codes = build.rom(image.file, image.words, codeword_bits(image.width, protection, lanes))
                self.roms.append(Rom(len(self.layers), image, protection, codes, lanes=lanes))
            self.layers.append(stored)
        for rom in self.roms:
            rom.data = [rom.original_data(w) for w in range(rom.image.words)]
        self._check_roms_hold_the_graph()
        self.bits = self._bit_table()

    @property
    def protection(self) -> str:
        kinds = {r.protection for r in self.roms}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    def _check_roms_hold_the_graph(self) -> None:
        """The ROM files decode to exactly the integers of the build's graph (else: recompile)."""
        for rom in self.roms:
            layer = self.layers[rom.layer]
            for f in rom.image.fields:
                decoded = field_values(rom.data, f.index, f.offsets, f.bits, f.signed)
                want = np.asarray(layer.arrays[f.store]).ravel()
                used = f.index >= 0
                if not np.array_equal(decoded[f.index[used]], want[f.index[used]]):
                    where = f"rtl/{rom.image.file}"
                    raise BuildError(f"{where} does not hold layer {layer.layer!r}'s {f.store}; recompile")

    def _bit_table(self) -> list[BitGroup]:
        groups = []
        for r, rom in enumerate(self.roms):
            for f in rom.image.fields:
                words, slots = np.nonzero(f.index >= 0)
                j = np.tile(np.arange(f.bits), len(words))
                words, slots = np.repeat(words, f.bits), np.repeat(slots, f.bits)
                offsets = np.asarray(f.offsets, dtype=np.int64)[slots]
                groups.append(BitGroup(rom.layer, r, f, words, offsets + j, f.index[words, slots], j))
        return groups

    @property
    def n_bits(self) -> int:
        return sum(len(g.word) for g in self.bits)

    def arrays(self, flips: dict[tuple[int, int], int], only: int | None = None) -> list[dict[str, np.ndarray]]:
        """Stored arrays of every layer (or of layer `only`, the others left empty) with the data
        words {(rom, word): data} changed."""
        out: list[dict[str, np.ndarray]] = [
            {k: np.array(v, dtype=np.int64) for k, v in layer.arrays.items()} if only in (None, i) else {}
            for i, layer in enumerate(self.layers)
        ]
        for (r, w), data in flips.items():
            if only in (None, self.roms[r].layer):
                self.set_word(out, r, w, data)
        return out

    def set_word(self, arrays: list[dict[str, np.ndarray]], r: int, w: int, data: int) -> None:
        """Write data word w of ROM r into the stored arrays (in place)."""
        rom = self.roms[r]
        for f in rom.image.fields:
            for s, off in enumerate(f.offsets):
                e = int(f.index[w, s])
                if e >= 0:
                    u = (data >> off) & ((1 << f.bits) - 1)
                    arrays[rom.layer][f.store].flat[e] = signed_field(u, f.bits) if f.signed else u

    def graph_for(self, arrays: list[dict[str, np.ndarray]], layers: set[int]) -> Graph:
        """The integer graph whose params the (changed) stored arrays of `layers` give;
        ValueError where the hardware would leave what the golden executor models."""
        params = dict(self.graph.params)
        for i in layers:
            params.update(self.layers[i].to_params(arrays[i]))
        return Graph(self.graph.inputs, self.graph.outputs, self.graph.nodes, params, self.graph.meta)


# ---------------------------------------------------------------------------------- protection
def word_cost(rom: Rom, w: int, data: int) -> int:
    """Physical flips that turn word w's stored codeword into one the decoder reads as `data`
    without a fault (0 if unchanged)."""
    return len(physical_flips(rom, w, data))


def physical_flips(rom: Rom, w: int, data: int) -> list[int]:
    """The codeword bits to flip (kernels/rom_protect.py `undetected_flips`: under SECDED, one
    bit fewer per changed code lane, which the decoder then "corrects" into the new word)."""
    return undetected_flips(rom.original_data(w), data, rom.image.width, rom.protection, rom.lanes)


# ---------------------------------------------------------------------------------- reading the build
def open_design(build: Build) -> dict:
    """The build's rtl/design.json and every file it names, checked (compiler/build.py): what
    the attack reads, before anything runs."""
    if not (build.out / "rtl" / "design.json").is_file():
        raise BuildError(f"{build.out}: no rtl/design.json (the bit-flip audit attacks the design's ROMs); recompile")
    return open_rtl(build)
