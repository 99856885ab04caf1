"""Device targets end to end (issue #14): the demo fitted to an iCE40 UP5K, placed and routed
with nextpnr-ice40 (measured Fmax, utilisation, a bitstream), counted against an XC7A35T, and
an iCE40 build without synthesis saying that its clock is an assumption."""

import json
import os
import shutil

import pytest

from compiler import api
from compiler.cli import main
from compiler.fpga.devices import DEVICES

TOOLS = ("yosys", "nextpnr-ice40", "icepack")
needs_tools = pytest.mark.skipif(
    not os.environ.get("CI") and any(shutil.which(t) is None for t in TOOLS),
    reason=f"needs {', '.join(TOOLS)} (make tools installs them; CI always runs this)",
)
QUIET = {"log": lambda *_: None, "progress": False}


@pytest.mark.slow
@needs_tools
def test_demo_fits_places_routes_and_times_on_an_up5k(digits_model, digits_npz, tmp_path):
    out = tmp_path / "up5k"
    report = api.compile(digits_model, digits_npz, out, target="ice40-up5k", **QUIET)
    hw = report["hardware"]
    assert hw["device"] == "ice40-up5k" and hw["clock_source"] == "nextpnr"
    assert hw["fmax_mhz"] > 5 and hw["clock_mhz"] == hw["fmax_mhz"]
    assert hw["latency_us"] == pytest.approx(hw["cycles_per_inference"] / hw["fmax_mhz"], abs=1e-3)
    capacity = DEVICES["ice40-up5k"].capacity()
    for resource, (used, available) in hw["utilization"].items():
        assert used <= available and (resource == "io" or available == capacity[resource])
    assert hw["utilization"]["io"][0] == 5  # clk, rx, tx, busy, error: the serial top
    bitstream = out / hw["bitstream"]
    assert bitstream.is_file() and bitstream.stat().st_size > 100_000  # an UP5K image is ~104 KB
    fit = hw["fit"]
    chosen = next(a for a in fit["attempts"] if a["multipliers"] == fit["chosen_multipliers"])
    assert chosen["fits"] and all(not a["fits"] for a in fit["attempts"] if a["multipliers"] > chosen["multipliers"])
    manifest = json.loads((out / ".mpc-build.json").read_text())["files"]
    assert {"fpga/design.bin", "fpga/board.pcf", "synth/netlist.json"} <= set(manifest)
    assert not (out / "fit").exists()  # the fitting's scratch designs are gone
    # the build's plan is the fitted one, in graph.json and in the plan checkpoint
    planned = json.loads((out / "graph.json").read_text())["meta"]["plan"]
    checkpoint = json.loads((out / "checkpoints" / "03-plan" / "graph.json").read_text())["meta"]["plan"]
    assert planned["multipliers"] == checkpoint["multipliers"] == fit["chosen_multipliers"]
    text = (out / "report.md").read_text()
    assert "placed and routed with nextpnr-ice40" in text and "utilization of ice40-up5k" in text


@pytest.mark.slow
@needs_tools
def test_no_pnr_fits_by_synthesis_and_assumes_the_board_clock(digits_model, digits_npz, tmp_path):
    report = api.compile(
        digits_model, digits_npz, tmp_path / "fit", target="ice40-up5k", place_and_route=False, **QUIET
    )
    hw = report["hardware"]
    assert hw["fit"]["chosen_multipliers"] >= 1 and hw["place_and_route"] is None and hw["bitstream"] is None
    assert hw["clock_source"] == "assumed" and hw["clock_mhz"] == 12.0
    assert all(used <= available for used, available in hw["utilization"].values())
    assert not (tmp_path / "fit" / "fpga").exists()


@pytest.mark.slow
@needs_tools
def test_xc7a35t_counts_resources_against_the_part(digits_model, digits_npz, tmp_path):
    report = api.compile(digits_model, digits_npz, tmp_path / "xc7", target="xc7a35t", **QUIET)
    hw = report["hardware"]
    assert hw["device"] == "xc7a35t" and hw["clock_source"] == "assumed" and hw["fmax_mhz"] is None
    assert hw["utilization"]["logic"] == [hw["lut"], 20800] and hw["utilization"]["dsp"][1] == 90
    assert hw["bitstream"] is None


def test_an_ice40_build_without_synthesis_assumes_the_board_clock(digits_model, digits_npz, tmp_path, capsys):
    out = tmp_path / "nosynth"
    argv = ["compile", str(digits_model), "--data", str(digits_npz), "-o", str(out), "--target", "ice40-hx8k"]
    assert main([*argv, "--no-synth", "--quiet"]) == 0
    hw = json.loads((out / "report.json").read_text())["hardware"]
    assert hw["device"] == "ice40-hx8k" and hw["utilization"] is None
    assert hw["clock_source"] == "assumed" and hw["clock_mhz"] == 12.0 and hw["bitstream"] is None
    assert not (out / "fpga").exists()


def test_unknown_targets_are_refused_with_the_list(capsys, digits_model):
    assert main(["compile", str(digits_model), "-o", "x", "--target", "ice40-up9k"]) == 2
    err = capsys.readouterr().err
    assert "ice40-up5k" in err and "xc7a35t" in err and err.count("\n") == 1
