"""report.md: report.json rendered as Markdown (schema: docs/report.md).

Rendered from the JSON alone, every time the report is written (a compile, a simulation, an
audit), so sections never duplicate. Pass and attack sections are registered in sections/.
"""

from __future__ import annotations

from pathlib import Path

from compiler.report.sections import ATTACK_SECTIONS, PASS_SECTIONS
from compiler.report.text import md_code, md_text, num, pct
from compiler.targets import synthesis_flow


def render_markdown(r: dict) -> str:
    m = r["model"]
    lines = [
        f"# mpc build report: {md_text(Path(r['source']).name)}",
        "",
        f"Target `{r['target']}`, seed {r['seed']}, compiled in {r['compile_seconds']} s.",
        "",
        "| | float | compiled (integer) |",
        "|---|---|---|",
        *score_rows(r),
        f"| weight bits | {m['float_weight_bits']:,} | {m['weight_bits']:,} |",
        "",
        f"Compression ratio (float32 weight bits / compiled weight bits): **{m['compression_ratio']}x**. "
        f"`model.int.onnx` identical to the golden executor on "
        f"{r['compiled']['onnx_matches_golden']['checked_samples']} test samples: "
        f"{r['compiled']['onnx_matches_golden']['identical']}.",
        "",
        *(line for section in PASS_SECTIONS.values() for line in section.markdown(r)),
        "## Passes",
        "",
        f"| # | pass | seconds | {'test MSE' if _regression(r) else 'test accuracy'} |",
        "|---|---|---|---|",
    ]
    lines += [f"| {i} | {p['name']} | {p['seconds']} | {_pass_score(r, p)} |" for i, p in enumerate(r["passes"], 1)]
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


def _protection_note(hw: dict) -> str:
    p = hw.get("rom_protection")
    if not p:
        return ""
    return (
        f" ({p['check_bits']:,} of them {p['scheme']} check bits, one code per {p.get('unit', 'word')}, "
        f"+{p['overhead']:.1%} over the data; the design "
        "raises `fault` on a detected error, docs/security.md)"
    )


def _regression(r: dict) -> bool:
    return r.get("task") == "regression"


def score_rows(r: dict) -> list[str]:
    """The float and integer models' scores: accuracy, or a regression's MSE (and anomaly AUC)."""
    f, c = r["float"], r["compiled"]
    if not _regression(r):
        return [
            f"| test accuracy | {pct(f['test_accuracy'])} | {pct(c['test_accuracy'])} |",
            f"| train accuracy | {pct(f['train_accuracy'])} | {pct(c['train_accuracy'])} |",
        ]
    rows = [
        f"| test MSE | {num(f.get('test_mse'), '.6g')} | {num(c.get('test_mse'), '.6g')} |",
        f"| train MSE | {num(f.get('train_mse'), '.6g')} | {num(c.get('train_mse'), '.6g')} |",
    ]
    if f.get("test_auc") is not None or c.get("test_auc") is not None:  # a_test given: anomaly detection
        rows.append(f"| anomaly AUC (test, by reconstruction error) | {num(f.get('test_auc'), '.4f')} | "
                    f"{num(c.get('test_auc'), '.4f')} |")  # fmt: skip
    return rows


def _pass_score(r: dict, p: dict) -> str:
    return num(p.get("test_mse"), ".6g") if _regression(r) else pct(p["test_accuracy"])


def hardware_section(r: dict) -> list[str]:
    """The "Hardware" and "Work and energy per inference" sections of report.md."""
    hw, sim = r["hardware"], r.get("simulation")
    if hw.get("cycles_source") == "simulation" and sim:
        cycles_how = (
            f"measured in simulation ({sim['simulator']}, {sim['samples']} samples, {sim['mismatches']} mismatches"
            + (f", {sim['samples_per_second']:.3g} samples/s" if sim.get("samples_per_second") else "")
            + ")"
        )
    else:
        cycles_how = "estimate from the engines' documented timing; `mpc simulate` measures them"
    lines = [
        "",
        "## Hardware",
        "",
        f"- multipliers: {hw['multipliers']}, ROM bits: {hw['rom_bits']:,}" + _protection_note(hw),
        f"- cycles per inference: {num(hw.get('cycles_per_inference'), ',.0f')}, initiation interval "
        f"{num(hw.get('initiation_interval'), ',.0f')} ({cycles_how})",
    ]
    if hw.get("cycles_source") == "simulation":
        lines[-1] += f"; estimate from the engines' timing: {hw['estimated_cycles_per_inference']:,}"
    if "clock_mhz" not in hw:  # a report written before these fields existed
        return lines + [""]
    note = hw.get("clock_note", hw["clock_source"])  # reports before clock_note held the text in clock_source
    lines += [
        f"- clock {hw['clock_mhz']:g} MHz ({note}): latency {num(hw['latency_us'], ',.3f')} us, "
        f"throughput {num(hw['throughput_per_s'], ',.0f')} inferences/s",
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
    if synthesis_flow(target) == "ice40":
        cost = f"LUT4 {hw['lut']:,}, FF {hw['ff']:,}, SB_MAC16 {hw['dsp']:,}, block RAM (4 Kb) {hw['bram']:,}"
    elif synthesis_flow(target) == "fpga":
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
        row("**baseline / compiled**", [f"**{num(ratio, 'g')}x**" for *_, ratio in columns]),
        "",
    ]
    if "uncompressed" in baselines:
        b = baselines
        lines += [
            f"What compression saved: **{num(b['uncompressed']['ratio'], 'g')}x** less energy per inference than "
            "the same model uncompressed (its original layers as dense int8 post-training quantization on the same "
            f"engines). Against float32 on a processor: {num(b['float32_dram']['ratio'], 'g')}x with weights in "
            f"DRAM, {num(b['float32_sram']['ratio'], 'g')}x with weights in on-chip SRAM. Every baseline prices the "
            "original imported model, so all builds of one model share them.",
        ]
    else:
        lines += [
            f"The compiled design needs **{num(hw['energy_ratio'], 'g')}x** less energy per inference than the "
            "float32 baseline."
        ]
    lines += [
        "",
        f"This is a model, not a measurement: energies from {hw['energy_model']['source']}.",
        "",
    ]
    return lines + [f"- {a}" for a in hw["energy_model"]["assumptions"]] + [""]


def privacy_section(audit: dict | None) -> list[str]:
    """The attack sections ("Membership inference", "Backdoor", "Bit flips"), from report.json's
    `privacy` (what `mpc audit` wrote to audit.json); re-rendered from JSON every time, so audits
    never duplicate them."""
    if not audit:
        return []
    return [line for section in ATTACK_SECTIONS.values() for line in section.markdown(audit)]
