"""The energy model: Horowitz's table, interpolation, operation counts by engine, the report fields."""

import json

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
    assert hw["clock_source"].startswith("assumption")


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
