"""The target table: every `--target` mpc knows, written once.

A target names a flow of passes, a kind of hardware ("fpga" or "asic": which comparison columns
apply) and a synthesis flow (which yosys script, which resource fields, which clock is assumed
where nothing measured one). passes (FLOWS), fpga (devices, synthesis) and report (resources,
clock) all read this table; it imports nothing of the project, so every layer may.

The devices' data sheet figures (logic, DSPs, block RAMs, boards) are in compiler/fpga/devices.py,
keyed by the same target names.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PASSES = ("canonicalize", "lower", "plan")


@dataclass(frozen=True)
class SynthesisFlow:
    """A yosys flow: the report.json `hardware` resource fields it fills, and the clock assumed
    (MHz, and why) when no place and route measured an Fmax."""

    name: str
    resources: tuple[str, ...]
    clock_mhz: float
    clock_note: str


@dataclass(frozen=True)
class Target:
    name: str  # the --target name
    kind: str  # "fpga" (the generic flow and every device) or "asic"
    synthesis: str  # a SYNTHESIS_FLOWS key
    passes: tuple[str, ...] = DEFAULT_PASSES  # the named flow: an ordered list of pass names


# Clock frequency per flow where nothing measured it: an assumption, not a timing result.
# Latency and throughput follow from the clock and the cycle counts. An iCE40 device that was
# placed and routed gets nextpnr's measured Fmax instead (compiler/fpga/pnr.py).
SYNTHESIS_FLOWS = {
    f.name: f
    for f in (
        SynthesisFlow(
            "fpga",  # yosys synth_xilinx: Xilinx 7-series cells
            ("lut", "ff", "dsp", "bram", "lutram"),
            100.0,
            "assumption, not a timing result: a conservative clock for a Xilinx 7-series (-1) design "
            "whose P-input adder chain is not pipelined",
        ),
        SynthesisFlow(
            "asic",  # yosys generic synth: gates priced in NAND2 equivalents
            ("cells", "area_nand2"),
            500.0,
            "assumption, not a timing result: a typical clock for 45 nm standard cells, the energy table's node",
        ),
        SynthesisFlow(
            "ice40",  # yosys synth_ice40 of the board top, then nextpnr-ice40
            ("lut", "ff", "dsp", "bram", "carry"),
            12.0,
            "assumption, not a timing result: the board's 12 MHz oscillator (no place and route ran, so no Fmax)",
        ),
    )
}

# The devices (compiler/fpga/devices.py) run the same passes; the build then fits the plan to
# the device, places and routes it (compiler/fpga/flow.py).
TARGETS = {
    t.name: t
    for t in (
        Target("fpga", "fpga", "fpga"),
        Target("asic", "asic", "asic"),
        Target("ice40-up5k", "fpga", "ice40"),
        Target("ice40-hx8k", "fpga", "ice40"),
        Target("xc7a35t", "fpga", "fpga"),
    )
}


def target_kind(target: str) -> str:
    """ "asic", or "fpga" for the generic FPGA flow and every device (also for a name not in the
    table: `mpc compare` reads reports written elsewhere)."""
    return TARGETS[target].kind if target in TARGETS else "fpga"


def synthesis_flow(target: str) -> str:
    """The synthesis flow of a target: "fpga" (7-series), "ice40" or "asic"; an unknown target
    comes back as itself (no flow: synthesis says so)."""
    return TARGETS[target].synthesis if target in TARGETS else target
