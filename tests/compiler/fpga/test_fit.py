"""The device table, the fitting search (with synthesis replaced by a resource model, so these
run in milliseconds) and the parsing of nextpnr's results."""

import json

import pytest

from compiler.fpga.devices import DEVICES, TARGETS, device_for
from compiler.fpga.fit import FitError, fit, given_multipliers
from compiler.fpga.pnr import _fmax, _utilization, _utilization_from_log
from compiler.ir import Graph
from compiler.passes.base import FLOWS, Context
from compiler.targets import target_kind


def test_every_target_has_a_flow_and_devices_have_boards():
    assert set(TARGETS) <= set(FLOWS)
    assert target_kind("asic") == "asic" and {target_kind(t) for t in DEVICES} == {"fpga"}
    for device in DEVICES.values():
        assert set(device.capacity()) == {"logic", "flip_flops", "dsp", "block_ram", "io"}
        if device.open_flow:
            assert device.board and {"clk", "rx", "tx", "busy", "error"} == set(device.board.pins)
            assert "set_io -nowarn clk" in device.board.pcf()
    assert device_for("fpga") is None and device_for("ice40-up5k").dsps == 8


class FakeHardware:
    """plan/write_verilog/synthesize stand-ins: a design of `m` multipliers uses `lc_per_mult`
    logic cells each (plus 500), and `roms` block RAMs whatever m."""

    def __init__(self, lc_per_mult=300, roms=10, fail_synthesis=False):
        self.lc_per_mult, self.roms, self.fail = lc_per_mult, roms, fail_synthesis
        self.synthesized = []

    def plan(self, graph, ctx):
        g = graph.copy()
        g.meta["m"] = ctx.recipe["plan"]["multipliers"]
        return g

    def write_verilog(self, graph, folder):
        folder.mkdir(parents=True)
        m = graph.meta["m"]
        return {"engines": [{"multipliers": m}], "serial_top": {"pins": ["clk", "rx", "tx"]}}

    def synthesize(self, rtl, design, target, out, timeout_s, dsp):
        m = design["engines"][0]["multipliers"]
        self.synthesized.append((m, dsp))
        if self.fail:
            return {"status": "failed", "note": "yosys exited with status 1: ERROR: boom"}
        lut = 500 + (0 if dsp else self.lc_per_mult * m)
        return {"status": "ok", "lut": lut, "ff": 0, "carry": 10, "dsp": m if dsp else 0, "bram": self.roms}


def _fit(tmp_path, fake, recipe=None, target="ice40-up5k"):
    ctx = Context(recipe=recipe or {}, target=target, log=lambda *_: None, progress=False)
    return fit(Graph([], [], []), ctx, DEVICES[target], tmp_path, 60.0, fake.plan, fake.write_verilog, fake.synthesize)


def test_the_largest_multiplier_budget_that_fits_is_chosen(tmp_path):
    fake = FakeHardware(lc_per_mult=300)
    chosen, tried = _fit(tmp_path, fake)
    # DSPs hold up to 8 multipliers; 16 in logic: 500 + 4800 = 5300 > 5280 cells
    assert chosen.multipliers == 8 and chosen.fits
    assert (8, True) in fake.synthesized and (16, False) in fake.synthesized
    over = next(a for a in tried if a.multipliers == 16).over
    assert over == {"logic": (5300, 5280)}
    assert len(fake.synthesized) <= 4  # a binary search, not every candidate


def test_a_recipe_multiplier_count_is_kept_or_refused(tmp_path):
    chosen, tried = _fit(tmp_path, FakeHardware(), {"plan": {"multipliers": 4}})
    assert chosen.multipliers == 4 and len(tried) == 1
    with pytest.raises(FitError, match=r"\[plan\] multipliers = 16 does not fit: needs 5300 logic cells, has 5280"):
        _fit(tmp_path / "b", FakeHardware(), {"plan": {"multipliers": 16}})
    assert given_multipliers({"lower": {"multipliers": 3}}) == 3 and given_multipliers({}) is None


def test_nothing_fits_names_the_resource_and_a_bigger_device(tmp_path):
    with pytest.raises(FitError) as e:
        _fit(tmp_path, FakeHardware(roms=31))  # 31 block RAMs: the UP5K has 30, the HX8K 32
    message = str(e.value)
    assert "needs 31 4-Kbit block RAMs, has 30" in message
    assert "fewer weight bits or more sparsity" in message and "ice40-hx8k" in message
    with pytest.raises(FitError, match="synthesis failed: yosys exited"):
        _fit(tmp_path / "b", FakeHardware(fail_synthesis=True))


def test_nextpnr_report_and_log_parsing(tmp_path):
    report = {
        "fmax": {"clk": {"achieved": 31.4159, "constraint": 12.0}},
        "utilization": {"ICESTORM_LC": {"used": 3000, "available": 5280}, "SB_IO": {"used": 3, "available": 96}},
    }
    assert _fmax(report) == 31.42
    assert _utilization(report) == {"logic": [3000, 5280], "io": [3, 96]}
    (tmp_path / "nextpnr.log").write_text("Info: Device utilisation:\nInfo:   ICESTORM_LC:  6101/ 5280   115%\n")
    assert _utilization_from_log(tmp_path) == {"logic": [6101, 5280]}
    json.dumps(report)
