"""yosys synthesis in every build: resources in report.json, and a clear note when it cannot run."""

import json
import shutil
import time

import pytest

from compiler.fpga import synth
from compiler.fpga.synth import NAND2_EQUIVALENT, resources, synthesize

needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed")


def _report(build):
    return json.loads((build / "report.json").read_text())


def _design(build):
    return json.loads((build / "rtl" / "design.json").read_text())


@needs_yosys
def test_fpga_build_reports_xilinx_resources(fpga_build):
    hw = _report(fpga_build)["hardware"]
    syn = hw["synthesis"]
    assert syn["status"] == "ok" and syn["note"] is None
    assert syn["version"].startswith("Yosys") and "synth_xilinx" in syn["command"]
    cells = syn["cell_counts"]
    assert hw["lut"] == sum(n for c, n in cells.items() if c.startswith("LUT")) > 0
    assert hw["ff"] == sum(n for c, n in cells.items() if c.startswith("FD")) > 0
    # every 8x8 multiplier of the engines maps onto one DSP48E1
    assert hw["dsp"] == hw["multipliers"] == cells["DSP48E1"]
    assert hw["bram"] is not None and hw["lutram"] is not None
    assert (fpga_build / "synth" / "stat.json").is_file() and (fpga_build / "synth" / "yosys.log").is_file()
    assert not (fpga_build / "rtl" / "stat.json").exists()
    md = (fpga_build / "report.md").read_text()
    assert f"LUT {hw['lut']:,}, FF {hw['ff']:,}, DSP {hw['dsp']:,}" in md


@needs_yosys
def test_asic_build_reports_cells_and_nand2_area(asic_build):
    hw = _report(asic_build)["hardware"]
    cells = hw["synthesis"]["cell_counts"]
    assert "lut" not in hw and hw["cells"] == sum(cells.values()) > 0
    assert set(cells) <= set(NAND2_EQUIVALENT) and hw["synthesis"]["unpriced_cells"] == []
    assert cells["$_DFF_P_"] > 0  # flip-flops legalized to the one plain D flip-flop
    assert hw["area_nand2"] == pytest.approx(sum(n * NAND2_EQUIVALENT[c] for c, n in cells.items()), abs=0.1)
    assert "NAND2 equivalents" in (asic_build / "report.md").read_text()


def test_fpga_resources_from_cell_counts():
    cells = {
        "LUT2": 1,
        "LUT6": 3,
        "FDRE": 4,
        "FDSE": 1,
        "DSP48E1": 2,
        "RAMB36E1": 1,
        "RAMB18E1": 1,
        "RAM32M": 2,
        "SRLC32E": 1,
        "MUXF7": 5,
        "CARRY4": 7,
    }
    assert resources(cells, "fpga") == {"lut": 4, "ff": 5, "dsp": 2, "bram": 1.5, "lutram": 9}


def test_asic_area_flags_cells_without_an_equivalent():
    got = resources({"$_NAND_": 3, "$_DFF_P_": 1, "$_FANCY_": 2}, "asic")
    assert got["cells"] == 6 and got["unpriced_cells"] == ["$_FANCY_"]
    assert got["area_nand2"] == pytest.approx(3 + NAND2_EQUIVALENT["$_DFF_P_"], abs=0.1)


def test_missing_yosys_is_a_note_not_an_error(tiny_build, tmp_path):
    result = synthesize(tiny_build / "rtl", _design(tiny_build), "fpga", tmp_path, yosys="no-such-yosys-binary")
    assert result["status"] == "unavailable" and "not found" in result["note"]
    assert result.get("lut") is None


@needs_yosys
def test_timeout_is_reported_and_yosys_is_stopped(tiny_build, tmp_path):
    start = time.perf_counter()
    result = synthesize(tiny_build / "rtl", _design(tiny_build), "fpga", tmp_path, timeout_s=0.3)
    assert time.perf_counter() - start < 5
    assert result["status"] == "timeout" and "0.3 s" in result["note"] and result["cell_counts"] is None


@needs_yosys
def test_failed_synthesis_quotes_yosys_error(tiny_build, tmp_path):
    rtl = tmp_path / "rtl"
    shutil.copytree(tiny_build / "rtl", rtl)
    design = _design(tiny_build)
    (rtl / f"{design['top']}.v").write_text("module broken(; endmodule\n")
    result = synthesize(rtl, design, "fpga", tmp_path / "synth")
    assert result["status"] == "failed" and "ERROR" in result["note"]


def test_unknown_target_is_rejected(tiny_build, tmp_path):
    with pytest.raises(ValueError, match="no synthesis flow"):
        synthesize(tiny_build / "rtl", _design(tiny_build), "gpu", tmp_path)


def test_no_synth_build_notes_it(tiny_build):
    report = _report(tiny_build)
    hw = report["hardware"]
    assert hw["synthesis"]["status"] == "skipped" and hw["lut"] is None and hw["dsp"] is None
    assert "synthesis skipped" in (tiny_build / "report.md").read_text()


def test_build_without_yosys_still_writes_the_report(tiny_compile, tmp_path, monkeypatch):
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    out = tiny_compile(tmp_path / "b")
    hw = _report(out)["hardware"]
    assert hw["synthesis"]["status"] == "unavailable" and hw["lut"] is None
    assert hw["energy_pj"]["compiled"] > 0  # the rest of the report is there
    assert "synthesis unavailable" in (out / "report.md").read_text()


@needs_yosys
@pytest.mark.slow
def test_digits_example_fpga_report_has_every_hardware_field(digits_model, digits_npz, tmp_path):
    from compiler import api

    hw = api.compile(digits_model, digits_npz, tmp_path / "digits", log=lambda *_: None, progress=False)["hardware"]
    assert hw["synthesis"]["status"] == "ok"
    assert min(hw["lut"], hw["ff"], hw["dsp"], hw["cycles_per_inference"]) > 0
    assert 0 < hw["energy_pj"]["compiled"] < hw["energy_pj"]["float32_baseline"]


def test_cli_no_synth_flag(tiny_model, tmp_path, capsys):
    from compiler.cli import main

    model, data = tiny_model
    assert main(["compile", str(model), "--data", str(data), "-o", str(tmp_path / "b"), "--no-synth", "--quiet"]) == 0
    assert _report(tmp_path / "b")["hardware"]["synthesis"]["status"] == "skipped"


def test_cli_rejects_a_non_positive_synth_timeout(tiny_model, tmp_path, capsys):
    from compiler.cli import main

    model, data = tiny_model
    assert main(["compile", str(model), "--data", str(data), "-o", str(tmp_path / "b"), "--synth-timeout", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpc compile: error: --synth-timeout") and err.count("\n") == 1
    assert not (tmp_path / "b").exists()
