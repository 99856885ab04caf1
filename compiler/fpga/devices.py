"""FPGA devices mpc can target: what each has, and how the open flow reaches it.

`--target ice40-up5k` / `ice40-hx8k` (Lattice iCE40: yosys `synth_ice40`, `nextpnr-ice40`,
`icepack`, all in Debian; fitted, placed, routed, timed, bitstream) and `--target xc7a35t`
(Xilinx Artix-7: yosys `synth_xilinx` resource counts against the part; no open place and route,
so its clock stays an assumption). `--target fpga` is the generic Xilinx 7-series flow of before
(no device: resources counted, nothing checked against a part).

Figures from the vendors' data sheets: Lattice FPGA-DS-02008 (iCE40 UltraPlus: UP5K 5,280 logic
cells, 30 sysMEM blocks of 4 Kbit, 8 sysDSP 16x16 multiply-accumulate blocks, 4 SPRAM of 256 Kbit
that the bitstream cannot initialise, so they never hold weights), DS1040 (iCE40 LP/HX: HX8K 7,680
logic cells, 32 blocks of 4 Kbit, no DSP), Xilinx DS180 (Artix-7 XC7A35T: 20,800 LUTs, 41,600
flip-flops, 90 DSP48E1 slices 25x18, 50 block RAMs of 36 Kbit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.targets import TARGETS as TARGET_TABLE


@dataclass(frozen=True)
class Board:
    """A board the bitstream is for: its oscillator, and the pins of the serial top's ports."""

    name: str
    clock_mhz: float
    pins: dict[str, str]  # serial top port -> package pin

    def pcf(self) -> str:
        """Pin constraints for nextpnr-ice40."""
        return "".join(f"set_io -nowarn {port} {pin}\n" for port, pin in self.pins.items())


@dataclass(frozen=True)
class Device:
    target: str  # the --target name
    part: str
    family: str  # "ice40" or "xc7"
    logic: int  # iCE40 logic cells (LUT4 + flip-flop) / 7-series LUT6s
    flip_flops: int
    dsps: int
    dsp_bits: tuple[int, int]  # operand widths one DSP block multiplies
    block_rams: int
    block_ram_bits: int  # per block
    io: int  # user I/O of the package
    package: str
    board: Board | None = None
    nextpnr_args: tuple[str, ...] = field(default=())

    @property
    def open_flow(self) -> bool:
        """Whether yosys + nextpnr take this device to a bitstream here."""
        return self.family == "ice40"

    def capacity(self) -> dict[str, int]:
        """The resources a design is fitted against (report.json `hardware.utilization` keys)."""
        return {
            "logic": self.logic,
            "flip_flops": self.flip_flops,
            "dsp": self.dsps,
            "block_ram": self.block_rams,
            "io": self.io,
        }


# iCEBreaker (UP5K-SG48): 12 MHz oscillator on pin 35, the FTDI's UART on pins 6 (RX) and 9 (TX);
# `busy` and `error` on the green (37) and red (11) LEDs, which are active low: lit = 0.
ICEBREAKER = Board("iCEBreaker", 12.0, {"clk": "35", "rx": "6", "tx": "9", "busy": "37", "error": "11"})
# Lattice iCE40-HX8K breakout board (CT256): 12 MHz on J3, the FTDI's UART on B10 (RX) and B12 (TX);
# `busy` and `error` on LEDs D2 (B5) and D3 (B4).
HX8K_BREAKOUT = Board("iCE40-HX8K breakout", 12.0, {"clk": "J3", "rx": "B10", "tx": "B12", "busy": "B5", "error": "B4"})

DEVICES = {
    d.target: d
    for d in (
        Device(
            "ice40-up5k",
            "iCE40UP5K-SG48",
            "ice40",
            logic=5280,
            flip_flops=5280,
            dsps=8,
            dsp_bits=(16, 16),
            block_rams=30,
            block_ram_bits=4096,
            io=39,
            package="sg48",
            board=ICEBREAKER,
            nextpnr_args=("--up5k", "--package", "sg48"),
        ),
        Device(
            "ice40-hx8k",
            "iCE40HX8K-CT256",
            "ice40",
            logic=7680,
            flip_flops=7680,
            dsps=0,
            dsp_bits=(0, 0),
            block_rams=32,
            block_ram_bits=4096,
            io=206,
            package="ct256",
            board=HX8K_BREAKOUT,
            nextpnr_args=("--hx8k", "--package", "ct256"),
        ),
        Device(
            "xc7a35t",
            "XC7A35T-1CPG236",
            "xc7",
            logic=20800,
            flip_flops=41600,
            dsps=90,
            dsp_bits=(25, 18),
            block_rams=50,
            block_ram_bits=36864,
            io=106,
            package="cpg236",
        ),
    )
}

# Every --target name (compiler/targets.py): "fpga" and "asic" are the generic flows.
TARGETS = tuple(TARGET_TABLE)
assert set(DEVICES) <= set(TARGETS), "a device without a target in compiler/targets.py"


def device_for(target: str) -> Device | None:
    return DEVICES.get(target)
