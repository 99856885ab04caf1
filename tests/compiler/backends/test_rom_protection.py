"""`[plan] rom_protection`: every weight engine's ROM files hold clean codewords of the same data,
the design's cost counts the check bits, the top ORs its engines' faults, and the protected
design simulates bit-exact with fault low."""

import json
from pathlib import Path

import pytest

from compiler import api, hw
from compiler.backends.verilog import engine_specs
from compiler.hw.base import with_zero_biases
from compiler.ir import Graph
from kernels.rom_protect import decode

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
QUIET = {"log": lambda *_: None, "progress": False}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The digits CNN (conv + dense engines) built plain and with SECDED per ROM word and per weight."""
    folder = tmp_path_factory.mktemp("protect")
    outs = {}
    for protection, unit in (("none", "word"), ("secded", "word"), ("secded", "weight")):
        name = protection if unit == "word" else f"{protection}_{unit}"
        recipe = folder / f"{name}.toml"
        recipe.write_text(f'[plan]\nrom_protection = "{protection}"\nrom_protection_unit = "{unit}"\n')
        outs[name] = folder / name
        api.compile(
            EXAMPLES / "digits_cnn.onnx", EXAMPLES / "digits.npz", outs[name], recipe=recipe,
            synth_timeout=None, **QUIET,
        )  # fmt: skip
    return outs


def _design(out: Path) -> dict:
    return json.loads((out / "rtl" / "design.json").read_text())


@pytest.mark.parametrize("build", ["secded", "secded_weight"])
def test_protected_roms_are_clean_codewords_of_the_same_words(pair, build):
    graph = with_zero_biases(Graph.load(pair[build]))
    compared = 0
    for spec in engine_specs(graph):
        stored = hw.engine(spec.engine).stored(graph, spec)
        if stored is None:
            assert spec.protection == "none"  # pools and activations have no weight ROM
            continue
        assert spec.protection == "secded" and spec.parameters["PROTECT"] == 2
        assert spec.parameters.get("PROTECT_LANES", 0) == int(build == "secded_weight")
        for image in stored.images:
            words = (pair["none"] / "rtl" / image.file).read_text().split()
            codes = (pair[build] / "rtl" / image.file).read_text().split()
            assert len(codes) == len(words) == image.words
            lanes = spec.code_lanes(image.lanes)
            for w, c in zip(words, codes):
                assert decode(int(c, 16), image.width, "secded", lanes) == (int(w, 16), 0)
            compared += len(words)
    assert compared > 100
    for a, b in zip(_design(pair["none"])["engines"], _design(pair[build])["engines"]):
        assert b["rom_bits"] - a["rom_bits"] == b["check_bits"]


def test_one_code_per_weight_costs_more_check_bits_than_one_per_word(pair):
    word = json.loads((pair["secded"] / "report.json").read_text())["hardware"]["rom_protection"]
    weight = json.loads((pair["secded_weight"] / "report.json").read_text())["hardware"]["rom_protection"]
    assert (word["unit"], weight["unit"]) == ("word", "weight")
    assert weight["check_bits"] > word["check_bits"] and weight["data_bits"] == word["data_bits"]


def test_the_report_prices_the_check_bits_and_the_top_has_a_fault_port(pair):
    plain = json.loads((pair["none"] / "report.json").read_text())["hardware"]
    coded = json.loads((pair["secded"] / "report.json").read_text())["hardware"]
    p = coded["rom_protection"]
    assert p["scheme"] == "secded" and coded["rom_bits"] == plain["rom_bits"] + p["check_bits"]
    assert p["data_bits"] == plain["rom_bits"] and "rom_protection" not in plain
    assert coded["energy_pj"]["compiled"] > plain["energy_pj"]["compiled"]  # the check bits are read too
    top = (pair["secded"] / "rtl" / "mpc_top.v").read_text()
    assert "output wire fault" in top and "assign fault = layer0_fault |" in top
    assert "secded check bits" in (pair["secded"] / "report.md").read_text()


@pytest.mark.parametrize("build", ["secded", "secded_weight"])
def test_the_protected_design_simulates_bit_exact_with_fault_low(pair, build):
    result = api.simulate(pair[build], samples=4, log=lambda *_: None)
    assert result["mismatches"] == 0 and result["error"] is None
