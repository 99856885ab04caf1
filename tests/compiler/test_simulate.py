"""compiler/simulate.py: the compiled simulation model is built once per design and reused
(OUT/sim_build/model_<simulator>/, sim/build_cache.py), rebuilt when a source changes, while a
changed ROM image is read by the reused model; sim.json's speed figures; the simulator that
"auto" picks; and both simulators agree bit for bit on a small design."""

import json
import shutil

import numpy as np
import pytest

from compiler import api
from compiler.audit.rom_bits import StoredDesign
from compiler.build import open_build
from compiler.outdir import MANIFEST
from compiler.simulate import AUTO_VERILATOR_CYCLES, choose_simulator, model_folder, simulate_design, simulated_cycles
from sim import build_cache
from tests.compiler.conftest import compile_tiny

QUIET = {"log": lambda *_: None}


@pytest.fixture(scope="module")
def tiny_build(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "tiny"
    compile_tiny(tiny_model, out, synth_timeout=None)
    return out


@pytest.fixture
def build(tiny_build, tmp_path):
    """A private copy of the tiny build (the tests change its files)."""
    out = tmp_path / "tiny"
    shutil.copytree(tiny_build, out)
    return out


def _stamp(out, simulator="icarus"):
    model = model_folder(out, simulator)
    key_file = model / build_cache.KEY_FILE
    binary = build_cache.model_file(model, simulator, "mpc_top")
    return key_file.read_text(), key_file.stat().st_mtime_ns, binary.stat().st_mtime_ns


def test_a_second_simulate_reuses_the_compiled_model(build):
    first = api.simulate(build, samples=3, simulator="icarus", **QUIET)
    assert not first["build_reused"] and first["build_seconds"] > 0
    before = _stamp(build)
    second = api.simulate(build, samples=3, simulator="icarus", **QUIET)
    assert second["build_reused"] and second["build_seconds"] == 0.0
    assert _stamp(build) == before  # neither the key nor the model was written again
    assert first["mismatches"] == second["mismatches"] == 0
    assert second["cycles_per_inference"] == first["cycles_per_inference"]
    manifest = json.loads((build / MANIFEST).read_text())
    assert "sim_build/model_icarus" in manifest["folders"]  # mpc's own folder: --force may remove it


def test_sim_json_reports_the_simulator_and_its_speed(build):
    result = api.simulate(build, samples=4, simulator="icarus", **QUIET)
    sim = json.loads((build / "sim.json").read_text())
    assert sim["simulator"] == "icarus" and sim["samples"] == 4
    assert sim["run_seconds"] > 0 and sim["build_seconds"] > 0
    assert sim["samples_per_second"] == pytest.approx(4 / sim["run_seconds"], rel=1e-2)
    report = json.loads((build / "report.json").read_text())
    assert report["simulation"]["samples_per_second"] == result["samples_per_second"]
    assert "samples/s" in (build / "report.md").read_text()


def test_a_changed_source_rebuilds_the_model(build):
    api.simulate(build, samples=2, simulator="icarus", **QUIET)
    key_before = json.loads((model_folder(build, "icarus") / build_cache.KEY_FILE).read_text())["key"]
    top = build / "rtl" / "mpc_top.v"
    top.write_text(top.read_text() + "\n// an edit\n")
    result = api.simulate(build, samples=2, simulator="icarus", **QUIET)
    assert not result["build_reused"] and result["mismatches"] == 0
    key_after = json.loads((model_folder(build, "icarus") / build_cache.KEY_FILE).read_text())["key"]
    assert key_after != key_before


def test_a_changed_rom_is_read_by_the_reused_model(build):
    """ROM images are read when the simulation starts ($readmemh): the bit-flip audit's copies
    with other ROM contents run on the build's model, and the model sees their contents."""
    api.simulate(build, samples=2, simulator="icarus", **QUIET)
    before = _stamp(build)
    b = open_build(build, rtl=True, vectors=True)
    x_q = b.x_q[:4].astype(np.int64)
    rom = next(r for r in StoredDesign(b).roms if r.image.file == "layer1_b.mem")  # the classifier's biases
    codes = list(rom.codes)
    codes[0] ^= 1 << (rom.code_bits - 2)  # a high bit of class 0's bias: its logit moves far
    files = {rom.image.file: (codes, rom.code_bits)}
    sim = simulate_design(build, build / "sim_build" / "flipped", b.graph, b.design, x_q, files)
    assert sim["build_reused"] and sim["simulator"] == "icarus"
    assert sim["mismatches"] > 0  # compared with the unflipped golden run: the flip was read
    assert _stamp(build) == before


def test_a_folder_without_the_key_is_never_emptied(tmp_path):
    """start_build empties only a folder the cache keyed before (mpc's own)."""
    folder = tmp_path / "someone_elses"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    build_cache.start_build(folder)
    assert (folder / "keep.txt").read_text() == "mine"
    build_cache.finish_build(folder, "k1", "icarus", 1.0)
    (folder / "stale.o").write_text("old")
    build_cache.start_build(folder)  # now keyed: a rebuild starts from an empty folder
    assert sorted(p.name for p in folder.iterdir()) == [build_cache.KEY_FILE]


def test_the_key_follows_sources_and_parameters_but_not_rom_images(tmp_path):
    src = tmp_path / "top.v"
    src.write_text("module top; endmodule\n")
    rom = tmp_path / "w.mem"
    rom.write_text("00\n")

    def key(**change):
        args = {"toplevel": "top", "simulator": "icarus", "parameters": {"N": 2}, "build_args": []} | change
        return build_cache.build_key([src], args["toplevel"], args["simulator"], args["parameters"],
                                     args["build_args"], {})  # fmt: skip

    base = key()
    rom.write_text("ff\n")
    assert key() == base
    assert key(parameters={"N": 3}) != base
    assert key(build_args=["-Wno-fatal"]) != base
    assert key(toplevel="other") != base
    src.write_text("module top; wire a; endmodule\n")
    assert key() != base


def test_auto_picks_verilator_for_long_runs_or_an_existing_model(tmp_path, monkeypatch):
    import sim.runner

    design = {"estimated_latency": 1000, "estimated_interval": 400}
    assert choose_simulator("icarus", tmp_path, design, 10_000) == "icarus"
    assert choose_simulator("verilator", tmp_path, design, 1) == "verilator"
    long_run = next(n for n in range(1, 10**6) if simulated_cycles(design, n) >= AUTO_VERILATOR_CYCLES)
    monkeypatch.setattr(sim.runner, "ensure_verilator_on_path", lambda: "verilator")
    assert choose_simulator("auto", tmp_path, design, long_run - 1) == "icarus"
    assert choose_simulator("auto", tmp_path, design, long_run) == "verilator"
    model_folder(tmp_path, "verilator").mkdir(parents=True)
    build_cache.start_build(model_folder(tmp_path, "verilator"))  # a build that never finished
    assert choose_simulator("auto", tmp_path, design, 1) == "icarus"
    build_cache.finish_build(model_folder(tmp_path, "verilator"), "k", "verilator", 1.0)
    assert choose_simulator("auto", tmp_path, design, 1) == "verilator"  # already built: no cost left

    def missing():
        raise sim.runner.SimulationError("verilator not found")

    monkeypatch.setattr(sim.runner, "ensure_verilator_on_path", missing)
    assert choose_simulator("auto", tmp_path, design, long_run) == "icarus"


def test_simulated_cycles_counts_the_benchs_two_phases():
    design = {"estimated_latency": 100, "estimated_interval": 10}
    # 12 samples back to back: 100 + 11 * 10; 8 replayed at about half speed: 2 * (100 + 7 * 10)
    assert simulated_cycles(design, 12) == 210 + 340


@pytest.mark.slow
def test_icarus_and_verilator_agree_bit_for_bit(build):
    icarus = api.simulate(build, samples=6, simulator="icarus", **QUIET)
    verilator = api.simulate(build, samples=6, simulator="verilator", **QUIET)
    assert icarus["mismatches"] == verilator["mismatches"] == 0
    for key in ("cycles_per_inference", "initiation_interval", "mean_latency_streaming"):
        assert icarus[key] == verilator[key], key
    again = api.simulate(build, samples=6, simulator="verilator", **QUIET)
    assert again["build_reused"] and again["mismatches"] == 0
    assert not any(model_folder(build, "verilator").glob("*.gch"))  # intermediates removed after linking
