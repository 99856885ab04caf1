"""Synthesis of a build's generated Verilog with yosys: what the design costs in hardware.

    --target fpga, xc7a35t: `synth_xilinx` (Xilinx 7-series cells) -> LUT, FF, DSP, BRAM, LUTRAM
    --target ice40-*: `synth_ice40` of the board top (the serial wrapper, compiler/fpga) -> LUT4,
                   FF, SB_MAC16 DSPs (with `-dsp`), SB_RAM40_4K block RAMs, and the JSON netlist
                   nextpnr-ice40 places and routes (compiler/fpga/pnr.py)
    --target asic: generic `synth`, flip-flops legalized to one plain D flip-flop, so the
                   netlist uses a small cell library (yosys' internal gates + $_DFF_P_) whose
                   area is counted in NAND2 equivalents (NAND2_EQUIVALENT below)

`synthesize` never raises for tool trouble: a missing yosys, a timeout or a failed run comes
back as a result with `status` != "ok" and a one-line `note`, so the report is still written.
yosys' log and `stat -json` output are kept beside rtl/ (OUT/synth/) for inspection.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from compiler.targets import synthesis_flow
from sim.runner import run_in_group

DEFAULT_TIMEOUT_S = 300.0

SYNTH_COMMANDS = {
    "fpga": "synth_xilinx -family xc7 -top {top} -flatten",
    # -dsp maps multipliers to SB_MAC16 blocks (every one of them: the fitting loop leaves it
    # out when a design has more multipliers than the device has DSPs, compiler/fpga/fit.py)
    "ice40": "synth_ice40 -top {top}{dsp} -json {netlist}",
    # dfflegalize turns enable / synchronous-reset flip-flops into $_DFF_P_ plus gates, so the
    # cell library stays small and every cell has an entry in NAND2_EQUIVALENT.
    "asic": "synth -top {top} -flatten; dfflegalize -cell $_DFF_P_ 01; opt_clean",
}

# Area of yosys' generic cells in NAND2 equivalents: the X1 cell areas of the NanGate 45 nm
# Open Cell Library divided by NAND2_X1's 0.798 um^2 (INV_X1 0.532, AND2/OR2/AOI21/OAI21_X1
# 1.064, XOR2/XNOR2_X1 1.596, MUX2_X1 1.862, DFF_X1 4.522). ANDNOT/ORNOT (one input
# inverted) have no NanGate cell; they are priced as AND2/OR2, which a synthesis tool would
# reach by absorbing the inversion into the neighbouring logic.
NAND2_EQUIVALENT = {
    "$_NOT_": 0.667,
    "$_BUF_": 0.667,
    "$_NAND_": 1.0,
    "$_NOR_": 1.0,
    "$_AND_": 1.333,
    "$_OR_": 1.333,
    "$_ANDNOT_": 1.333,
    "$_ORNOT_": 1.333,
    "$_AOI3_": 1.333,
    "$_OAI3_": 1.333,
    "$_XOR_": 2.0,
    "$_XNOR_": 2.0,
    "$_MUX_": 2.333,
    "$_DFF_P_": 5.667,
}

# Xilinx 7-series primitives -> report fields. LUTRAM primitives are counted in the LUTs
# they occupy (a RAM32M is four LUTs of a SLICEM; an SRL is one).
LUTRAM_LUTS = {
    "RAM32M": 4,
    "RAM64M": 4,
    "RAM32X1D": 2,
    "RAM64X1D": 2,
    "RAM128X1D": 4,
    "RAM32X1S": 1,
    "RAM64X1S": 1,
    "RAM128X1S": 2,
    "RAM256X1S": 4,
    "SRL16E": 1,
    "SRLC32E": 1,
}
BRAM_36K = {"RAMB36E1": 1.0, "RAMB18E1": 0.5}
NETLIST = "netlist.json"  # synth_ice40's output, nextpnr-ice40's input (in the synth folder)


def synthesis_top(design: dict, target: str) -> tuple[str, list[str], dict]:
    """(top module, sources, its parameters): an iCE40 device synthesizes the board top (the
    serial wrapper, a handful of pins, compiler/backends/serial.py) where the backend wrote one;
    every other flow the design's own top (whose parameters are fixed in its instances)."""
    serial = design.get("serial_top")
    if synthesis_flow(target) == "ice40" and serial:
        return serial["module"], serial["sources"], serial["parameters"]
    return design["top"], design["sources"], {}


def yosys_version(yosys: str = "yosys") -> str | None:
    try:
        done = run_in_group([yosys, "-V"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def synthesize(
    rtl_dir: str | Path,
    design: dict,
    target: str,
    out_dir: str | Path,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    yosys: str = "yosys",
    dsp: bool = True,
) -> dict:
    """Synthesize rtl_dir's design (design.json's `top` and `sources`, or its board top for an
    iCE40 device) for `target`; write the log and statistics into out_dir; return the result
    (schema: docs/report.md, `synthesis`). `dsp=False`: iCE40 multipliers in logic cells."""
    flow = synthesis_flow(target)
    if flow not in SYNTH_COMMANDS:
        raise ValueError(f"no synthesis flow for target {target!r} (known: {', '.join(SYNTH_COMMANDS)})")
    top, sources, parameters = synthesis_top(design, target)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    stat_path, log_path = out_dir / "stat.json", out_dir / "yosys.log"
    # -defer: elaborate modules only with the top's parameters, so that $readmemh never looks
    # for an engine's default ROM file name.
    command = SYNTH_COMMANDS[flow].format(top=top, dsp=" -dsp" if dsp else "", netlist=out_dir / NETLIST)
    # the board top's widths are parameters: set at elaboration (its defaults are not the design's)
    chparam = "".join(f" -chparam {k} {v}" for k, v in parameters.items())
    elaborate = f"hierarchy -top {top}{chparam}; " if chparam else ""
    script = f"read_verilog -defer {' '.join(sources)}; {elaborate}{command}; tee -q -o {stat_path.name} stat -json"
    argv = [yosys, "-q", "-l", str(log_path), "-p", script]
    result = {
        "status": "ok",
        "note": None,
        "tool": "yosys",
        "version": None,
        "target": target,
        "top": top,
        "command": f"cd rtl && yosys -q -l yosys.log -p '{script.replace(str(out_dir) + '/', '../synth/')}'",
        "timeout_s": timeout_s,
        "seconds": None,
        "cell_counts": None,
    }
    if shutil.which(yosys) is None:
        return result | {
            "status": "unavailable",
            "note": f"{yosys} not found on PATH: no synthesis (install yosys, e.g. `make tools`)",
        }
    result["version"] = yosys_version(yosys)
    start = time.perf_counter()
    status, note = _run(argv, Path(rtl_dir), timeout_s, log_path)
    result["seconds"] = round(time.perf_counter() - start, 2)
    if status != "ok":
        return result | {"status": status, "note": note}
    # yosys runs in rtl/ so that $readmemh finds the .mem files; its statistics go to out_dir.
    shutil.move(Path(rtl_dir) / stat_path.name, stat_path)
    cells = _cell_counts(json.loads(stat_path.read_text()), top)
    return result | {"cell_counts": cells} | resources(cells, target)


def _run(argv: list[str], cwd: Path, timeout_s: float, log_path: Path) -> tuple[str, str | None]:
    """Run yosys in its own process group, so a timeout or an interrupt (Ctrl-C, SIGTERM) also
    ends the abc it started."""
    try:
        proc = run_in_group(
            argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return "timeout", f"yosys did not finish within {timeout_s:g} s (raise the limit with --synth-timeout)"
    output = proc.stdout
    if proc.returncode != 0:
        errors = [line for line in output.splitlines() if "ERROR" in line] or output.strip().splitlines()[-1:]
        return "failed", f"yosys exited with status {proc.returncode}: " + (
            errors[0].strip() if errors else f"see {log_path.name}"
        )
    return "ok", None


def _cell_counts(stat: dict, top: str) -> dict[str, int]:
    """Cells by type of the flattened top module in yosys' `stat -json` output."""
    modules = stat["modules"]
    module = modules.get(f"\\{top}") or next(iter(modules.values()))
    return dict(sorted(module["num_cells_by_type"].items()))


def resources(cells: dict[str, int], target: str) -> dict:
    """The report's resource fields from a cell count."""
    flow = synthesis_flow(target)
    if flow == "ice40":
        return {
            "lut": cells.get("SB_LUT4", 0),
            "ff": sum(n for c, n in cells.items() if c.startswith("SB_DFF")),
            "dsp": cells.get("SB_MAC16", 0),
            "bram": cells.get("SB_RAM40_4K", 0),
            "carry": cells.get("SB_CARRY", 0),
        }
    if flow == "fpga":
        return {
            "lut": sum(n for c, n in cells.items() if c.startswith("LUT")),
            "ff": sum(n for c, n in cells.items() if c.startswith("FD")),
            "dsp": sum(n for c, n in cells.items() if c.startswith("DSP48")),
            "bram": sum(n * BRAM_36K[c] for c, n in cells.items() if c in BRAM_36K),
            "lutram": sum(n * LUTRAM_LUTS[c] for c, n in cells.items() if c in LUTRAM_LUTS),
        }
    unknown = sorted(c for c in cells if c not in NAND2_EQUIVALENT)
    return {
        "cells": sum(cells.values()),
        "area_nand2": round(sum(n * NAND2_EQUIVALENT.get(c, 0.0) for c, n in cells.items()), 1),
        "unpriced_cells": unknown,
    }
