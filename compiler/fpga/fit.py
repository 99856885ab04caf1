"""Fitting a design to an iCE40 device, by measurement.

The plan pass balances every layer to the cycle budget of `[plan] multipliers` (the largest
layer's parallelism). On a device that number decides whether the design fits: multipliers
become SB_MAC16 DSP blocks (when the design needs no more than the device has) or logic cells,
and wider ROM words (more lanes) need more 4-Kbit block RAMs. The fit searches the budget:

1. for a candidate `multipliers`, re-plan the lowered graph (the plan pass, unchanged), write
   the Verilog and synthesize the board top with synth_ice40 (`-dsp` when the design's
   multipliers fit the DSP blocks, else multipliers in logic);
2. compare what synthesis used with the device (logic cells bounded by LUT4s + flip-flops,
   DSPs, block RAMs, I/O pins);
3. binary search over CANDIDATES for the largest (fastest) that fits; place and route then
   confirms it (compiler/fpga/pnr.py), and a design that synthesis fitted but placement did
   not steps down to the next smaller candidate until one places.

A recipe that sets `[plan] multipliers` gets exactly that design, fitted or refused. When even
one multiplier per layer does not fit, FitError names the resource that is short, by how much,
and what would help.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compiler.errors import MpcError
from compiler.fpga.devices import DEVICES, Device
from compiler.ir import Graph

CANDIDATES = (1, 2, 4, 8, 16, 32, 64)  # [plan] multipliers tried, ascending
RESOURCE_NAMES = {
    "logic": "logic cells",
    "dsp": "DSP blocks",
    "block_ram": "4-Kbit block RAMs",
    "io": "I/O pins",
    "flip_flops": "flip-flops",
}


class FitError(MpcError, ValueError):
    """Nothing fits the device; the message names the short resource and what would help."""


@dataclass
class Attempt:
    multipliers: int
    graph: Graph
    design: dict
    synthesis: dict
    usage: dict[str, int]
    over: dict[str, tuple[int, int]]  # resource -> (used, available), where used > available
    folder: Path

    @property
    def fits(self) -> bool:
        return self.synthesis["status"] == "ok" and not self.over

    def record(self) -> dict:
        return {
            "multipliers": self.multipliers,
            "design_multipliers": sum(e["multipliers"] for e in self.design["engines"]),
            "dsp_mapping": self.synthesis.get("dsp_mapping"),
            "usage": self.usage,
            "fits": self.fits,
            "over": {k: list(v) for k, v in self.over.items()},
            "synthesis": self.synthesis["status"],
        }


def given_multipliers(recipe: dict) -> int | None:
    """`[plan] multipliers` (or the older `[lower] multipliers`) when the recipe fixes it."""
    for table in ("plan", "lower"):
        value = recipe.get(table, {}).get("multipliers")
        if value is not None:
            return value
    return None


def fit(
    lowered: Graph,
    ctx,
    device: Device,
    work: Path,
    timeout_s: float,
    plan: Callable[[Graph, object], Graph],
    write_verilog: Callable[[Graph, Path], dict],
    synthesize: Callable[..., dict],
) -> tuple[Attempt, list[Attempt]]:
    """(the fastest attempt that fits, every attempt made). `plan(graph, ctx)` runs the plan
    pass; the backend and synthesis come in as functions (this module stays below api)."""
    fixed = given_multipliers(ctx.recipe)
    candidates = [fixed] if fixed is not None else list(CANDIDATES)
    attempts: dict[int, Attempt] = {}

    def attempt(m: int) -> Attempt:
        if m not in attempts:
            ctx.log(f"      fit {device.target}: [plan] multipliers = {m} ...")
            attempts[m] = _attempt(
                lowered, ctx, device, work / f"multipliers-{m}", m, timeout_s, plan, write_verilog, synthesize
            )
            a = attempts[m]
            verdict = "fits" if a.fits else _shortfall(a) or a.synthesis.get("note") or "does not fit"
            ctx.log(f"      fit {device.target}: multipliers {m}: {_usage_text(a.usage, device)}: {verdict}")
        return attempts[m]

    lo, hi, best = 0, len(candidates) - 1, None
    while lo <= hi:  # more multipliers never use fewer resources: the largest that fits
        mid = (lo + hi) // 2
        if attempt(candidates[mid]).fits:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    tried = [attempts[m] for m in sorted(attempts)]
    if best is None:
        raise FitError(_refusal(device, attempt(candidates[0]), fixed))
    return attempts[candidates[best]], tried


def step_down(
    lowered, chosen: Attempt, tried: list[Attempt], ctx, device, work, timeout_s, plan, write_verilog, synthesize
):
    """The next smaller candidate that fits (placement refused `chosen`), or None."""
    smaller = [m for m in CANDIDATES if m < chosen.multipliers]
    for m in reversed(smaller):
        a = next((t for t in tried if t.multipliers == m), None)
        if a is None:
            a = _attempt(lowered, ctx, device, work / f"multipliers-{m}", m, timeout_s, plan, write_verilog, synthesize)
            tried.append(a)
        if a.fits:
            return a
    return None


def _attempt(lowered, ctx, device, folder, m, timeout_s, plan, write_verilog, synthesize) -> Attempt:
    if folder.exists():
        shutil.rmtree(folder)  # our own scratch folder inside the build's staging folder
    trial = copy.copy(ctx)
    trial.recipe = {**ctx.recipe, "plan": {**ctx.recipe.get("plan", {}), "multipliers": m}}
    trial.log = lambda *_: None
    graph = plan(lowered, trial)
    design = write_verilog(graph, folder / "rtl")
    total = sum(e["multipliers"] for e in design["engines"])
    dsp = 0 < total <= device.dsps
    synthesis = synthesize(folder / "rtl", design, device.target, folder / "synth", timeout_s=timeout_s, dsp=dsp)
    synthesis["dsp_mapping"] = "dsp" if dsp else "logic"
    usage = _usage(synthesis, design)
    capacity = device.capacity()
    over = {r: (u, capacity[r]) for r, u in usage.items() if u > capacity[r]}
    return Attempt(m, graph, design, synthesis, usage, over, folder)


def _usage(synthesis: dict, design: dict) -> dict[str, int]:
    if synthesis["status"] != "ok":
        return {}
    pins = len(design["serial_top"]["pins"])  # the board top is what a device gets (compiler/backends/serial.py)
    # A logic cell holds one LUT4, one flip-flop and a carry; a flip-flop shares a cell only with
    # the LUT that drives it, so LUT4s + flip-flops bounds the cells from above (nextpnr packed
    # 91-96% of that on the designs we measured; the max of the two underestimated by up to 34%)
    logic = synthesis["lut"] + synthesis["ff"]
    return {
        "logic": logic,
        "flip_flops": synthesis["ff"],
        "dsp": synthesis["dsp"],
        "block_ram": int(synthesis["bram"]),
        "io": pins,
    }


def _usage_text(usage: dict, device: Device) -> str:
    if not usage:
        return "not synthesized"
    capacity = device.capacity()
    return ", ".join(f"{k} {v}/{capacity[k]}" for k, v in usage.items() if k != "flip_flops")


def _shortfall(a: Attempt) -> str:
    return "; ".join(f"needs {u} {RESOURCE_NAMES[r]}, has {c}" for r, (u, c) in a.over.items())


def _refusal(device: Device, smallest: Attempt, fixed: int | None) -> str:
    what = f"[plan] multipliers = {fixed}" if fixed is not None else "one multiplier for the largest layer"
    if smallest.synthesis["status"] != "ok":
        synthesis = smallest.synthesis
        return f"{device.target}: cannot fit the design: synthesis {synthesis['status']}: {synthesis['note']}"
    bigger = [
        d.target
        for d in DEVICES.values()
        if d.open_flow and all(d.capacity()[r] >= u for r, (u, _) in smallest.over.items())
    ]
    helps = {
        "block_ram": "fewer weight bits or more sparsity (ADMM) to shrink the ROMs",
        "logic": "fewer multipliers or narrower weights",
        "dsp": "fewer multipliers",
        "io": "the serial top",
        "flip_flops": "fewer multipliers",
    }
    if fixed is None:  # already the smallest candidate: fewer multipliers is not on offer
        helps |= {"logic": "narrower weights, more sparsity or a smaller model", "dsp": "narrower weights"}
    hints = [helps[r] for r in smallest.over]
    if fixed is not None:
        hints.insert(0, "a smaller [plan] multipliers (or leave it out: mpc then searches)")
    hints.append("a bigger device (" + (", ".join(bigger) if bigger else "none of mpc's iCE40 targets is") + ")")
    short = _shortfall(smallest)
    return f"{device.target} ({device.part}): {what} does not fit: {short}. What would help: {'; '.join(hints)}"
