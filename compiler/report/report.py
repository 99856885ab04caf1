"""report.json and report.md: what compression did, always written (schema: docs/report.md)."""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path

import numpy as np

from compiler.hw.base import output_positions
from compiler.ir import Graph
from compiler.report.energy import energy_section

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
    hardware |= hardware_costs(layers, ctx.target, synthesis)
    set_cycles(hardware, design["estimated_latency"], "estimate", design["estimated_interval"])
    return {
        "schema_version": SCHEMA_VERSION,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source": _absolute(source),  # the same whatever folder mpc ran from (and `mpc audit` finds data)
        "data": _absolute(getattr(ctx.data, "path", None)),
        "target": ctx.target,
        "seed": ctx.seed,
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
        },
        "layers": layers,
        "hardware": hardware,
        "simulation": None,
    }


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
        "bias_bits": int(n_bias * node.attrs["acc_bits"]),
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


# Clock frequency per target: an assumption, not a timing result (yosys does no timing analysis
# here). Latency and throughput follow from it and the cycle counts.
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
}
FPGA_RESOURCES = ("lut", "ff", "dsp", "bram", "lutram")
ASIC_RESOURCES = ("cells", "area_nand2")


def hardware_costs(layers: list[dict], target: str, synthesis: dict | None) -> dict:
    """Synthesis resources, the assumed clock, work and energy: fields of report.json `hardware`."""
    if synthesis is None:
        synthesis = {"status": "skipped", "note": "synthesis not run (mpc compile --no-synth)"}
    names = FPGA_RESOURCES if target == "fpga" else ASIC_RESOURCES
    clock_mhz, clock_source = CLOCK_ASSUMPTION[target]
    return (
        {name: synthesis.get(name) for name in names}
        | {
            "synthesis": {k: v for k, v in synthesis.items() if k not in names},
            "clock_mhz": clock_mhz,
            "clock_source": clock_source,
        }
        | energy_section(layers)
    )


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
        f"- multipliers: {hw['multipliers']}, ROM bits: {hw['rom_bits']:,}",
        f"- cycles per inference: {_num(hw.get('cycles_per_inference'), ',.0f')}, initiation interval "
        f"{_num(hw.get('initiation_interval'), ',.0f')} ({cycles_how})",
    ]
    if hw.get("cycles_source") == "simulation":
        lines[-1] += f"; estimate from the engines' timing: {hw['estimated_cycles_per_inference']:,}"
    if "clock_mhz" not in hw:  # a report written before these fields existed
        return lines + [""]
    lines += [
        f"- clock {hw['clock_mhz']:g} MHz ({hw['clock_source']}): latency {_num(hw['latency_us'], ',.3f')} us, "
        f"throughput {_num(hw['throughput_per_s'], ',.0f')} inferences/s",
        f"- {_synthesis_line(hw, r['target'])}",
        "",
    ]
    return lines + _energy_lines(r["layers"], hw)


def _synthesis_line(hw: dict, target: str) -> str:
    syn = hw["synthesis"]
    if syn["status"] != "ok":
        return f"synthesis {syn['status']}: {syn['note']}"
    if target == "fpga":
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


def _energy_lines(layers: list[dict], hw: dict) -> list[str]:
    work, e = hw["work"], hw["energy_pj"]
    dense_macs = sum(x.get("dense_multiplies", x["shape"][0] * x["shape"][1]) for x in layers)
    base, comp = e["float32_baseline_parts"], e["compiled_parts"]
    lines = [
        "## Work and energy per inference",
        "",
        "| | float32 baseline (processor, weights in DRAM) | compiled design (weights in on-chip ROM) |",
        "|---|---|---|",
        f"| multiplies | {dense_macs:,} (float32) | {work['multiplies']:,} (integer) |",
        f"| additions | {dense_macs:,} (float32) | {work['additions']:,} (integer) |",
        f"| weight-memory reads | {dense_macs:,} weights | {work['weight_reads']:,} weights, "
        f"{work['weight_read_bits']:,} ROM bits |",
        f"| zero weights skipped | 0 | {work['skipped_zeros']:,} of {work['zero_weights']:,} |",
    ]
    lines += [f"| energy: {part.replace('_', ' ')} (pJ) | {base[part]:,.1f} | {comp[part]:,.1f} |" for part in base]
    lines += [
        f"| **energy per inference (pJ)** | **{e['float32_baseline']:,.1f}** | **{e['compiled']:,.1f}** |",
        "",
        f"The compiled design needs **{_num(hw['energy_ratio'], 'g')}x** less energy per inference than the "
        f"float32 baseline. This is a model, not a measurement: energies from {hw['energy_model']['source']}.",
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
    return lines + _backdoor_table(audit)


def _membership_table(audit: dict, rows: list) -> list[str]:
    n = audit["n_non_members"]
    lines = [
        "## Membership inference",
        "",
        f"{audit['n_members']} members (x_train) vs {n} non-members (x_test), {audit['shadows']} shadow "
        f"models, seed {audit['seed']}; details in `audit.json`, ROC curves in `audit_roc_<target>.png` "
        f"(docs/audit.md). Balanced accuracy is at the best threshold; n/a: an FPR under 1/{n} is not resolvable.",
        "",
        "| target | test accuracy | attack | AUC | balanced accuracy | TPR @ 1% FPR | TPR @ 0.1% FPR |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, target, attack, m in rows:
        lines.append(
            f"| {name} | {_pct(target['test_accuracy'])} | {attack} | {m['auc']:.3f} | "
            f"{_pct(m['balanced_accuracy'])} | {_pct(m['tpr_at_1pct_fpr'])} | "
            f"{_pct(m['tpr_at_0_1pct_fpr'])} |"
        )
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
