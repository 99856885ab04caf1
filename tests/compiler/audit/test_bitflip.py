"""The bit-flip audit: the ROM layouts of every engine decode the files the backend wrote, a flip
changes exactly the integer the layout says, the search reaches random guessing on the demo with
every step's accuracy the golden executor's, and the protection model's costs."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from compiler import api
from compiler.audit.bitflip import BitflipConfig
from compiler.audit.rom_bits import Rom, StoredDesign, physical_flips, word_cost
from compiler.build import open_build
from compiler.exec import golden
from compiler.hw import RomImage
from kernels.rom_protect import decode
from tests.compiler.audit.conftest import QUIET

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
RECIPES = {
    "dense": ("digits_mlp.onnx", ""),
    "sparse": (
        "digits_mlp.onnx",
        'passes = ["canonicalize", "magnitude_prune", "lower"]\n[magnitude_prune]\nsparsity = 0.9\nepochs = 2\n'
        '[plan]\nengine = "sparse"\n',
    ),
    "circulant": (
        "digits_mlp.onnx",
        'passes = ["canonicalize", "circulant", "lower"]\n[circulant]\nblock_size = 8\nepochs = 2\n',
    ),
    "conv": ("digits_cnn.onnx", ""),
    "secded": ("digits_mlp.onnx", '[plan]\nrom_protection = "secded"\n'),
}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """One small build per engine kind (and a SECDED one), compiled without synthesis."""
    folder = tmp_path_factory.mktemp("bitflip")
    out = {}
    for name, (model, recipe) in RECIPES.items():
        path = folder / f"{name}.toml"
        path.write_text(recipe)
        out[name] = folder / name
        api.compile(EXAMPLES / model, EXAMPLES / "digits.npz", out[name], recipe=path, synth_timeout=None, **QUIET)
    return out


def _stored(out: Path) -> StoredDesign:
    return StoredDesign(open_build(out, rtl=True))


@pytest.mark.parametrize("kind", ["dense", "sparse", "circulant", "conv"])
def test_every_engine_layout_decodes_the_files_the_backend_wrote(builds, kind):
    stored = _stored(builds[kind])  # raises unless every field of every ROM file decodes to the graph
    engines = {layer.engine for layer in stored.layers}
    assert kind in engines
    graph = stored.graph_for(stored.arrays({}), set(range(len(stored.layers))))
    x = np.load(EXAMPLES / "digits.npz")["x_test"][:50].reshape(50, *stored.graph.inputs[0].shape)
    x = golden.quantize_input(stored.graph, x)
    assert np.array_equal(golden.run_integer(graph, x).logits_q, golden.run_integer(stored.graph, x).logits_q)
    assert stored.n_bits > 0 and all(rom.image.words == len(rom.codes) for rom in stored.roms)


def test_a_damaged_rom_file_is_named(builds, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(builds["dense"], out)
    mem = out / "rtl" / "layer0_w.mem"
    lines = mem.read_text().splitlines()
    lines[3] = f"{int(lines[3], 16) ^ 1:0{len(lines[3])}x}"
    mem.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="layer0_w.mem does not hold layer"):
        _stored(out)


def test_a_truncated_rom_file_is_named_by_the_build_reader(builds, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(builds["dense"], out)
    mem = out / "rtl" / "layer0_w.mem"
    mem.write_text("\n".join(mem.read_text().splitlines()[:3]) + "\n")
    with pytest.raises(ValueError, match="layer0_w.mem: 3 words, the design has .*; recompile"):
        _stored(out)


def test_a_dense_weight_flip_changes_the_weight_the_rom_layout_names(builds):
    """Independent of the layout code: word o*NCH + c, bit p*bits + j of rtl/dense_mac.v's ROM is
    bit j of W[o, c*P + p] (kernels/rom.py)."""
    stored = _stored(builds["dense"])
    r = next(i for i, rom in enumerate(stored.roms) if rom.image.file == "layer0_w.mem")
    entry = json.loads((builds["dense"] / "rtl" / "design.json").read_text())["engines"][0]
    p, bits, n_in = entry["multipliers"], entry["w_bits"], entry["n_in"]
    nch = -(-n_in // p)
    o, c, slot, j = 5, 1, 2, bits - 1  # the sign bit of W[5, P + 2]
    word, bit = o * nch + c, slot * bits + j
    flipped = stored.graph_for(
        stored.arrays({(r, word): stored.roms[r].data[word] ^ (1 << bit)}), {stored.roms[r].layer}
    )
    name = stored.graph.node(entry["name"]).inputs[1]
    before, after = stored.graph.params[name], flipped.params[name]
    col = c * p + slot
    assert after[o, col] - before[o, col] == (128 if before[o, col] < 0 else -128)
    changed = np.argwhere(after != before)
    assert changed.tolist() == [[o, col]]


def test_the_search_reaches_random_guessing_and_every_step_is_exact(builds, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(builds["dense"], out)
    config = BitflipConfig(max_flips=20, eval_samples=300, random_trials=2, simulate=0)
    result = api.audit(out, attacks="bitflip", bitflip=config, **QUIET)
    flips = result["targets"]["compiled"]["attacks"]["bitflip"]
    assert "bitflip" not in result["targets"]["original"]["attacks"]
    assert flips["protection"] == "none" and flips["target_accuracy"] == 0.11
    assert flips["flips_to_target"] is not None and flips["flips_to_target"] <= 20
    assert flips["accuracy_per_flip"][-1] <= 0.11 < flips["accuracy_per_flip"][0]
    assert len(flips["flips"]) == flips["flips_to_target"] == len(flips["accuracy_per_flip"]) - 1

    # replay the reported flips on the ROM files themselves, then read them back as the graph
    stored = _stored(out)
    data = np.load(EXAMPLES / "digits.npz")
    x, y = data["x_test"][:300], data["y_test"][:300]
    files = {rom.image.file: i for i, rom in enumerate(stored.roms)}
    state: dict = {}
    for k, flip in enumerate(flips["flips"], start=1):
        r = files[flip["rom"]]
        state[(r, flip["word"])] = state.get((r, flip["word"]), stored.roms[r].data[flip["word"]]) ^ 1 << flip["bit"]
        graph = stored.graph_for(stored.arrays(state), {stored.roms[i].layer for i, _ in state})
        acc = float((golden.run(graph, x, wrap=True).classes == y).mean())
        assert acc == flips["accuracy_per_flip"][k]
    rows = flips["random_baseline"]
    assert [r["flips"] for r in rows] == [2**i for i in range(len(rows))]
    assert flips["random_flips_for_same_drop"] in (None, rows[-1]["flips"])
    assert "## Bit flips" in (out / "report.md").read_text()


def test_bitflip_needs_the_compiled_target(builds):
    with pytest.raises(api.MpcError, match="add compiled to --targets"):
        api.audit(builds["dense"], attacks="bitflip", targets="original", **QUIET)


def _rom(protection: str, width: int = 8, code: int = 0x5A) -> Rom:
    from kernels.rom_protect import encode

    return Rom(0, RomImage("x.mem", "weights", width, 1), protection, [encode(code, width, protection)], [code])


def test_protected_words_cost_what_the_decoder_lets_through():
    for data in (0x5B, 0xDA, 0x00):  # one, one, four data bits changed
        assert word_cost(_rom("none"), 0, data) == bin(data ^ 0x5A).count("1")
    one_bit = 0x5B
    assert word_cost(_rom("parity"), 0, one_bit) == 2  # the data bit and the parity bit
    secded = _rom("secded")
    cost = word_cost(secded, 0, one_bit)
    assert cost >= 3  # a codeword distance of at least 4, less the bit the decoder "corrects"
    flips = physical_flips(secded, 0, one_bit)
    assert len(flips) == cost
    stored = secded.codes[0]
    for k in flips:
        stored ^= 1 << k
    assert decode(stored, 8, "secded") == (one_bit, 1)  # read as the attacker's word, no fault
    for k in flips[:-1]:  # one flip fewer: still the original word, or a detected error
        partial = secded.codes[0]
        for b in flips[: flips.index(k) + 1]:
            partial ^= 1 << b
        assert decode(partial, 8, "secded")[0] != one_bit or decode(partial, 8, "secded")[1] == 2


def test_per_weight_codes_make_every_changed_weight_pay():
    from kernels.rom_protect import encode

    original = 0x5A3C
    rom = Rom(
        0, RomImage("x.mem", "weights", 16, 1), "secded", [encode(original, 16, "secded", 2)], [original], lanes=2
    )
    changed = original ^ 0x0101  # one bit in each 8-bit lane
    flips = physical_flips(rom, 0, changed)
    assert len(flips) == word_cost(rom, 0, changed) >= 6  # at least 3 per lane
    stored = rom.codes[0]
    for k in flips:
        stored ^= 1 << k
    assert decode(stored, 16, "secded", 2) == (changed, 1)  # each lane "corrected" into the new weight
    for k in flips:  # any one flip fewer: a lane still decodes to its old value or is detected
        partial = stored ^ (1 << k)
        assert decode(partial, 16, "secded", 2) != (changed, 1)


def test_three_flips_in_one_secded_word_can_pass_as_a_corrected_word():
    """Why the replay counts words: SECDED corrects one flip and detects two, but three flips may
    decode as a single error elsewhere, silently wrong (what BFA's clustered flips can do)."""
    from kernels.rom_protect import encode

    code = encode(0x3C, 8, "secded")
    silent = [
        (a, b, c)
        for a in range(13)
        for b in range(a + 1, 13)
        for c in range(b + 1, 13)
        if decode(code ^ (1 << a) ^ (1 << b) ^ (1 << c), 8, "secded")[1] != 2
    ]
    wrong = [t for t in silent if decode(code ^ (1 << t[0]) ^ (1 << t[1]) ^ (1 << t[2]), 8, "secded")[0] != 0x3C]
    assert len(wrong) > 100  # of the 286 triples of a 13-bit codeword


def test_secded_build_the_naive_attack_is_corrected(builds, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(builds["secded"], out)
    config = BitflipConfig(max_flips=6, eval_samples=200, random_trials=1, simulate=0)
    flips = api.audit(out, attacks="bitflip", bitflip=config, **QUIET)["targets"]["compiled"]["attacks"]["bitflip"]
    assert flips["protection"] == "secded"
    naive = flips["naive_attack"]
    base = flips["accuracy_per_flip"][0]
    assert naive["accuracy_unprotected_model"] < base - 0.3  # what those flips do without the code
    words = naive["words"]
    assert naive["fault_raised"] == (words["detected"] > 0)
    if words["miscorrected"] == 0:  # every word corrected or flagged: the data the model reads is intact
        assert naive["accuracy"] == base
    steps = flips["physical_flips_per_step"]
    assert all(b - a >= 2 for a, b in zip(steps, steps[1:]))  # no data change costs one flip any more


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--bitflip-target", "1.5"], "--bitflip-target must be an accuracy in 0..1"),
        (["--bitflip-max", "0"], "--bitflip-max must be an integer >= 1"),
        (["--bitflip-simulate", "-1"], "--bitflip-simulate must be an integer >= 0"),
    ],
)
def test_cli_bitflip_option_errors_are_one_line(builds, capsys, argv, message):
    from compiler.cli import main

    assert main(["audit", str(builds["dense"]), "--attacks", "bitflip", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_prints_the_flips(builds, tmp_path, capsys):
    from compiler.cli import main

    out = tmp_path / "b"
    shutil.copytree(builds["dense"], out)
    argv = ["audit", str(out), "--attacks", "bitflip", "--bitflip-simulate", "0", "--bitflip-eval", "200", "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "compiled: test accuracy" in printed and "bit flips to accuracy 0.11:" in printed


def test_compare_shows_the_flips_of_each_build(builds, tmp_path):
    from compiler.report.compare import format_table, load_build

    rows = []
    for name in ("dense", "secded"):
        out = tmp_path / name
        shutil.copytree(builds[name], out)
        config = BitflipConfig(max_flips=8, eval_samples=200, random_trials=1, simulate=0, random_max=4)
        flips = api.audit(out, attacks="bitflip", bitflip=config, **QUIET)["targets"]["compiled"]["attacks"]
        rows.append(load_build(out))
        assert rows[-1]["bitflip_flips"] == flips["bitflip"]["flips_to_target"]
    table = format_table(rows)
    assert "flips to random guess" in table and "secded" in table and "none" in table
