"""report.json and report.md: what compression did, always written (schema: docs/report.md)."""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path

import numpy as np

from compiler.hw.base import output_positions
from compiler.ir import Graph
from compiler.jsonsafe import to_json as recipe_to_json
from compiler.report.energy import energy_section, imported_layers
from compiler.report.synth import flow_of

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
            **({"qonnx": original.meta["qonnx"]} if "qonnx" in original.meta else {}),  # frontend/qonnx.py
            # layers whose weights lower narrowed to fit the 48-bit accumulator (passes/lower.py)
            **({"narrowed": compiled.meta["narrowed_layers"]} if "narrowed_layers" in compiled.meta else {}),
            # the backdoor defense's pruning and fine-tuning figures (passes/fine_prune.py)
            **({"fine_prune": compiled.meta["fine_prune"]} if "fine_prune" in compiled.meta else {}),
            # block sizes, the retraining's held-out figures and block_size = "auto"'s trials (passes/circulant.py)
            **({"circulant": compiled.meta["circulant"]} if "circulant" in compiled.meta else {}),
        },
        "layers": layers,
        "hardware": hardware,
        **_privacy_training(compiled),
        "simulation": None,
    }


def _privacy_training(compiled: Graph) -> dict:
    """The differential-privacy guarantee of a dp_sgd-trained model (passes/dp_sgd.py; the
    integer graph keeps the float graph's meta through lower)."""
    if "dp_sgd" not in compiled.meta:
        return {}
    dp = compiled.meta["dp_sgd"]
    keys = ("epsilon", "delta", "noise_multiplier", "max_grad_norm", "init")
    return {"privacy_training": {"dp_sgd": {k: dp[k] for k in keys}}}


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


# ---- model text in Markdown: names come from the model's author and are shown, never interpreted
def printable(text: str) -> str:
    """`text` with every character that is not printable (newlines, terminal escapes, bidi
    controls) written as a visible \\x.. / \\u.... escape: one line, shown as it is."""
    return "".join(c if c.isprintable() else _visible(c) for c in str(text))


def _visible(c: str) -> str:
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


_CODE_UNSAFE = frozenset("`|<>&")  # a code span would end, split a table cell, or hold raw HTML
# what Markdown (CommonMark, GitHub's tables and math) reads inside a line; `&`, `<`, `>` become
# entities instead. The text never starts a line, so `.`, `-`, `+` and digits need nothing.
_MD_ESCAPED = frozenset("\\`*_{}[]()#!|~$")


def md_text(text: str) -> str:
    """Model text as literal Markdown inside a line: a backslash before the characters Markdown
    reads there (CommonMark lets any ASCII punctuation be escaped), `&`, `<`, `>` as HTML
    entities, no line breaks."""
    escaped = "".join("\\" + c if c in _MD_ESCAPED else c for c in printable(text))
    return html.escape(escaped, quote=False)


def md_code(text: str) -> str:
    """A name as a code span when it can be one unchanged, else as escaped text (md_text)."""
    shown = printable(text)
    if shown and shown.strip() == shown and not _CODE_UNSAFE & set(shown):
        return f"`{shown}`"
    return md_text(shown)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _qonnx_lines(q: dict | None) -> list[str]:
    """One line on a QONNX model's weights that were not on a power-of-two grid (compiler/frontend/qonnx.py)."""
    if not q or not q.get("requantized"):
        return []
    changes = ", ".join(
        f"{md_code(name)} (Q({d['format']['bits']}, {d['format']['frac']}), max abs weight change "
        f"{d['max_abs_change']:.3g}: {md_text(d['why'])})"
        for name, d in q["requantized"].items()
    )
    return [f"QONNX weights re-quantized to a power-of-two grid: {changes}.", ""]


def _narrowed_lines(narrowed: dict | None) -> list[str]:
    """One line per layer whose weights lower narrowed to fit the accumulator limit, with the cost."""
    lines = []
    for name, d in (narrowed or {}).items():
        a, b = d["weight_format_from"], d["weight_format_to"]
        lines += [
            f"Layer {md_code(name)}: weights narrowed from Q({a['bits']}, {a['frac']}) to Q({b['bits']}, {b['frac']}) "
            f"(its accumulator would need {d['needed_acc_bits']} bits; at most {d['max_acc_bits']}): float test "
            f"accuracy {_pct(d.get('float_test_accuracy'))} -> {_pct(d.get('float_test_accuracy_narrowed'))} "
            "with this layer's narrowed weights.",
            "",
        ]
    return lines


def _fine_prune_lines(fp: dict | None) -> list[str]:
    """One line on the backdoor defense (passes/fine_prune.py): what was pruned, what it cost."""
    if not fp:
        return []
    tune = fp["fine_tune"]
    if "pruned" in fp:
        steps = fp["steps"]
        kept = steps[len(fp["pruned"])]["accuracy"]
        pruned = (
            f"pruned {len(fp['pruned'])} of {fp['units_before']} units of {md_code(fp['layer'])}, the least "
            f"active on clean data (held-out accuracy {_pct(steps[0]['accuracy'])} -> {_pct(kept)}; budget "
            f"{_pct(fp['max_accuracy_drop'])}), then "
        )
    else:
        pruned = "no pruning; "
    return [
        f"Fine-pruning (backdoor defense, docs/security.md): {pruned}fine-tuned {tune['epochs']} epochs at lr "
        f"{tune['lr']:g} (held-out accuracy {_pct(tune['accuracy_before'])} -> {_pct(tune['accuracy_after'])}).",
        "",
    ]


def _circulant_lines(c: dict | None) -> list[str]:
    """The circulant pass's choices (passes/circulant.py): block sizes, the kept epoch, and every
    block size `block_size = "auto"` tried."""
    if not c:
        return []
    sizes = ", ".join(f"{md_code(name)} b = {b}" for name, b in c.get("block_sizes", {}).items()) or "none"
    lines = [f"Block-circulant layers (docs/fixed-point.md): {sizes}."]
    training = c.get("training", {})
    if training.get("heldout_accuracy") is not None:
        lines[0] += (
            f" Retraining kept epoch {training['best_epoch']} of {training['epochs_run']} (held-out accuracy "
            f"{_pct(training['heldout_accuracy'])} on {training['heldout_rows']} rows of x_train)."
        )
    auto = c.get("auto")
    if auto:
        lines += [
            "",
            f'`block_size = "auto"`: the largest block size within {auto["max_accuracy_drop"]:g} points of the '
            f"input model's held-out accuracy ({_pct(auto['reference_accuracy'])} on {auto['heldout_rows']} rows), "
            f"{auto['trial_epochs']} epochs per trial:",
            "",
            "| layer | block size | held-out accuracy | accepted |",
            "|---|---|---|---|",
            *(
                f"| {md_code(t['layer'])} | {t['block_size']} | {_pct(t['heldout_accuracy'])} | "
                f"{'yes' if t['accepted'] else 'no'} |"
                for t in auto["trials"]
            ),
        ]
    return [*lines, ""]


def _dp_sgd_lines(pt: dict | None) -> list[str]:
    """One line on differentially private training (passes/dp_sgd.py): the guarantee, or its absence."""
    dp = (pt or {}).get("dp_sgd")
    if not dp:
        return []
    covers = "the whole model" if dp.get("init") == "reinitialize" else "the fine-tuning only"
    if dp["epsilon"] == "inf":
        guarantee = "no noise (epsilon = inf): per-example clipping only, no privacy guarantee"
    else:
        guarantee = f"({dp['epsilon']:g}, {dp['delta']:.3g})-differentially private, covering {covers}"
    return [
        f"DP-SGD training (docs/audit.md): {guarantee}; noise multiplier {dp['noise_multiplier']:.3g}, "
        f"clipping norm {dp['max_grad_norm']:g}.",
        "",
    ]


def render_markdown(r: dict) -> str:
    m = r["model"]
    lines = [
        f"# mpc build report: {md_text(Path(r['source']).name)}",
        "",
        f"Target `{r['target']}`, seed {r['seed']}, compiled in {r['compile_seconds']} s.",
        "",
        "| | float | compiled (integer) |",
        "|---|---|---|",
        f"| test accuracy | {_pct(r['float']['test_accuracy'])} | {_pct(r['compiled']['test_accuracy'])} |",
        f"| train accuracy | {_pct(r['float']['train_accuracy'])} | {_pct(r['compiled']['train_accuracy'])} |",
        f"| weight bits | {m['float_weight_bits']:,} | {m['weight_bits']:,} |",
        "",
        f"Compression ratio (float32 weight bits / compiled weight bits): **{m['compression_ratio']}x**. "
        f"`model.int.onnx` identical to the golden executor on "
        f"{r['compiled']['onnx_matches_golden']['checked_samples']} test samples: "
        f"{r['compiled']['onnx_matches_golden']['identical']}.",
        "",
        *_qonnx_lines(m.get("qonnx")),
        *_narrowed_lines(m.get("narrowed")),
        *_fine_prune_lines(m.get("fine_prune")),
        *_circulant_lines(m.get("circulant")),
        *_dp_sgd_lines(r.get("privacy_training")),
        "## Passes",
        "",
        "| # | pass | seconds | test accuracy |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {i} | {p['name']} | {p['seconds']} | {_pct(p['test_accuracy'])} |" for i, p in enumerate(r["passes"], 1)
    ]
    lines += [
        "",
        "## Layers",
        "",
        "| layer | shape | engine | multipliers | bits | sparsity | weight bits | acc bits | est. cycles |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {md_code(x['name'])} | {'x'.join(map(str, x['shape']))} | {x['engine']} | {x['multipliers']} | "
        f"{x['bits']} | "
        f"{x['sparsity']:.2%} | {x['weight_bits']:,} | {x['acc_bits']} | {x['estimated_cycles']:,} |"
        for x in r["layers"]
    ]
    lines += hardware_section(r)
    lines += privacy_section(r.get("privacy"))
    return "\n".join(lines)


# Clock frequency per target where nothing measured it: an assumption, not a timing result.
# Latency and throughput follow from the clock and the cycle counts. An iCE40 device that was
# placed and routed gets nextpnr's measured Fmax instead (compiler/fpga/pnr.py).
CLOCK_ASSUMPTION = {
    "fpga": (
        100.0,
        "assumption, not a timing result: a conservative clock for a Xilinx 7-series (-1) design "
        "whose P-input adder chain is not pipelined",
    ),
    "asic": (
        500.0,
        "assumption, not a timing result: a typical clock for 45 nm standard cells, the energy table's node",
    ),
    "ice40": (
        12.0,
        "assumption, not a timing result: the board's 12 MHz oscillator (no place and route ran, so no Fmax)",
    ),
}
FPGA_RESOURCES = ("lut", "ff", "dsp", "bram", "lutram")
ICE40_RESOURCES = ("lut", "ff", "dsp", "bram", "carry")
ASIC_RESOURCES = ("cells", "area_nand2")


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
    flow = flow_of(target)
    names = {"fpga": FPGA_RESOURCES, "ice40": ICE40_RESOURCES}.get(flow, ASIC_RESOURCES)
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
    clock_mhz, note = (fmax, CLOCK_NOTE_MEASURED) if fmax else CLOCK_ASSUMPTION[flow]
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


def _num(v, fmt: str = ",") -> str:
    return "n/a" if v is None else format(v, fmt)


def _protection_note(hw: dict) -> str:
    p = hw.get("rom_protection")
    if not p:
        return ""
    return (
        f" ({p['check_bits']:,} of them {p['scheme']} check bits, one code per {p.get('unit', 'word')}, "
        f"+{p['overhead']:.1%} over the data; the design "
        "raises `fault` on a detected error, docs/security.md)"
    )


def hardware_section(r: dict) -> list[str]:
    """The "Hardware" and "Work and energy per inference" sections of report.md."""
    hw, sim = r["hardware"], r.get("simulation")
    if hw.get("cycles_source") == "simulation" and sim:
        cycles_how = (
            f"measured in simulation ({sim['simulator']}, {sim['samples']} samples, {sim['mismatches']} mismatches)"
        )
    else:
        cycles_how = "estimate from the engines' documented timing; `mpc simulate` measures them"
    lines = [
        "",
        "## Hardware",
        "",
        f"- multipliers: {hw['multipliers']}, ROM bits: {hw['rom_bits']:,}" + _protection_note(hw),
        f"- cycles per inference: {_num(hw.get('cycles_per_inference'), ',.0f')}, initiation interval "
        f"{_num(hw.get('initiation_interval'), ',.0f')} ({cycles_how})",
    ]
    if hw.get("cycles_source") == "simulation":
        lines[-1] += f"; estimate from the engines' timing: {hw['estimated_cycles_per_inference']:,}"
    if "clock_mhz" not in hw:  # a report written before these fields existed
        return lines + [""]
    note = hw.get("clock_note", hw["clock_source"])  # reports before clock_note held the text in clock_source
    lines += [
        f"- clock {hw['clock_mhz']:g} MHz ({note}): latency {_num(hw['latency_us'], ',.3f')} us, "
        f"throughput {_num(hw['throughput_per_s'], ',.0f')} inferences/s",
        f"- {_synthesis_line(hw, r['target'])}",
        *_device_lines(hw),
        "",
    ]
    return lines + _energy_lines(r["layers"], hw)


def _device_lines(hw: dict) -> list[str]:
    """The device: fitting, utilisation, place and route, bitstream (compiler/fpga)."""
    if not hw.get("device"):
        return []
    lines = []
    fit = hw.get("fit")
    if fit:
        tried = ", ".join(
            f"{a['multipliers']} ({'fits' if a['fits'] else 'over: ' + ', '.join(a['over']) or a['synthesis']})"
            for a in fit["attempts"]
        )
        lines.append(f"- fitted to {hw['device']}: [plan] multipliers {fit['chosen_multipliers']}; tried {tried}")
    if hw.get("utilization"):
        used = ", ".join(f"{k.replace('_', ' ')} {u:,}/{a:,}" for k, (u, a) in hw["utilization"].items())
        lines.append(f"- utilization of {hw['device']}: {used}")
    pnr = hw.get("place_and_route")
    if pnr:
        if pnr["status"] == "ok":
            lines.append(
                f"- placed and routed with {pnr['tool']} in {pnr['seconds']} s: Fmax {pnr['fmax_mhz']} MHz "
                f"(board clock {pnr['board_clock_mhz']:g} MHz on {pnr['board']}); bitstream `{pnr['bitstream']}`"
            )
            if pnr["fmax_mhz"] and pnr["fmax_mhz"] < pnr["board_clock_mhz"]:
                lines.append(
                    f"- **Fmax is below the board's {pnr['board_clock_mhz']:g} MHz clock**: the bitstream needs a "
                    "slower clock (a PLL or a divider) to run reliably"
                )
        else:
            lines.append(f"- place and route {pnr['status']}: {pnr['note']}")
    return lines


def _synthesis_line(hw: dict, target: str) -> str:
    syn = hw["synthesis"]
    if syn["status"] != "ok":
        return f"synthesis {syn['status']}: {syn['note']}"
    if flow_of(target) == "ice40":
        cost = f"LUT4 {hw['lut']:,}, FF {hw['ff']:,}, SB_MAC16 {hw['dsp']:,}, block RAM (4 Kb) {hw['bram']:,}"
    elif flow_of(target) == "fpga":
        cost = (
            f"LUT {hw['lut']:,}, FF {hw['ff']:,}, DSP {hw['dsp']:,}, BRAM (36 Kb) {hw['bram']:g}, "
            f"LUTRAM (LUTs) {hw['lutram']:,}"
        )
    else:
        cost = f"{hw['cells']:,} cells, area {hw['area_nand2']:,.0f} NAND2 equivalents"
    return (
        f"synthesis ({syn['version']}, {syn['seconds']} s): {cost}. Command, in rtl/: `{syn['command']}`; "
        f"cells by type in report.json, log in synth/yosys.log"
    )


# report.md's energy columns: report.json `hardware.energy_baselines` keys and their headings
BASELINE_HEADINGS = {
    "float32_dram": "float32, weights in DRAM (processor)",
    "float32_sram": "float32, weights in on-chip SRAM",
    "uncompressed": "uncompressed (dense int8 PTQ, same engines)",
}


def _energy_lines(layers: list[dict], hw: dict) -> list[str]:
    work, e = hw["work"], hw["energy_pj"]
    baselines = hw.get("energy_baselines")
    if baselines is None:  # a report written before the three baselines: one float32 column
        macs = sum(x.get("dense_multiplies", x["shape"][0] * x["shape"][1]) for x in layers)
        old = {"multiplies": macs, "additions": macs, "weight_reads": macs, "skipped_zeros": 0}
        baselines = {
            "float32_dram": {
                "energy_pj": e["float32_baseline"],
                "ratio": hw["energy_ratio"],
                "parts": e["float32_baseline_parts"],
                "work": old,
            }
        }
    columns = [(BASELINE_HEADINGS[k], b["work"], b["parts"], b["energy_pj"], b["ratio"]) for k, b in baselines.items()]
    columns.append(("compiled design (weights in on-chip ROM)", work, e["compiled_parts"], e["compiled"], 1.0))
    kinds = ["float32" if "float32" in h else "integer" for h, *_ in columns]

    def row(label: str, cells) -> str:
        return f"| {label} | " + " | ".join(cells) + " |"

    def reads(w: dict, kind: str) -> str:
        return f"{w['weight_reads']:,} weights" + (
            f", {w['weight_read_bits']:,} ROM bits" if kind == "integer" and "weight_read_bits" in w else ""
        )

    lines = [
        "## Work and energy per inference",
        "",
        row("", [h for h, *_ in columns]),
        "|---" * (len(columns) + 1) + "|",
        row("multiplies", [f"{w['multiplies']:,} ({k})" for (_, w, *_), k in zip(columns, kinds)]),
        row("additions", [f"{w['additions']:,} ({k})" for (_, w, *_), k in zip(columns, kinds)]),
        row("weight-memory reads", [reads(w, k) for (_, w, *_), k in zip(columns, kinds)]),
        row(
            "zero weights skipped",
            [f"{w['skipped_zeros']:,}" for _, w, *_ in columns[:-1]]
            + [f"{work['skipped_zeros']:,} of {work['zero_weights']:,}"],
        ),
    ]
    lines += [
        row(f"energy: {part.replace('_', ' ')} (pJ)", [f"{parts[part]:,.1f}" for _, _, parts, *_ in columns])
        for part in e["compiled_parts"]
    ]
    lines += [
        row("**energy per inference (pJ)**", [f"**{total:,.1f}**" for *_, total, _ in columns]),
        row("**baseline / compiled**", [f"**{_num(ratio, 'g')}x**" for *_, ratio in columns]),
        "",
    ]
    if "uncompressed" in baselines:
        b = baselines
        lines += [
            f"What compression saved: **{_num(b['uncompressed']['ratio'], 'g')}x** less energy per inference than "
            "the same model uncompressed (its original layers as dense int8 post-training quantization on the same "
            f"engines). Against float32 on a processor: {_num(b['float32_dram']['ratio'], 'g')}x with weights in "
            f"DRAM, {_num(b['float32_sram']['ratio'], 'g')}x with weights in on-chip SRAM. Every baseline prices the "
            "original imported model, so all builds of one model share them.",
        ]
    else:
        lines += [
            f"The compiled design needs **{_num(hw['energy_ratio'], 'g')}x** less energy per inference than the "
            "float32 baseline."
        ]
    lines += [
        "",
        f"This is a model, not a measurement: energies from {hw['energy_model']['source']}.",
        "",
    ]
    return lines + [f"- {a}" for a in hw["energy_model"]["assumptions"]] + [""]


def privacy_section(audit: dict | None) -> list[str]:
    """The "Membership inference" (and "Backdoor") sections, from report.json's `privacy` (what
    `mpc audit` wrote to audit.json); re-rendered from JSON every time, so audits never duplicate them."""
    if not audit:
        return []
    membership = [
        (name, t, a, m) for name, t in audit["targets"].items() for a, m in t["attacks"].items() if "auc" in m
    ]
    lines = _membership_table(audit, membership) if membership else []
    return lines + _backdoor_table(audit) + _bitflip_section(audit)


def _bitflip_section(audit: dict) -> list[str]:
    m = audit["targets"].get("compiled", {}).get("attacks", {}).get("bitflip")
    if not m:
        return []
    reached = m["flips_to_target"]
    random = m["random_flips_for_same_drop"]
    acc = m["accuracy_per_flip"]
    lines = [
        "## Bit flips",
        "",
        f"BFA's progressive bit search on the design's ROM words as stored ({m['rom_data_bits']} data bits, "
        f"{m['protection']} protection; docs/security.md), {m['attack_batch']} attacker rows, accuracy on "
        f"{m['eval_samples']} test rows.",
        "",
        "| | flips | accuracy |",
        "|---|---|---|",
        f"| searched flips to {_pct(m['target_accuracy'])} | "
        f"{'not reached in ' + str(m['physical_flips_per_step'][-1]) if reached is None else reached} | "
        f"{_pct(acc[0])} → {_pct(acc[-1])} |",
        f"| random flips for the same drop (median of trials) | "
        f"{'not reached in ' + str(m['random_flips_tried_up_to']) if random is None else random} | |",
    ]
    if "naive_attack" in m:
        n = m["naive_attack"]
        words = n.get("words", {})
        read = ", ".join(f"{v} {k}" for k, v in words.items() if v)
        lines.append(
            f"| the unprotected search's {n['flips']} flips on these ROMs ({read} words) | {n['flips']} | "
            f"{_pct(n['accuracy'])}{' (fault raised)' if n['fault_raised'] else ''} |"
        )
    if "simulation" in m:
        sim = m["simulation"]
        lines += [
            "",
            f"Simulated with the flipped ROM files: {sim['samples']} samples, {sim['mismatches']} mismatches.",
        ]
    return lines + [""]


def _membership_table(audit: dict, rows: list) -> list[str]:
    n = audit["n_non_members"]
    adaptive = bool(audit.get("adaptive"))
    lines = [
        "## Membership inference",
        "",
        f"{audit['n_members']} members (x_train) vs {n} non-members (x_test), {audit['shadows']} shadow "
        f"models, seed {audit['seed']}; details in `audit.json`, ROC curves in `audit_roc_<target>.png` "
        f"(docs/audit.md). Balanced accuracy is at the best threshold; n/a: an FPR under 1/{n} is not resolvable."
        + (
            " Adaptive: the shadows also went through the build's passes "
            f"({', '.join(audit['settings']['adaptive_replay']['passes']) or 'none'}), so they are built like "
            "each target; read these columns for a defended or compressed build."
            if adaptive
            else ""
        ),
        "",
        "| target | test accuracy | attack | AUC | balanced accuracy | TPR @ 1% FPR | TPR @ 0.1% FPR |"
        + (" adaptive AUC | adaptive balanced accuracy | adaptive TPR @ 1% FPR |" if adaptive else ""),
        "|---|---|---|---|---|---|---|" + ("---|---|---|" if adaptive else ""),
    ]
    for name, target, attack, m in rows:
        line = (
            f"| {name} | {_pct(target['test_accuracy'])} | {attack} | {m['auc']:.3f} | "
            f"{_pct(m['balanced_accuracy'])} | {_pct(m['tpr_at_1pct_fpr'])} | "
            f"{_pct(m['tpr_at_0_1pct_fpr'])} |"
        )
        if adaptive:
            a = target.get("adaptive_attacks", {}).get(attack)
            line += (
                f" {a['auc']:.3f} | {_pct(a['balanced_accuracy'])} | {_pct(a['tpr_at_1pct_fpr'])} |"
                if a
                else " n/a | n/a | n/a |"
            )
        lines.append(line)
    return lines + [""]


def _backdoor_table(audit: dict) -> list[str]:
    rows = [(name, t["attacks"]["backdoor"]) for name, t in audit["targets"].items() if "backdoor" in t["attacks"]]
    if not rows:
        return []
    backdoor = audit["settings"]["backdoor"]
    lines = [
        "## Backdoor",
        "",
        f"Trigger {md_code(Path(backdoor['trigger']).name)}, target class {backdoor['target_class']}: the attack "
        "success rate is the share of test samples of other classes that the model classifies as the target "
        "once triggered (docs/security.md).",
        "",
        "| target | clean accuracy | attack success rate | triggered samples |",
        "|---|---|---|---|",
    ]
    for name, m in rows:
        lines.append(f"| {name} | {_pct(m['clean_accuracy'])} | {_pct(m['attack_success_rate'])} | {m['samples']} |")
    return lines + [""]
