"""Place and route on an iCE40 with the open flow: nextpnr-ice40, then icepack.

nextpnr places the netlist synth_ice40 wrote (compiler/fpga/synth.py) on the device with the
board's pin constraints, routes it, and times it: its report gives the utilisation of every
resource and the achieved Fmax of the clock (its own timing analysis of the routed design). The
routed design is packed into a bitstream (`icepack`) that the board's programmer loads
(`iceprog OUT/fpga/design.bin`).

Like synthesis, nothing here raises for tool trouble: a missing tool, a timeout or a design that
does not fit comes back with `status` != "ok" and a one-line `note`, and the report says so.
Files (OUT/fpga/): board.pcf, nextpnr.log, pnr.json (nextpnr's report), design.asc, design.bin.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

from compiler.fpga.devices import Device
from sim.runner import run_in_group

DEFAULT_TIMEOUT_S = 600.0
NEXTPNR = "nextpnr-ice40"
ICEPACK = "icepack"
BITSTREAM = "design.bin"
SEED = 1  # placement is seeded: the same netlist places, routes and times the same way again

# nextpnr's bel types -> report.json `hardware.utilization` keys (the device capacity names)
BEL_RESOURCES = {"ICESTORM_LC": "logic", "ICESTORM_DSP": "dsp", "ICESTORM_RAM": "block_ram", "SB_IO": "io"}


def tools_missing() -> list[str]:
    return [t for t in (NEXTPNR, ICEPACK) if shutil.which(t) is None]


def place_and_route(
    netlist: str | Path, device: Device, out_dir: str | Path, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict:
    """Place, route, time and pack `netlist` for `device` into out_dir; the result's schema is
    report.json `hardware.place_and_route` (docs/fpga.md)."""
    out_dir, netlist = Path(out_dir).resolve(), Path(netlist).resolve()  # nextpnr runs in out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    board = device.board
    assert board is not None, f"{device.target}: no board pins"
    (out_dir / "board.pcf").write_text(board.pcf())
    argv = [
        NEXTPNR,
        *device.nextpnr_args,
        "--json",
        str(netlist),
        "--pcf",
        "board.pcf",
        "--asc",
        "design.asc",
        "--report",
        "pnr.json",
        "--freq",
        f"{board.clock_mhz:g}",
        "--seed",
        str(SEED),
        "--timing-allow-fail",  # a design slower than the board clock is reported, not refused
        "--log",
        "nextpnr.log",
        "--quiet",
    ]
    result: dict = {
        "status": "ok",
        "note": None,
        "tool": NEXTPNR,
        "device": device.part,
        "board": board.name,
        "board_clock_mhz": board.clock_mhz,
        "command": "cd fpga && " + " ".join("../synth/netlist.json" if a == str(netlist) else a for a in argv),
        "timeout_s": timeout_s,
        "seconds": None,
        "fmax_mhz": None,
        "utilization": None,
        "bitstream": None,
    }
    if missing := tools_missing():
        return result | {
            "status": "unavailable",
            "note": f"{', '.join(missing)} not found on PATH: no place and route (install them: `make tools`)",
        }
    start = time.perf_counter()
    status, note = _run(argv, out_dir, timeout_s)
    result["seconds"] = round(time.perf_counter() - start, 2)
    if status != "ok":
        return result | {"status": status, "note": note, "utilization": _utilization_from_log(out_dir)}
    report = json.loads((out_dir / "pnr.json").read_text())
    result |= {"fmax_mhz": _fmax(report), "utilization": _utilization(report)}
    status, note = _run([ICEPACK, "design.asc", BITSTREAM], out_dir, timeout_s)
    if status != "ok":
        return result | {"status": status, "note": note}
    return result | {"bitstream": f"fpga/{BITSTREAM}"}


def _run(argv: list[str], cwd: Path, timeout_s: float) -> tuple[str, str | None]:
    try:
        proc = run_in_group(
            argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return "timeout", f"{argv[0]} did not finish within {timeout_s:g} s"
    if proc.returncode == 0:
        return "ok", None
    log = (cwd / "nextpnr.log").read_text() if argv[0] == NEXTPNR and (cwd / "nextpnr.log").exists() else proc.stdout
    errors = [line.strip() for line in log.splitlines() if "ERROR" in line] or log.strip().splitlines()[-1:]
    return "failed", f"{argv[0]} exited with status {proc.returncode}: " + (errors[0] if errors else "no output")


def _fmax(report: dict) -> float | None:
    """The achieved Fmax of the design's clock (the slowest, if nextpnr names several)."""
    achieved = [c["achieved"] for c in report.get("fmax", {}).values() if "achieved" in c]
    return round(min(achieved), 2) if achieved else None


def _utilization(report: dict) -> dict[str, list[int]]:
    used = report.get("utilization", {})
    return {key: [used[bel]["used"], used[bel]["available"]] for bel, key in BEL_RESOURCES.items() if bel in used}


def _utilization_from_log(out_dir: Path) -> dict[str, list[int]] | None:
    """From a failed run's log ("ICESTORM_LC:  6101/ 5280   115%"): what did not fit."""
    log = out_dir / "nextpnr.log"
    if not log.exists():
        return None
    found = {}
    for bel, used, available in re.findall(r"(\w+):\s+(\d+)/\s*(\d+)", log.read_text()):
        if bel in BEL_RESOURCES:
            found[BEL_RESOURCES[bel]] = [int(used), int(available)]
    return found or None
