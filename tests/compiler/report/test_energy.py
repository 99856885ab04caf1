"""The energy model: Horowitz's table, interpolation, operation counts by engine, the report fields."""

import json
from pathlib import Path

import numpy as np
import pytest

from compiler.report import energy
from compiler.report.energy import (
    compiled_energy_pj,
    energy_section,
    float32_energy_pj,
    int_add_pj,
    int_mult_pj,
    layer_work,
    total_work,
    uncompressed_layers,
)


def _layer(shape=(4, 10), zeros=0, engine="dense", bits=8, in_bits=8, acc_bits=20, rom_bits=None):
    n_out, n_in = shape
    return {
        "shape": [n_out, n_in],
        "zero_weights": zeros,
        "engine": engine,
        "bits": bits,
        "acc_bits": acc_bits,
        "input_format": {"bits": in_bits},
        "rom_bits": rom_bits if rom_bits is not None else n_out * n_in * bits,
    }


def test_table_entries_are_horowitz_45nm():
    assert int_add_pj(8) == pytest.approx(0.03) and int_add_pj(32) == pytest.approx(0.1)
    assert int_mult_pj(8, 8) == pytest.approx(0.2) and int_mult_pj(32, 32) == pytest.approx(3.1)
    assert energy.FP32_MULT_PJ == 3.7 and energy.FP32_ADD_PJ == 0.9
    assert energy.dram_pj(64) == pytest.approx(1300) and energy.sram_pj(64) == pytest.approx(10)
    assert "Horowitz" in energy.CITATION and "ISSCC 2014" in energy.CITATION


def test_interpolation_between_and_below_the_table():
    assert int_add_pj(20) == pytest.approx(0.03 + (0.1 - 0.03) * 12 / 24)
    assert int_add_pj(4) == pytest.approx(0.015)
    assert int_mult_pj(4, 4) == pytest.approx(0.2 * 16 / 64)
    assert int_mult_pj(8, 4) == int_mult_pj(4, 8) < int_mult_pj(8, 8) < int_mult_pj(16, 16) < int_mult_pj(32, 32)


def test_dense_engine_skips_no_zero_weights_sparse_skips_all():
    dense, sparse = layer_work(_layer(zeros=15)), layer_work(_layer(zeros=15, engine="sparse"))
    assert dense["skipped_zeros"] == 0 and dense["multiplies"] == dense["additions"] == 40
    assert sparse["skipped_zeros"] == 15 and sparse["multiplies"] == sparse["weight_reads"] == 25
    assert (
        compiled_energy_pj([_layer(zeros=15, engine="sparse")])["multiply"]
        < compiled_energy_pj([_layer(zeros=15)])["multiply"]
    )


def test_totals_add_up_over_layers():
    layers = [_layer((4, 10), zeros=3, engine="sparse"), _layer((2, 4), zeros=1)]
    assert total_work(layers) == {
        "multiplies": 37 + 8,
        "additions": 45,
        "weight_reads": 45,
        "weight_read_bits": 320 + 64,
        "skipped_zeros": 3,
        "zero_weights": 4,
    }


def test_float32_baseline_of_one_weight_by_hand():
    parts = float32_energy_pj([_layer((1, 1))])
    assert parts == pytest.approx(
        {
            "multiply": 3.7,
            "add": 0.9,
            "weight_memory": 2 * 32 * 1300 / 64,  # the weight and the bias, from DRAM
            "activation_memory": 32 * 10 / 64,
        }
    )


def test_compiled_layer_by_hand():
    parts = compiled_energy_pj([_layer((2, 3), bits=4, in_bits=8, acc_bits=32, rom_bits=100)])
    assert parts == pytest.approx(
        {
            "multiply": 6 * 0.2 * 32 / 64,
            "add": 6 * 0.1,
            "weight_memory": 100 * 10 / 64,
            "activation_memory": 6 * 8 * 10 / 64,
        }
    )


def test_energy_section_fields_and_ratio():
    section = energy_section([_layer((32, 64)), _layer((10, 32), acc_bits=17)])
    e = section["energy_pj"]
    assert e["compiled"] == pytest.approx(sum(e["compiled_parts"].values()), abs=0.5)
    assert section["energy_ratio"] == pytest.approx(e["float32_baseline"] / e["compiled"], rel=1e-3)
    assert section["energy_model"]["source"] == energy.CITATION and section["energy_model"]["assumptions"]
    json.dumps(section)  # report.json must be able to hold it


def test_fewer_weight_bits_cost_less_energy():
    wide, narrow = (sum(compiled_energy_pj([_layer(bits=b, rom_bits=40 * b)]).values()) for b in (8, 4))
    assert narrow < wide


def test_digits_example_compiled_energy_is_below_float_baseline(digits_model, digits_npz, digits_lowered, tmp_path):
    from compiler import api

    report = api.compile(
        digits_model, digits_npz, tmp_path / "b", log=lambda *_: None, progress=False, synth_timeout=None
    )
    _, lowered = digits_lowered
    for layer, node in zip(report["layers"], lowered.weighted_nodes()):
        assert layer["zero_weights"] == int(np.sum(lowered.params[node.inputs[1]] == 0))
    hw = report["hardware"]
    assert hw["work"]["multiplies"] == 64 * 32 + 32 * 16 + 16 * 10  # every engine is dense
    assert hw["work"]["skipped_zeros"] == 0 < hw["work"]["zero_weights"]
    assert hw["energy_pj"]["compiled"] < hw["energy_pj"]["float32_baseline"]
    assert hw["energy_ratio"] > 1


# ---- the three baselines: float32 (DRAM), float32 (SRAM), uncompressed; on the original model ----
def test_float32_sram_baseline_of_one_weight_by_hand():
    parts = float32_energy_pj([_layer((1, 1))], weights_in="sram")
    assert parts["weight_memory"] == pytest.approx(2 * 32 * 10 / 64)  # the weight and the bias, from SRAM
    assert parts["multiply"] == float32_energy_pj([_layer((1, 1))])["multiply"]


def test_uncompressed_layers_are_dense_int8_on_the_default_engines():
    dense = {"name": "fc", "op": "dense", "shape": [2, 3], "output_positions": 1, "dense_multiplies": 6}
    conv = {"name": "c", "op": "conv2d", "shape": [4, 2, 3, 3], "output_positions": 5, "dense_multiplies": 360}
    d, c = uncompressed_layers([dense, conv])
    assert d["engine"] == "dense" and c["engine"] == "conv"
    assert d["bits"] == d["input_format"]["bits"] == 8 and d["zero_weights"] == 0
    assert d["acc_bits"] == 16 + 2 and c["acc_bits"] == 16 + 5  # 8 + 8 + ceil(log2(n_in)): 3, and 2*3*3 = 18 terms
    assert d["rom_bits"] == 6 * 8 + 2 * 18 and c["rom_bits"] == 72 * 8 + 4 * 21
    assert layer_work(d)["multiplies"] == 6 and layer_work(c)["multiplies"] == 360
    assert layer_work(c)["weight_read_bits"] == 5 * c["rom_bits"]  # a conv engine reads its ROM per position


def test_energy_section_baselines_price_the_given_original_layers():
    original = [{"name": "fc", "op": "dense", "shape": [32, 64], "output_positions": 1, "dense_multiplies": 2048}]
    compiled = [_layer((20, 64), zeros=1000, engine="sparse", bits=4, rom_bits=2000)]  # pruned, neurons removed
    section = energy_section(compiled, original)
    base = section["energy_baselines"]
    assert set(base) == set(energy.BASELINES)
    other = energy_section([_layer((32, 64))], original)["energy_baselines"]  # another build of the same model
    assert {k: b["energy_pj"] for k, b in other.items()} == {k: b["energy_pj"] for k, b in base.items()}
    assert base["float32_dram"]["energy_pj"] == pytest.approx(sum(float32_energy_pj(original).values()), abs=0.1)
    assert base["float32_dram"]["work"]["multiplies"] == base["uncompressed"]["work"]["multiplies"] == 2048
    assert base["float32_sram"]["energy_pj"] < base["float32_dram"]["energy_pj"]
    e = section["energy_pj"]
    for b in base.values():
        assert b["ratio"] == pytest.approx(b["energy_pj"] / e["compiled"], rel=1e-2)
    assert section["energy_ratio"] == base["float32_dram"]["ratio"]  # old readers: the DRAM baseline
    assert e["float32_baseline"] == base["float32_dram"]["energy_pj"]
    assert e["float32_baseline_parts"] == base["float32_dram"]["parts"]
    json.dumps(section)


def _digits_build(model, data, out: Path, recipe: str | None = None) -> dict:
    from compiler import api

    path = None
    if recipe is not None:
        path = out.parent / f"{out.name}.toml"
        path.write_text(recipe)
    return api.compile(model, data, out, recipe=path, log=lambda *_: None, progress=False, synth_timeout=None)


ADMM_RECIPE = """passes = ["canonicalize", "admm", "lower"]
[admm]
sparsity = 0.9
bits = 4
admm_epochs = 2
retrain_epochs = 1
"""
CIRCULANT_RECIPE = """passes = ["canonicalize", "circulant", "lower"]
[circulant]
block_size = 8
epochs = 0
"""


@pytest.fixture(scope="module")
def digits_builds(digits_model, digits_npz, tmp_path_factory):
    """The demo MLP as a plain 8-bit PTQ build, an ADMM build with removed neurons and a
    block-circulant build (short training: the energy model needs shapes, not accuracy)."""
    root = tmp_path_factory.mktemp("energy-builds")
    recipes = {"dense": None, "admm": ADMM_RECIPE, "circulant": CIRCULANT_RECIPE}
    return {name: root / name for name, r in recipes.items() if _digits_build(digits_model, digits_npz, root / name, r)}


def test_every_build_of_one_model_has_the_same_baselines(digits_builds):
    reports = {name: json.loads((out / "report.json").read_text()) for name, out in digits_builds.items()}
    admm = reports["admm"]["layers"]
    assert any(layer["removed_outputs"] for layer in admm) and admm[0]["shape"] != admm[0]["original_shape"]
    assert {layer["engine"] for layer in reports["circulant"]["layers"]} >= {"circulant"}
    energies = {
        name: {k: b["energy_pj"] for k, b in r["hardware"]["energy_baselines"].items()} for name, r in reports.items()
    }
    assert energies["dense"] == energies["admm"] == energies["circulant"]
    dense = reports["dense"]["hardware"]
    base = dense["energy_baselines"]
    assert base["float32_sram"]["energy_pj"] < base["float32_dram"]["energy_pj"]
    # the same model uncompressed does the plain 8-bit PTQ build's work: the ratio is about 1
    assert base["uncompressed"]["work"]["multiplies"] == dense["work"]["multiplies"]
    assert base["uncompressed"]["ratio"] == pytest.approx(1.0, abs=0.05)
    # what compression saved: the ADMM build (90% pruned, 4-bit, neurons removed) saves most
    saved = {name: r["hardware"]["energy_baselines"]["uncompressed"]["ratio"] for name, r in reports.items()}
    assert saved["admm"] > saved["circulant"] > saved["dense"]


def test_cnn_baselines_count_every_output_position(digits_model, digits_npz, tmp_path):
    cnn = digits_model.parent / "digits_cnn.onnx"
    hw = _digits_build(cnn, digits_npz, tmp_path / "cnn")["hardware"]
    base = hw["energy_baselines"]
    assert base["float32_dram"]["work"]["multiplies"] == base["uncompressed"]["work"]["multiplies"]
    assert base["uncompressed"]["work"]["multiplies"] == hw["work"]["multiplies"]  # convs: H_out * W_out uses
    assert base["uncompressed"]["ratio"] == pytest.approx(1.0, abs=0.05)


def test_report_md_shows_the_three_baselines_and_what_compression_saved(digits_builds):
    md = (digits_builds["admm"] / "report.md").read_text()
    section = md[md.index("## Work and energy per inference") :]
    hw = json.loads((digits_builds["admm"] / "report.json").read_text())["hardware"]
    header = section.splitlines()[2]
    assert "weights in DRAM" in header and "on-chip SRAM" in header and "uncompressed" in header
    ratios = next(line for line in section.splitlines() if line.startswith("| **baseline / compiled**"))
    for b in hw["energy_baselines"].values():
        assert f"**{b['ratio']:g}x**" in ratios
    saved = hw["energy_baselines"]["uncompressed"]["ratio"]
    assert f"What compression saved: **{saved:g}x**" in section


def test_compare_shows_the_three_energy_ratios(digits_builds):
    from compiler.report.compare import compare

    lines = compare(list(digits_builds.values())).splitlines()
    header = lines[0]
    assert all(h in header for h in ("float32 DRAM/compiled", "float32 SRAM/compiled", "uncompressed/compiled"))
    admm = next(line for line in lines if line.startswith(str(digits_builds["admm"])))
    saved = json.loads((digits_builds["admm"] / "report.json").read_text())["hardware"]["energy_baselines"]
    assert f"{saved['uncompressed']['ratio']:,.1f}x" in admm or f"{saved['uncompressed']['ratio']:,.2f}x" in admm


def test_report_written_before_the_baselines_still_renders_and_compares(digits_builds, tmp_path):
    from compiler.report.compare import load_build
    from compiler.report.markdown import render_markdown

    report = json.loads((digits_builds["dense"] / "report.json").read_text())
    del report["hardware"]["energy_baselines"]
    md = render_markdown(report)
    assert "float32, weights in DRAM" in md and "uncompressed" not in md.split("## Work and energy")[1].split("- ")[0]
    old = tmp_path / "old"
    old.mkdir()
    (old / "report.json").write_text(json.dumps(report))
    row = load_build(old)
    assert row["energy_ratio"] == report["hardware"]["energy_ratio"] and row["energy_ratio_uncompressed"] is None


# ---- timing: cycles per inference, clock, latency, throughput (compiler/report/report.py) ----
def test_simulated_cycles_replace_the_estimate():
    from compiler.report.report import set_cycles

    hw = {"clock_mhz": 100.0}
    set_cycles(hw, 500, "estimate")
    assert hw == {
        "clock_mhz": 100.0,
        "cycles_per_inference": 500,
        "cycles_source": "estimate",
        "initiation_interval": None,
        "latency_us": 5.0,
        "throughput_per_s": 200_000.0,
    }
    set_cycles(hw, 400.0, "simulation", initiation_interval=250.0)
    assert hw["cycles_source"] == "simulation" and hw["latency_us"] == 4.0 and hw["throughput_per_s"] == 400_000.0


def test_build_report_labels_cycles_as_estimate(tiny_build):
    hw = json.loads((tiny_build / "report.json").read_text())["hardware"]
    assert hw["cycles_source"] == "estimate"
    assert hw["cycles_per_inference"] == hw["estimated_cycles_per_inference"] > 0
    assert hw["latency_us"] == pytest.approx(hw["cycles_per_inference"] / hw["clock_mhz"], abs=1e-3)
    assert hw["clock_source"] == "assumed" and hw["clock_note"].startswith("assumption")


@pytest.mark.slow
def test_simulation_replaces_estimated_cycles(tiny_compile, tmp_path):
    from compiler import api

    out = tiny_compile(tmp_path / "b", synth_timeout=None)
    result = api.simulate(out, samples=4, log=lambda *_: None)
    hw = json.loads((out / "report.json").read_text())["hardware"]
    assert hw["cycles_source"] == "simulation" and hw["cycles_per_inference"] == result["cycles_per_inference"]
    assert hw["initiation_interval"] == result["initiation_interval"]
    assert hw["latency_us"] == pytest.approx(hw["cycles_per_inference"] / hw["clock_mhz"], abs=1e-3)
    assert "measured in simulation" in (out / "report.md").read_text()
