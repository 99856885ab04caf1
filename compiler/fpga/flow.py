"""The hardware stage of a build for a device target: fit, synthesize, place and route.

Called by compiler/api.py after the passes. For `--target ice40-up5k` / `ice40-hx8k` with
synthesis enabled: fit the plan to the device (fit.py), place and route the fitted design and
pack its bitstream (pnr.py), measure Fmax. For every other target, or with `--no-synth`: the
Verilog of the planned graph and (unless disabled) yosys synthesis, as before; a device without
an open flow (xc7a35t) gets its utilisation counted against the part.

Everything lands in the build's staging folder: rtl/, synth/, fpga/ (pnr.py's files); the
fitting's scratch designs are removed once one is chosen.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from compiler.backends.verilog import write_verilog
from compiler.fpga.devices import Device, device_for
from compiler.fpga.fit import Attempt, fit, given_multipliers, step_down
from compiler.fpga.pnr import place_and_route
from compiler.fpga.synth import NETLIST, synthesize
from compiler.ir import Graph
from compiler.passes.base import get_pass


def hardware(start: Graph, flow: list[str], compiled: Graph, ctx, tmp: Path, timeout_s: float | None, pnr=True):
    """(compiled graph, design, synthesis or None, fpga record or None) for the build in `tmp`.
    `start` is the graph the flow began with; the plan may change (a fitted device design).
    `pnr=False`: fit by synthesis, but do not place and route (the clock stays assumed)."""
    device = device_for(ctx.target)
    if device is None or not device.open_flow or timeout_s is None:
        design = write_verilog(compiled, tmp / "rtl")
        synthesis = _synthesize(tmp, design, ctx, timeout_s)
        return compiled, design, synthesis, counted(device, synthesis) if device else None
    lowered = _lowered(start, flow, tmp)
    chosen, tried = fit(lowered, ctx, device, tmp / "fit", timeout_s, _plan, write_verilog, synthesize)
    routed = _route(chosen, device, tmp, timeout_s, ctx) if pnr else None
    while (
        routed and placement_refused(routed) and given_multipliers(ctx.recipe) is None
    ):  # synthesis fitted it, placement not
        smaller = step_down(
            lowered, chosen, tried, ctx, device, tmp / "fit", timeout_s, _plan, write_verilog, synthesize
        )
        if smaller is None:
            break
        ctx.log(f"      place and route refused multipliers {chosen.multipliers}: trying {smaller.multipliers}")
        chosen, routed = smaller, _route(smaller, device, tmp, timeout_s, ctx)
    for part in ("rtl", "synth"):
        shutil.move(chosen.folder / part, tmp / part)
    shutil.rmtree(tmp / "fit")
    _replace_plan_checkpoint(tmp, chosen.graph)
    record = {
        "device": device.target,
        "part": device.part,
        "fit": {"chosen_multipliers": chosen.multipliers, "attempts": [a.record() for a in sorted(tried, key=_m)]},
        "place_and_route": routed,
    }
    if routed is None:  # fitted by synthesis alone: the fit's counts against the device
        capacity = device.capacity()
        record["utilization"] = {k: [v, capacity[k]] for k, v in chosen.usage.items()}
    return chosen.graph, chosen.design, chosen.synthesis, record


def placement_refused(pnr: dict) -> bool:
    """nextpnr failed because the design does not fit (not for a missing tool or a bad input)."""
    over = any(used > available for used, available in (pnr.get("utilization") or {}).values())
    note = (pnr.get("note") or "").lower()
    return pnr["status"] == "failed" and (over or "unable to place" in note or "failed to route" in note)


def _m(a: Attempt) -> int:
    return a.multipliers


def _plan(graph: Graph, ctx) -> Graph:
    planned = get_pass("plan").run(graph, ctx)
    planned.validate()
    return planned


def _route(chosen: Attempt, device: Device, tmp: Path, timeout_s: float, ctx) -> dict:
    fpga = tmp / "fpga"
    if fpga.exists():
        shutil.rmtree(fpga)  # a refused placement's files, ours
    ctx.log(f"placing and routing on {device.part} with nextpnr-ice40 (limit {timeout_s:g} s) ...")
    result = place_and_route(chosen.folder / "synth" / NETLIST, device, fpga, timeout_s)
    if result["status"] == "ok":
        ctx.log(f"      {result['seconds']} s: Fmax {result['fmax_mhz']} MHz, bitstream {result['bitstream']}")
    else:
        ctx.log(f"      {result['note']}")
    return result


def _lowered(start: Graph, flow: list[str], tmp: Path) -> Graph:
    """The graph the plan pass ran on: the checkpoint before the last (plan), or the start
    graph when plan was the only pass (re-planning from a lower checkpoint)."""
    checkpoints = sorted(p for p in (tmp / "checkpoints").iterdir() if (p / "graph.json").is_file())
    if len(checkpoints) <= 2:  # 00-import and the plan checkpoint only
        return start
    return Graph.load(checkpoints[-2])


def _replace_plan_checkpoint(tmp: Path, graph: Graph) -> None:
    last = sorted(p for p in (tmp / "checkpoints").iterdir() if (p / "graph.json").is_file())[-1]
    assert last.name.endswith("-plan"), last
    shutil.rmtree(last)
    graph.save(last)


def _synthesize(tmp: Path, design: dict, ctx, timeout_s: float | None) -> dict | None:
    """yosys synthesis of tmp/rtl (None when disabled); trouble becomes a note in the report."""
    if timeout_s is None:
        return None
    ctx.log(f"synthesizing rtl/ with yosys for {ctx.target} (limit {timeout_s:g} s) ...")
    result = synthesize(tmp / "rtl", design, ctx.target, tmp / "synth", timeout_s=timeout_s)
    ctx.log(f"      {result['seconds']} s" if result["status"] == "ok" else f"      {result['note']}")
    return result


def counted(device: Device, synthesis: dict | None) -> dict:
    """A device without an open place and route (xc7a35t): synthesis counted against the part."""
    record: dict = {"device": device.target, "part": device.part, "fit": None, "place_and_route": None}
    if not synthesis or synthesis.get("status") != "ok":
        return record | {"utilization": None}
    used = {"logic": synthesis.get("lut"), "flip_flops": synthesis.get("ff"), "dsp": synthesis.get("dsp")}
    used["block_ram"] = synthesis.get("bram")
    capacity = device.capacity()
    return record | {"utilization": {k: [v, capacity[k]] for k, v in used.items() if v is not None}}
