"""The target table (compiler/targets.py) is the one place target facts are written: the flows,
the devices, synthesis and the report read it."""

from compiler.fpga.devices import DEVICES, TARGETS
from compiler.passes.base import FLOWS
from compiler.targets import SYNTHESIS_FLOWS, synthesis_flow, target_kind
from compiler.targets import TARGETS as TABLE


def test_every_target_has_a_flow_and_every_device_a_target():
    assert list(FLOWS) == list(TABLE) == list(TARGETS)
    assert set(DEVICES) <= set(TABLE)


def test_every_target_names_a_synthesis_flow_matching_its_device():
    for name, target in TABLE.items():
        assert target.synthesis in SYNTHESIS_FLOWS
        device = DEVICES.get(name)
        if device is not None:
            assert (target.synthesis == "ice40") == (device.family == "ice40"), name


def test_kinds_and_flows():
    assert [target_kind(t) for t in ("fpga", "asic", "ice40-up5k", "xc7a35t", "elsewhere")] == [
        "fpga",
        "asic",
        "fpga",
        "fpga",
        "fpga",
    ]
    assert [synthesis_flow(t) for t in ("fpga", "asic", "ice40-hx8k", "xc7a35t", "elsewhere")] == [
        "fpga",
        "asic",
        "ice40",
        "fpga",
        "elsewhere",
    ]
