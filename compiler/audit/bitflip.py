"""The bit-flip audit: how few flipped ROM bits break the compiled model (docs/security.md).

The attack is the progressive bit search of BFA (Rakin et al., ICCV 2019), the search DeepHammer
(Yao et al., USENIX Security 2020) runs through rowhammer, on the design's ROMs exactly as
written in OUT/rtl: two's-complement words at their bit width, sparse entries' values and delta
indices, circulant weight spectra, biases. Each iteration:

1. gradients of the loss on the attacker's batch with respect to every stored integer
   (compiler/exec/gradient.py), pulled back to the ROM fields (Engine.stored; the ROMs as
   attackable bits: rom_bits.py);
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
the attacker's word: kernels/rom_protect.py `undetected_flips`). The search runs on data bits
as before and counts physical flips by that rule; `naive_attack` replays the search that
ignores protection on the protected ROMs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.audit.rom_bits import Bit, BitGroup, StoredDesign, open_design, physical_flips, word_cost
from compiler.build import Build
from compiler.errors import MpcError
from compiler.exec import golden
from compiler.exec.gradient import integer_gradients
from compiler.ir import Graph
from compiler.simulate import simulate_design

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
    simulator: str = "auto"  # compiler.simulate.choose_simulator
    seed: int = 0


class BitflipError(MpcError, ValueError):
    pass


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
def bitflip_attack(build: Build, data, config: BitflipConfig, log=print) -> dict:
    """The audit entry `targets.compiled.attacks.bitflip` of the build (its compiled graph's ROMs)."""
    design = build.design if build.design is not None else open_design(build)
    stored = StoredDesign(build)
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
        result["simulation"] = simulate_flips(build.out, stored, attack, found["state"], design, config, log)
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
        "simulator": sim.get("simulator"),
        "build_reused": sim.get("build_reused"),  # the build's compiled model, only the ROM files replaced
    }
