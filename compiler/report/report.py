"""report.json: what compression did, always written (schema: docs/report.md); report.md is its
Markdown rendering (markdown.py). Pass sections add their fields through sections/."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from compiler.hw.base import output_positions
from compiler.ir import Graph
from compiler.jsonsafe import to_json as recipe_to_json
from compiler.report.energy import energy_section, imported_layers
from compiler.report.markdown import render_markdown
from compiler.report.sections import PASS_SECTIONS
from compiler.targets import SYNTHESIS_FLOWS, synthesis_flow

SCHEMA_VERSION = 1


def build_report(
    original: Graph,
    compiled: Graph,
    design: dict,
    records,
    accuracy: dict,
    onnx_check: dict,
    ctx,
    source: Path,
    seconds: float,
    synthesis: dict | None = None,
    device: dict | None = None,
) -> dict:
    engines = {e["name"]: e for e in design["engines"]}  # pools are engines but not layers
    layers = [
        _layer_entry(compiled, node, engines[node.name], _original_weight(original, node.name))
        for node in compiled.weighted_nodes(include_conv=True)
    ]
    float_bits = 32 * sum(original.params[n.inputs[1]].size for n in original.weighted_nodes(include_conv=True))
    weight_bits = sum(layer["weight_bits"] for layer in layers)
    hardware = {
        "top": design["top"],
        "estimated_cycles_per_inference": design["estimated_latency"],
        "estimated_initiation_interval": design["estimated_interval"],
        "rom_bits": sum(e["rom_bits"] for e in design["engines"]),
        "multipliers": sum(e["multipliers"] for e in design["engines"]),
    }
    protected = [e for e in design["engines"] if e.get("protection", "none") != "none"]
    if protected:  # [plan] rom_protection: its ROM bits are in rom_bits, so the energy model prices them
        check = sum(e["check_bits"] for e in protected)
        hardware["rom_protection"] = {
            "scheme": protected[0]["protection"],
            "unit": "weight" if protected[0].get("protect_lanes") else "word",
            "check_bits": check,
            "data_bits": hardware["rom_bits"] - check,
            "overhead": round(check / max(hardware["rom_bits"] - check, 1), 4),
        }
    # the energy baselines price the original imported model, whatever the passes removed
    hardware |= hardware_costs(layers, ctx.target, synthesis, imported_layers(original, layers), device)
    set_cycles(hardware, design["estimated_latency"], "estimate", design["estimated_interval"])
    return {
        "schema_version": SCHEMA_VERSION,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source": _absolute(source),  # the same whatever folder mpc ran from (and `mpc audit` finds data)
        "data": _absolute(getattr(ctx.data, "path", None)),
        "target": ctx.target,
        "task": compiled.meta.get("task", "classification"),  # regression: float/compiled give test_mse, test_auc
        "seed": ctx.seed,
        # the recipe as run: `mpc audit --adaptive` replays it on the shadow models (audit/replay.py)
        "recipe": recipe_to_json(ctx.recipe),
        "compile_seconds": round(seconds, 3),
        "float": accuracy["float"],
        "compiled": dict(accuracy["compiled"], onnx_matches_golden=onnx_check),
        "passes": [r.to_dict() for r in records],
        "model": {
            "parameters": int(sum(p.size for p in original.params.values())),
            "float_weight_bits": float_bits,
            "weight_bits": weight_bits,
            "bias_bits": sum(layer["bias_bits"] for layer in layers),
            "compression_ratio": round(float_bits / weight_bits, 3) if weight_bits else None,
            "input_format": compiled.meta["input_format"],
            "output_format": compiled.meta["output_format"],
            # the passes' records: lower's narrowed layers, fine_prune, circulant, ... (sections/)
            **_merged(s.model_fields(original, compiled) for s in PASS_SECTIONS.values()),
        },
        "layers": layers,
        "hardware": hardware,
        **_merged(s.report_fields(original, compiled) for s in PASS_SECTIONS.values()),  # dp_sgd's guarantee
        "simulation": None,
    }


def _merged(parts: Iterable[dict]) -> dict:
    """The registered sections' fields, in registration order."""
    fields: dict = {}
    for part in parts:
        fields |= part
    return fields


def _absolute(path: str | Path | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def _original_weight(original: Graph, name: str) -> np.ndarray | None:
    try:
        node = original.node(name)
    except KeyError:
        return None
    return original.params[node.inputs[1]]


def _layer_entry(graph: Graph, node, engine: dict, original_w: np.ndarray | None = None) -> dict:
    """`sparsity` is the fraction of the original layer's weights that are pruned: zero, or
    removed with a dead channel or neuron (admm's channel removal shrinks the layer exactly);
    `stored_sparsity` is the zero fraction of the compiled, possibly smaller, weight."""
    w = graph.params[node.inputs[1]]
    original_size = int(original_w.size) if original_w is not None else int(w.size)
    bits = node.attrs["weight_format"]["bits"]
    n_bias = len(graph.params[node.inputs[2]]) if len(node.inputs) > 2 else 0
    return {
        "name": node.name,
        "op": node.op,
        "shape": [int(d) for d in w.shape],  # dense [n_out, n_in]; conv [C_out, C_in, kH, kW]
        "original_shape": [int(d) for d in (original_w if original_w is not None else w).shape],
        "sparsity": round(1 - float(np.count_nonzero(w)) / original_size, 4),
        "stored_sparsity": round(float(np.mean(w == 0)), 4),
        "removed_outputs": len(node.annotations.get("removed_outputs", [])),
        "removed_inputs": len(node.annotations.get("removed_inputs", [])),
        "zero_weights": int(np.count_nonzero(w == 0)),
        "bits": bits,
        "engine": engine["engine"],
        "engine_reason": node.annotations.get("engine_reason"),
        "break_even_sparsity": node.annotations.get("break_even_sparsity"),
        "multipliers": engine["multipliers"],
        "weight_bits": engine["weight_rom_bits"],  # values + indices, as stored in ROM
        "rom_bits": engine["rom_bits"],
        "bias_bits": int(n_bias * (engine.get("b_bits") or node.attrs["acc_bits"])),  # older designs: acc width
        "acc_bits": node.attrs["acc_bits"],
        "weight_format": node.attrs["weight_format"],
        "input_format": node.attrs["input_format"],
        "estimated_cycles": engine["latency"],
    } | _structure_entry(graph, node, engine)


def _structure_entry(graph: Graph, node, engine: dict) -> dict:
    """Block-circulant structure (circulant pass) and what the layer's engine stores and
    multiplies (its `layer_figures`: index bits, conv geometry, FFT figures)."""
    from compiler import hw
    from compiler.backends.onnx import FLOAT_EQUIVALENT_OPS

    w = graph.params[node.inputs[1]]
    positions = output_positions(node)
    return {
        "block_size": int(node.annotations.get("block_size", 1)),
        "dense_multiplies": positions * int(w.size),
        "output_positions": positions,  # uses of each weight per inference (conv: H_out * W_out)
        "onnx_exact": node.op not in FLOAT_EQUIVALENT_OPS,  # model.int.onnx computes this layer bit for bit
    } | hw.engine(engine["engine"]).layer_figures(graph, node, engine)


def write_report(report: dict, folder: Path) -> None:
    folder = Path(folder)
    (folder / "report.json").write_text(json.dumps(report, indent=1))
    (folder / "report.md").write_text(render_markdown(report))


def hardware_costs(
    layers: list[dict],
    target: str,
    synthesis: dict | None,
    baseline_layers: list[dict] | None = None,
    device: dict | None = None,
) -> dict:
    """Synthesis resources, the device's utilisation and Fmax (or the assumed clock), work and
    energy (the baselines price `baseline_layers`, energy.imported_layers): fields of report.json
    `hardware`."""
    if synthesis is None:
        synthesis = {"status": "skipped", "note": "synthesis not run (mpc compile --no-synth)"}
    flow = synthesis_flow(target)
    names = SYNTHESIS_FLOWS.get(flow, SYNTHESIS_FLOWS["asic"]).resources
    return (
        {name: synthesis.get(name) for name in names}
        | {"synthesis": {k: v for k, v in synthesis.items() if k not in names}}
        | device_fields(flow, device)
        | energy_section(layers, baseline_layers)
    )


def device_fields(flow: str, device: dict | None) -> dict:
    """`device`, the clock (measured Fmax or an assumption, and which), `utilization`
    {resource: [used, available]}, `bitstream`, and the fitting and place-and-route records."""
    pnr = (device or {}).get("place_and_route") or {}
    fmax = pnr.get("fmax_mhz") if pnr.get("status") == "ok" else None
    assumed = SYNTHESIS_FLOWS[flow]  # where nothing measured the clock (compiler/targets.py)
    clock_mhz, note = (fmax, CLOCK_NOTE_MEASURED) if fmax else (assumed.clock_mhz, assumed.clock_note)
    return {
        "device": device["device"] if device else None,
        "fmax_mhz": fmax,
        "clock_mhz": clock_mhz,
        "clock_source": "nextpnr" if fmax else "assumed",
        "clock_note": note,
        "utilization": pnr.get("utilization") or (device or {}).get("utilization"),
        "bitstream": pnr.get("bitstream"),
        "fit": (device or {}).get("fit"),
        "place_and_route": pnr or None,
    }


CLOCK_NOTE_MEASURED = "measured: nextpnr-ice40's timing analysis of the routed design (its achieved Fmax)"


def set_cycles(hw: dict, cycles: float, source: str, initiation_interval: float | None = None) -> None:
    """Record cycles per inference (`source`: "estimate" or "simulation"; the initiation
    interval comes from the same source) and the latency and throughput they give at the
    assumed clock. Without an interval, throughput assumes inferences do not overlap."""
    hw["cycles_per_inference"] = cycles
    hw["cycles_source"] = source
    hw["initiation_interval"] = initiation_interval
    clock_mhz = hw.get("clock_mhz")
    hw["latency_us"] = round(cycles / clock_mhz, 3) if clock_mhz else None
    hw["throughput_per_s"] = round(clock_mhz * 1e6 / (initiation_interval or cycles), 1) if clock_mhz else None
