"""The bit-flip audit: how few flipped ROM bits break the compiled model (docs/security.md).

The attack is the progressive bit search of BFA (Rakin et al., ICCV 2019), the search DeepHammer
(Yao et al., USENIX Security 2020) runs through rowhammer, on the design's ROMs exactly as
written in OUT/rtl: two's-complement words at their bit width, sparse entries' values and delta
indices, circulant weight spectra, biases. Each iteration:

1. gradients of the loss on the attacker's batch with respect to every stored integer
   (compiler/exec/gradient.py), pulled back to the ROM fields (Engine.stored);
2. per layer, the bits whose flip raises the loss most to first order (value change times
   gradient; sparse delta bits, which move entries, on a seeded sample scored through the
   layer's matrix), each then judged exactly: the golden executor on the flipped design;
3. the flip of the layer that raised the exact loss most is committed.

It stops when accuracy on the evaluation rows falls to the target (random guess + 1 point by
default) or after `max_flips`. The random baseline flips uniformly drawn ROM bits.

The flipped design is what the hardware computes: the golden executor reads the flipped
integers and wraps accumulators as the registers do (golden.run_integer(wrap=True)); flips that
would make the hardware read outside what the golden executor models (a sparse index past the
last input, circulant spectra beyond the widths the FFT datapath was sized for) are never
chosen. `simulate` writes the flipped words into a copy of the ROM files and runs the cocotb
design bench against the golden executor's outputs.

Protection (`[plan] rom_protection`, kernels/rom_protect.py): the attacker knows the code. A
changed data word must still decode without a fault, so it costs the distance between the two
codewords (parity) or that distance minus one (SECDED: the decoder "corrects" the last bit into
the attacker's word). The search runs on data bits as before and counts physical flips by that
rule; `naive_attack` replays the search that ignores protection on the protected ROMs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler import hw
from compiler.backends.verilog import engine_specs
from compiler.errors import MpcError
from compiler.exec import golden
from compiler.exec.gradient import integer_gradients
from compiler.ir import Graph
from kernels.rom_protect import check_bits, codeword_bits, decode, encode

BITFLIP = "bitflip"


@dataclass(frozen=True)
class BitflipConfig:
    batch: int = 128  # the attacker's rows (BFA's batch size)
    target: float | None = None  # accuracy to reach; None: 1 / classes + 0.01
    max_flips: int = 100
    candidates: int = 4  # bits judged exactly per layer and iteration
    index_sample: int = 256  # sparse delta bits scored per layer and iteration
    eval_samples: int = 1000  # test rows the accuracy after every flip is measured on
    random_trials: int = 5
    random_max: int | None = None  # most random flips tried; None: 100x the search's flips, at least 1024
    simulate: int = 16  # test rows simulated with the flipped ROMs (0: none)
    simulator: str = "icarus"
    seed: int = 0


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

    def lane_of(self, position: int) -> int:
        """The code lane a codeword bit belongs to (data bits low, each lane's check bits above)."""
        width = self.image.width
        if position < width:
            return position // (width // self.lanes)
        return (position - width) // max(1, check_bits(width // self.lanes, self.protection))


class BitflipError(MpcError, ValueError):
    pass


# ---------------------------------------------------------------------------------- the design
class StoredDesign:
    """The build's ROMs as stored arrays per layer, and the graph any flipped state gives."""

    def __init__(self, out: Path, graph: Graph, design: dict):
        self.graph = hw.base.with_zero_biases(graph)
        specs = engine_specs(self.graph)
        entries = {e["name"]: e for e in design["engines"]}
        self.layers: list[hw.StoredLayer] = []
        self.roms: list[Rom] = []
        for spec in specs:
            stored = hw.engine(spec.engine).stored(self.graph, spec)
            if stored is None:
                continue
            entry = entries.get(spec.name, {})
            protection = entry.get("protection", "none")
            for image in stored.images:
                codes = read_mem(out / "rtl" / image.file, image.words)
                lanes = image.lanes if entry.get("protect_lanes") else 1
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
                decoded = unpack_field(rom.data, f)
                want = np.asarray(layer.arrays[f.store]).ravel()
                used = f.index >= 0
                if not np.array_equal(decoded[f.index[used]], want[f.index[used]]):
                    where = f"rtl/{rom.image.file}"
                    raise BitflipError(f"{where} does not hold layer {layer.layer!r}'s {f.store}; recompile")

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
                    arrays[rom.layer][f.store].flat[e] = field_value((data >> off) & ((1 << f.bits) - 1), f)

    def graph_for(self, arrays: list[dict[str, np.ndarray]], layers: set[int]) -> Graph:
        """The integer graph whose params the (changed) stored arrays of `layers` give;
        ValueError where the hardware would leave what the golden executor models."""
        params = dict(self.graph.params)
        for i in layers:
            params.update(self.layers[i].to_params(arrays[i]))
        return Graph(self.graph.inputs, self.graph.outputs, self.graph.nodes, params, self.graph.meta)


def read_mem(path: Path, words: int) -> list[int]:
    if not path.is_file():
        raise BitflipError(f"{path}: missing (the bit-flip audit reads the design's ROM files); recompile")
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) != words:
        raise BitflipError(f"{path}: {len(lines)} words, the design has {words}; recompile")
    try:
        return [int(ln, 16) for ln in lines]
    except ValueError:
        raise BitflipError(f"{path}: not a $readmemh file; recompile") from None


def field_value(u: int, f: hw.RomField) -> int:
    return u - (1 << f.bits) if f.signed and u >> (f.bits - 1) else u


def unpack_field(data: list[int], f: hw.RomField) -> np.ndarray:
    """The field's values as a flat array indexed like its store (0 where no slot holds one)."""
    size = int(f.index.max(initial=-1)) + 1
    values = np.zeros(size, dtype=np.int64)
    mask = (1 << f.bits) - 1
    for w, s in zip(*np.nonzero(f.index >= 0)):
        values[f.index[w, s]] = field_value((data[w] >> f.offsets[s]) & mask, f)
    return values


# ---------------------------------------------------------------------------------- protection
def word_cost(rom: Rom, w: int, data: int) -> int:
    """Physical flips that turn word w's stored codeword into one the decoder reads as `data`
    without a fault (0 if unchanged)."""
    return len(physical_flips(rom, w, data))


def physical_flips(rom: Rom, w: int, data: int) -> list[int]:
    """The codeword bits to flip: every bit in which the two codewords differ, except, under
    SECDED, one per changed code lane, which the decoder then "corrects" into the new word."""
    if data == rom.original_data(w):
        return []
    diff = rom.encode(data) ^ rom.encode(rom.original_data(w))
    positions = [k for k in range(diff.bit_length()) if diff >> k & 1]
    if rom.protection != "secded":
        return positions
    last = {rom.lane_of(k): k for k in positions}  # the highest differing bit of each lane
    return [k for k in positions if k not in set(last.values())]


# ---------------------------------------------------------------------------------- the attack
class Attack:
    def __init__(self, design: StoredDesign, data, config: BitflipConfig, log=print):
        self.design, self.config, self.log = design, config, log
        rng = np.random.default_rng(config.seed)
        n_train = len(data.x_train)
        rows = np.sort(rng.choice(n_train, min(config.batch, n_train), replace=False))
        quant = golden.quantize_input
        self.xb, self.yb = quant(design.graph, data.x_train[rows]), data.y_train[rows]
        n_eval = min(config.eval_samples, len(data.x_test))
        self.xe, self.ye = quant(design.graph, data.x_test[:n_eval]), data.y_test[:n_eval]
        self.rng = rng
        n_classes = max(int(np.prod(design.graph.outputs[0].shape)), 2)
        self.target = config.target if config.target is not None else round(1.0 / n_classes + 0.01, 6)

    # ---- exact judgement
    def accuracy(self, graph: Graph, x=None, y=None) -> float:
        x, y = (self.xe, self.ye) if x is None else (x, y)
        return float((golden.run_integer(graph, x, wrap=True).classes == y).mean())

    def batch_loss(self, graph: Graph) -> float:
        logits = golden.run_integer(graph, self.xb, wrap=True).logits.astype(np.float64)
        if logits.shape[1] == 1:
            logits = np.concatenate([np.zeros_like(logits), logits], axis=1)
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(self.yb)), self.yb].mean())

    def state_graph(self, flips: dict) -> Graph:
        arrays = self.design.arrays(flips)
        return self.design.graph_for(arrays, {self.design.roms[r].layer for r, _ in flips} if flips else set())

    # ---- the progressive search
    def search(self, aware: bool) -> dict:
        """BFA's progressive bit search; `aware`: count physical flips under the ROMs' protection
        (else one per data bit, as without protection)."""
        flips: dict[tuple[int, int], int] = {}
        graph = self.design.graph
        accuracy = [self.accuracy(graph)]
        committed: list[Bit] = []
        physical = [0]
        for g in self.design.bits:
            g.done[:] = False
        start = time.perf_counter()
        while len(committed) < self.config.max_flips and accuracy[-1] > self.target:
            choice = self._best_flip(graph, flips)
            if choice is None:
                break
            bit, graph, flips = choice
            committed.append(bit)
            accuracy.append(self.accuracy(graph))
            physical.append(self.flip_count(flips, aware))
            self.log(f"    flip {len(committed)}: {self._name(bit)} -> accuracy {accuracy[-1]:.4f}")
        reached = accuracy[-1] <= self.target
        return {
            "flips_to_target": physical[-1] if reached else None,
            "accuracy_per_flip": accuracy,
            "physical_flips_per_step": physical,
            "flips": [self._describe(b) for b in committed],
            "state": flips,
            "seconds": round(time.perf_counter() - start, 2),
        }

    def flip_count(self, flips: dict, aware: bool) -> int:
        if not aware:
            return sum(bin(d ^ self.design.roms[r].original_data(w)).count("1") for (r, w), d in flips.items())
        return sum(word_cost(self.design.roms[r], w, d) for (r, w), d in flips.items())

    def _best_flip(self, graph: Graph, flips: dict):
        _, grads = integer_gradients(graph, self.xb, self.yb)
        arrays = self.design.arrays(flips)
        best = None
        for i, layer in enumerate(self.design.layers):
            pulled = layer.pullback(grads)
            for group, k in self._candidates(i, arrays[i], pulled, grads):
                bit = group.at(k)
                trial = dict(flips)
                key = (bit.image, bit.word)
                trial[key] = trial.get(key, self.design.roms[bit.image].data[bit.word]) ^ (1 << bit.bit)
                try:
                    g = self.state_graph(trial)
                    loss = self.batch_loss(g)
                except ValueError:
                    continue  # outside what the hardware's golden model covers: never chosen
                if best is None or loss > best[0]:
                    best = (loss, (group, k), g, trial)
        if best is None:
            return None
        (group, k), g, trial = best[1:]
        group.done[k] = True
        return group.at(k), g, trial

    def _candidates(self, i: int, arrays: dict, pulled: dict, grads: dict) -> list[tuple[BitGroup, int]]:
        groups = [g for g in self.design.bits if g.layer == i]
        chosen: list[tuple[float, BitGroup, int]] = []
        for g in (g for g in groups if g.spec.store in pulled):
            score = pulled[g.spec.store].ravel()[g.element] * g.deltas(arrays[g.spec.store])
            score = np.where(g.done, -np.inf, score)
            top = np.argsort(score)[::-1][: self.config.candidates]
            chosen += [(float(score[k]), g, int(k)) for k in top]
        chosen.sort(key=lambda t: -t[0])
        picks = [(g, k) for _, g, k in chosen[: self.config.candidates]]
        for g in (g for g in groups if g.spec.store not in pulled):  # sparse delta indices
            free = np.flatnonzero(~g.done)
            sample = self.rng.choice(free, min(self.config.index_sample, len(free)), replace=False)
            picks += self._score_through_params(i, arrays, grads, g, sample)
        return picks

    def _score_through_params(self, i, arrays, grads, g: BitGroup, sample) -> list[tuple[BitGroup, int]]:
        """First-order scores of bits whose flip moves weights (sparse indices): <grad, change>
        of the layer's params, the best `candidates` of them."""
        layer = self.design.layers[i]
        base = layer.to_params(arrays)
        deltas = g.deltas(arrays[g.spec.store])
        scored = []
        for k in sample:
            changed = dict(arrays)
            changed[g.spec.store] = arrays[g.spec.store].copy()
            changed[g.spec.store].flat[g.element[k]] += deltas[k]
            try:
                params = layer.to_params(changed)
            except ValueError:
                continue
            score = sum(float((grads[n] * (params[n] - base[n])).sum()) for n in params if n in grads)
            scored.append((score, int(k)))
        scored.sort(key=lambda t: -t[0])
        return [(g, k) for _, k in scored[: self.config.candidates]]

    # ---- random baseline
    def random_baseline(self, accuracy_goal: float, up_to: int) -> dict:
        """Median accuracy after k uniformly drawn ROM bit flips (data and check bits alike, each
        word decoded as the hardware does) over trials, k doubling until the median reaches
        `accuracy_goal` or passes `up_to`."""
        rows, k, found = [], 1, None
        while k <= up_to:
            accs, faults = [], 0
            for _ in range(self.config.random_trials):
                acc, fault = self._random_trial(k)
                accs.append(acc)
                faults += fault
            median = float(np.median(accs))
            rows.append({"flips": k, "median_accuracy": median, "accuracies": accs, "trials_with_fault": faults})
            self.log(f"    random: {k} flips -> median accuracy {median:.4f}")
            if median <= accuracy_goal:
                found = k
                break
            k *= 2
        tried = rows[-1]["flips"]
        return {"random_flips_for_same_drop": found, "random_baseline": rows, "random_flips_tried_up_to": tried}

    def _random_trial(self, k: int) -> tuple[float, bool]:
        """Accuracy after k flips drawn uniformly over the attackable ROMs' codeword bits (data
        and check bits), each word decoded as the hardware does; a flip that would take the
        design outside what the golden executor models (a sparse index past the last input,
        circulant spectra past their datapath) is drawn again."""
        roms = self.design.roms
        code_bits = [r.code_bits for r in roms]
        sizes = np.array([r.image.words * b if r.image.fields else 0 for r, b in zip(roms, code_bits)], dtype=np.int64)
        ends = np.cumsum(sizes)
        for _attempt in range(20):
            arrays = self.design.arrays({})
            codes: dict[tuple[int, int], int] = {}
            touched: set[int] = set()
            fault, drawn, redraws = False, 0, 0
            while drawn < k and redraws <= 10 * k:
                pick = int(self.rng.integers(int(ends[-1])))
                r = int(np.searchsorted(ends, pick, side="right"))
                w, bit = divmod(pick - int(ends[r] - sizes[r]), code_bits[r])
                code = codes.get((r, w), roms[r].codes[w]) ^ (1 << bit)
                data, status = roms[r].decode(code)
                layer = roms[r].layer
                saved = {f.store: arrays[layer][f.store].copy() for f in roms[r].image.fields}
                self.design.set_word(arrays, r, w, data)
                try:
                    self.design.layers[layer].to_params(arrays[layer])
                except ValueError:
                    arrays[layer].update(saved)
                    redraws += 1
                    continue
                codes[(r, w)], fault, drawn = code, fault or status == 2, drawn + 1
                touched.add(layer)
            try:
                return self.accuracy(self.design.graph_for(arrays, touched)), fault
            except ValueError:
                continue  # rare: the flips together overflow a circulant datapath; draw them all again
        raise BitflipError(f"no {k} random flips the golden executor covers in 20 draws")

    # ---- names
    def _describe(self, b: Bit) -> dict:
        rom = self.design.roms[b.image]
        return {
            "layer": self.design.layers[b.layer].layer,
            "rom": rom.image.file,
            "word": b.word,
            "bit": b.bit,
            "field": b.store,
            "element": b.element,
        }

    def _name(self, b: Bit) -> str:
        return f"{self.design.roms[b.image].image.file} word {b.word} bit {b.bit} ({b.store})"


# ---------------------------------------------------------------------------------- entry point
def bitflip_attack(out: Path, graph: Graph, data, config: BitflipConfig, log=print) -> dict:
    """The audit entry `targets.compiled.attacks.bitflip` of the build in OUT."""
    design_path = Path(out) / "rtl" / "design.json"
    if not design_path.is_file():
        raise BitflipError(f"{out}: no rtl/design.json (the bit-flip audit attacks the design's ROMs); recompile")
    design = json.loads(design_path.read_text())
    stored = StoredDesign(Path(out), graph, design)
    attack = Attack(stored, data, config, log)
    protection = stored.protection
    log(f"  bit-flip search on {stored.n_bits} ROM data bits ({protection} protection), target {attack.target}")
    found = attack.search(aware=True)
    result = {
        "target_accuracy": attack.target,
        "flips_to_target": found["flips_to_target"],
        "accuracy_per_flip": found["accuracy_per_flip"],
        "flips": found["flips"],
        "physical_flips_per_step": found["physical_flips_per_step"],
        "protection": protection,
        "protection_unit": "weight" if any(r.lanes > 1 for r in stored.roms) else "word",
        "attack_batch": len(attack.yb),
        "eval_samples": len(attack.ye),
        "rom_data_bits": stored.n_bits,
        "search_seconds": found["seconds"],
    }
    if protection != "none":
        result["naive_attack"] = naive_replay(attack, stored)
    # random flips "for the same drop": down to the target where the search reached it
    goal = attack.target if found["flips_to_target"] is not None else found["accuracy_per_flip"][-1]
    committed = found["physical_flips_per_step"][-1]
    cap = config.random_max if config.random_max is not None else max(100 * max(committed, 1), 1024)
    result |= attack.random_baseline(goal, cap)
    if config.simulate:
        result["simulation"] = simulate_flips(Path(out), stored, attack, found["state"], design, config, log)
    return result


def naive_replay(attack: Attack, stored: StoredDesign) -> dict:
    """The search that ignores the protection (one flip per data bit), its flips applied to the
    protected codewords and decoded as the hardware does."""
    attack.log("  the same search ignoring the protection (one flip per data bit), replayed on the coded ROMs:")
    found = attack.search(aware=False)
    codes: dict[tuple[int, int], int] = {}
    for (r, w), data in found["state"].items():
        diff = data ^ stored.roms[r].original_data(w)
        codes[(r, w)] = stored.roms[r].codes[w] ^ diff
    flips, fault = {}, False
    words = {"corrected": 0, "detected": 0, "miscorrected": 0}  # the flipped words, as the decoder reads them
    for (r, w), code in codes.items():
        rom = stored.roms[r]
        data, status = rom.decode(code)
        fault |= status == 2
        if data != rom.original_data(w):
            flips[(r, w)] = data
        kind = "detected" if status == 2 else "miscorrected" if data != rom.original_data(w) else "corrected"
        words[kind] += 1
    return {
        "flips": len(found["flips"]),
        "accuracy_unprotected_model": found["accuracy_per_flip"][-1],
        "accuracy": attack.accuracy(attack.state_graph(flips)),
        "fault_raised": bool(fault),
        "words": words,  # SECDED: one flip corrected, two detected, three or more may be read wrong silently
    }


def simulate_flips(out: Path, stored: StoredDesign, attack: Attack, flips: dict, design: dict, config, log) -> dict:
    """The flips written into a copy of the ROM files (OUT/sim_build/bitflip) and the design
    simulated on the first `config.simulate` evaluation rows against the golden executor on the
    flipped integers."""
    from compiler.api import simulate_design

    work = out / "sim_build" / "bitflip"
    files: dict[str, list[int]] = {}
    for (r, w), data in flips.items():
        rom = stored.roms[r]
        codes = files.setdefault(rom.image.file, list(rom.codes))
        for k in physical_flips(rom, w, data):
            codes[w] ^= 1 << k
    widths = {rom.image.file: rom.code_bits for rom in stored.roms}
    graph = attack.state_graph(flips)
    x_q = attack.xe[: config.simulate]
    log(f"  simulating the flipped design on {len(x_q)} samples ...")
    roms = {f: (c, widths[f]) for f, c in files.items()}
    sim = simulate_design(out, work, graph, design, x_q, roms, config.simulator)
    expected = golden.run_integer(graph, x_q, wrap=True).classes
    return {
        "samples": len(x_q),
        "mismatches": sim["mismatches"],
        "error": sim.get("error"),
        "fault": sim.get("fault"),
        "accuracy": float((expected == attack.ye[: len(x_q)]).mean()),
    }
