"""Hardware truth of the bit-flip audit (Icarus): the flips it finds, written into copies of the
ROM files, give in simulation exactly the golden executor's outputs on the flipped integers; on a
SECDED design the protection-aware attack's flips pass undetected and a double flip in one word
raises `fault`."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from compiler import api
from compiler.audit.bitflip import BitflipConfig
from compiler.audit.rom_bits import StoredDesign
from compiler.build import open_build
from compiler.exec import golden
from compiler.simulate import simulate_design

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUIET = {"log": lambda *_: None, "progress": False}


def _build(tmp_path: Path, recipe: str) -> Path:
    (tmp_path / "r.toml").write_text(recipe)
    out = tmp_path / "build"
    api.compile(
        EXAMPLES / "digits_mlp.onnx", EXAMPLES / "digits.npz", out, recipe=tmp_path / "r.toml", synth_timeout=None,
        **QUIET,
    )  # fmt: skip
    return out


@pytest.mark.parametrize("protection, unit", [("none", "word"), ("secded", "word"), ("secded", "weight")])
def test_the_found_flips_reproduce_in_rtl_simulation(tmp_path, protection, unit):
    out = _build(tmp_path, f'[plan]\nrom_protection = "{protection}"\nrom_protection_unit = "{unit}"\n')
    config = BitflipConfig(max_flips=10, eval_samples=300, random_trials=1, simulate=12)
    flips = api.audit(out, attacks="bitflip", bitflip=config, **QUIET)["targets"]["compiled"]["attacks"]["bitflip"]
    sim = flips["simulation"]
    assert sim["samples"] == 12 and sim["mismatches"] == 0 and sim["error"] is None
    assert sim["fault"] == 0  # the attacker's words decode without a detected error
    assert flips["flips_to_target"] is not None
    # the simulated ROM files differ from the build's in exactly the reported physical flips
    work = out / "sim_build" / "bitflip"
    changed = 0
    for mem in (out / "rtl").glob("*.mem"):
        a = [int(v, 16) for v in mem.read_text().split()]
        b = [int(v, 16) for v in (work / mem.name).read_text().split()]
        changed += sum(bin(x ^ y).count("1") for x, y in zip(a, b))
    assert changed == flips["flips_to_target"]


def test_a_double_flip_in_one_secded_word_raises_fault(tmp_path):
    out = _build(tmp_path, '[plan]\nrom_protection = "secded"\n')
    build = open_build(out, rtl=True)
    graph, design = build.graph, build.design
    stored = StoredDesign(build)
    x_q = golden.quantize_input(graph, np.load(EXAMPLES / "digits.npz")["x_test"][:4])
    for file, word in (("layer0_w.mem", 7), ("layer1_b.mem", 3)):
        rom = next(r for r in stored.roms if r.image.file == file)
        codes = list(rom.codes)
        codes[word] ^= 0b101  # two data bits of one word
        sim = simulate_design(
            out, out / "sim_build" / f"double_{file}", graph, design, x_q, {file: (codes, rom.code_bits)},
            expect_fault=True,
        )  # fmt: skip
        assert sim["fault"] == 1 and sim.get("error") is None, (file, sim)
    # and one flip in a word is corrected: outputs exact, no fault
    rom = next(r for r in stored.roms if r.image.file == "layer0_w.mem")
    codes = list(rom.codes)
    codes[7] ^= 0b100
    sim = simulate_design(
        out, out / "sim_build" / "single", graph, design, x_q, {"layer0_w.mem": (codes, rom.code_bits)}
    )
    assert sim["mismatches"] == 0 and sim["fault"] == 0
    shutil.rmtree(out / "sim_build")
