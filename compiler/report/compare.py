"""`mpc compare OUT1 OUT2 ...`: one table across builds, and an HTML page with plots.

Reads each build's report.json and, where it exists, audit.json (the compiled target's
strongest attack, by AUC). The HTML page is self-contained (plots embedded as base64 PNG),
so it opens from disk without a server. Text from the builds (folder names, report.json fields)
is data: table cells have no control characters (printable) and are HTML-escaped on the page;
plot labels are drawn as plain text (no mathtext).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compiler.errors import MpcError
from compiler.report.text import printable
from compiler.targets import target_kind


class CompareError(MpcError, ValueError):
    pass


def load_build(out: str | Path) -> dict:
    """One row of the comparison: the fields of OUT/report.json (and OUT/audit.json) it shows."""
    out = Path(out)
    try:
        report = json.loads((out / "report.json").read_text())
    except FileNotFoundError:
        raise CompareError(f"{out}: no report.json (not a folder written by `mpc compile`)") from None
    except (OSError, ValueError) as e:
        raise CompareError(f"{out}/report.json: unreadable ({e})") from None
    hw, model = report.get("hardware", {}), report.get("model", {})
    energy = hw.get("energy_pj") or {}
    baselines = hw.get("energy_baselines") or {}  # reports before the three baselines have only float32 (DRAM)
    row = {
        "build": str(out),
        "target": report.get("target"),
        "float_accuracy": report.get("float", {}).get("test_accuracy"),
        "compiled_accuracy": report.get("compiled", {}).get("test_accuracy"),
        "compression_ratio": model.get("compression_ratio"),
        "weight_bits": model.get("weight_bits"),
        "cycles": hw.get("cycles_per_inference"),
        "cycles_source": hw.get("cycles_source"),
        "energy_float32_pj": energy.get("float32_baseline"),
        "energy_compiled_pj": energy.get("compiled"),
        "energy_ratio": hw.get("energy_ratio"),  # = the float32_dram baseline's ratio
        "energy_ratio_float32_sram": baselines.get("float32_sram", {}).get("ratio"),
        "energy_ratio_uncompressed": baselines.get("uncompressed", {}).get("ratio"),
    }
    if report.get("task") == "regression":  # its scores: MSE (and the anomaly AUC), no accuracy
        f, c = report.get("float", {}), report.get("compiled", {})
        row |= {"float_mse": f.get("test_mse"), "compiled_mse": c.get("test_mse"), "compiled_auc": c.get("test_auc")}
    row |= {k: hw.get(k) for k in ("lut", "ff", "dsp", "bram", "cells", "area_nand2")}
    row |= {"device": hw.get("device"), "fmax_mhz": hw.get("fmax_mhz"), "clock_mhz": hw.get("clock_mhz")}
    return row | _audit_fields(out)


def _audit_fields(out: Path) -> dict:
    """The compiled target's strongest attack (highest AUC) and the original's AUC for it."""
    path = out / "audit.json"
    if not path.is_file():
        return {}
    try:
        targets = json.loads(path.read_text())["targets"]
        attacks = targets["compiled"]["attacks"]
    except (OSError, ValueError, KeyError) as e:
        raise CompareError(f"{path}: not an audit written by `mpc audit` ({e})") from None
    fields = _backdoor_fields(targets) | _bitflip_fields(attacks)
    membership = {a: m for a, m in attacks.items() if "auc" in m}
    if not membership:
        return fields
    name, m = max(membership.items(), key=lambda kv: kv[1]["auc"])
    original = targets.get("original", {}).get("attacks", {}).get(name, {})
    return (
        fields
        | _adaptive_fields(targets["compiled"])
        | {
            "attack": name,
            "attack_auc": m["auc"],
            "attack_balanced_accuracy": m["balanced_accuracy"],
            "attack_tpr_at_0_1pct_fpr": m["tpr_at_0_1pct_fpr"],
            "original_attack_auc": original.get("auc"),
        }
    )


def _adaptive_fields(compiled: dict) -> dict:
    """The strongest attack by the adaptive attacker (shadows built with the build's recipe)."""
    adaptive = {a: m for a, m in compiled.get("adaptive_attacks", {}).items() if "auc" in m}
    if not adaptive:
        return {}
    m = max(adaptive.values(), key=lambda m: m["auc"])
    return {"adaptive_attack_auc": m["auc"], "adaptive_attack_tpr_at_1pct_fpr": m["tpr_at_1pct_fpr"]}


def _backdoor_fields(targets: dict) -> dict:
    """The backdoor attack's success rate on the compiled and the original model, where audited."""
    compiled = targets.get("compiled", {}).get("attacks", {}).get("backdoor")
    if not compiled:
        return {}
    original = targets.get("original", {}).get("attacks", {}).get("backdoor", {})
    return {
        "backdoor_asr": compiled.get("attack_success_rate"),
        "original_backdoor_asr": original.get("attack_success_rate"),
    }


def _bitflip_fields(attacks: dict) -> dict:
    """Bit flips the search needed to reach its target, and random flips for the same drop."""
    b = attacks.get("bitflip")
    if not b:
        return {}
    return {
        "bitflip_flips": b.get("flips_to_target"),
        "bitflip_random_flips": b.get("random_flips_for_same_drop"),
        "rom_protection": b.get("protection"),
    }


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    show: Callable[[object, dict], str]
    group: str = (
        "always"  # a target kind ("fpga", "asic"), "device", "regression", "audit", "backdoor", "bitflip": shown
    )
    # when some build has it


def _fmt(spec: str) -> Callable[[object, dict], str]:
    return lambda v, row: "n/a" if v is None else format(v, spec)


def _cycles(v, row) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.0f}" + (" (sim)" if row.get("cycles_source") == "simulation" else " (est)")


def _ratio(v, row) -> str:
    return "n/a" if v is None else f"{v:,.2f}x" if v < 10 else f"{v:,.1f}x"


COLUMNS = [
    Column("build", "build", lambda v, row: str(v)),
    Column("target", "target", lambda v, row: str(v)),
    Column("float acc", "float_accuracy", _fmt(".4f")),
    Column("compiled acc", "compiled_accuracy", _fmt(".4f")),
    Column("float MSE", "float_mse", _fmt(".4g"), "regression"),
    Column("compiled MSE", "compiled_mse", _fmt(".4g"), "regression"),
    Column("anomaly AUC", "compiled_auc", _fmt(".4f"), "regression"),
    Column("compression", "compression_ratio", lambda v, row: "n/a" if v is None else f"{v:.2f}x"),
    Column("weight bits", "weight_bits", _fmt(",")),
    Column("LUT", "lut", _fmt(","), "fpga"),
    Column("FF", "ff", _fmt(","), "fpga"),
    Column("DSP", "dsp", _fmt(","), "fpga"),
    Column("BRAM", "bram", _fmt("g"), "fpga"),
    Column("cells", "cells", _fmt(","), "asic"),
    Column("area (NAND2 eq)", "area_nand2", _fmt(",.0f"), "asic"),
    Column("device", "device", _fmt(""), "device"),
    Column("Fmax (MHz)", "fmax_mhz", _fmt(".1f"), "device"),
    Column("cycles", "cycles", _cycles),
    Column("energy/inf (pJ)", "energy_compiled_pj", _fmt(",.1f")),
    # the energy baselines (report.json hardware.energy_baselines), each / the compiled design's energy
    Column("float32 DRAM/compiled", "energy_ratio", _ratio),
    Column("float32 SRAM/compiled", "energy_ratio_float32_sram", _ratio),
    Column("uncompressed/compiled", "energy_ratio_uncompressed", _ratio),
    Column("attack", "attack", _fmt(""), "audit"),
    Column("attack AUC", "attack_auc", _fmt(".3f"), "audit"),
    Column("attack acc", "attack_balanced_accuracy", _fmt(".3f"), "audit"),
    Column("TPR@0.1%FPR", "attack_tpr_at_0_1pct_fpr", _fmt(".3f"), "audit"),
    Column("adaptive AUC", "adaptive_attack_auc", _fmt(".3f"), "adaptive"),
    Column("adaptive TPR@1%FPR", "adaptive_attack_tpr_at_1pct_fpr", _fmt(".3f"), "adaptive"),
    Column("backdoor ASR", "backdoor_asr", _fmt(".3f"), "backdoor"),
    Column("original ASR", "original_backdoor_asr", _fmt(".3f"), "backdoor"),
    Column("ROM code", "rom_protection", _fmt(""), "bitflip"),
    Column(
        "flips to random guess", "bitflip_flips", lambda v, row: "not reached" if v is None else f"{v:,}", "bitflip"
    ),
    Column("random flips", "bitflip_random_flips", lambda v, row: "not reached" if v is None else f"{v:,}", "bitflip"),
]


TEXT_COLUMNS = {"build", "target", "attack", "device", "ROM code"}


def _columns(rows: list[dict]) -> list[Column]:
    present = {"always"} | {target_kind(str(r["target"])) for r in rows}
    present |= {"device"} if any(r.get("device") for r in rows) else set()
    present |= {"regression"} if any("compiled_mse" in r for r in rows) else set()
    present |= {"audit"} if any("attack" in r for r in rows) else set()
    present |= {"adaptive"} if any("adaptive_attack_auc" in r for r in rows) else set()
    present |= {"backdoor"} if any("backdoor_asr" in r for r in rows) else set()
    present |= {"bitflip"} if any("bitflip_flips" in r for r in rows) else set()
    return [c for c in COLUMNS if c.group in present]


def table_cells(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells, each one printable line (a terminal shows it as it is)."""
    columns = _columns(rows)
    return [c.header for c in columns], [[printable(c.show(row.get(c.key), row)) for c in columns] for row in rows]


def format_table(rows: list[dict]) -> str:
    """The comparison as aligned plain text: text columns left, numbers right."""
    headers, body = table_cells(rows)
    widths = [max(len(x) for x in col) for col in zip(headers, *body)]
    left = {i for i, h in enumerate(headers) if h in TEXT_COLUMNS}

    def line(cells):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in body])


# ---- plots ----------------------------------------------------------------------------------
def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _label(ax, rows, xs, ys) -> None:
    for i, (row, x, y) in enumerate(zip(rows, xs, ys)):  # alternate above/below: close points stay legible
        ax.annotate(
            printable(Path(row["build"]).name),
            (x, y),
            textcoords="offset points",
            xytext=(5, 4 if i % 2 else -11),
            fontsize=8,
            parse_math=False,  # a `$` in a folder name is text, not mathtext
        )


def plot_energy_vs_accuracy(rows: list[dict]) -> bytes | None:
    """Compiled test accuracy against modelled energy per inference, float32 baselines as x."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    rows = [r for r in rows if r["energy_compiled_pj"] and r["compiled_accuracy"] is not None]
    if not rows:
        return None
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    xs, ys = [r["energy_compiled_pj"] for r in rows], [r["compiled_accuracy"] for r in rows]
    ax.scatter(xs, ys, label="compiled design")
    _label(ax, rows, xs, ys)
    base = [r for r in rows if r["energy_float32_pj"] and r["float_accuracy"] is not None]
    if base:
        ax.scatter(
            [r["energy_float32_pj"] for r in base],
            [r["float_accuracy"] for r in base],
            marker="x",
            color="tab:red",
            label="float32 baseline (weights in DRAM)",
        )
    ax.set_xscale("log")
    ax.margins(x=0.15, y=0.15)
    ax.set_xlabel("energy per inference (pJ, modelled: Horowitz ISSCC 2014, 45 nm)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Energy vs accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def plot_auc_vs_compression(rows: list[dict]) -> bytes | None:
    """Strongest attack's AUC on the compiled model against compression (None without audits)."""
    from matplotlib.figure import Figure

    rows = [r for r in rows if r.get("attack_auc") is not None and r["compression_ratio"]]
    if not rows:
        return None
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    xs, ys = [r["compression_ratio"] for r in rows], [r["attack_auc"] for r in rows]
    ax.scatter(xs, ys, label="compiled model")
    _label(ax, rows, xs, ys)
    originals = [r["original_attack_auc"] for r in rows if r.get("original_attack_auc") is not None]
    if originals:
        ax.scatter([1.0] * len(originals), originals, marker="x", color="tab:red", label="original float model")
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.8, label="chance (AUC 0.5)")
    ax.margins(x=0.15, y=0.15)
    ax.set_xlabel("compression ratio (float32 weight bits / compiled weight bits)")
    ax.set_ylabel("membership-inference AUC (strongest attack)")
    ax.set_title("Attack AUC vs compression")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


# ---- HTML -----------------------------------------------------------------------------------
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mpc compare</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
 table {{ border-collapse: collapse; font-size: 14px; }}
 th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; white-space: nowrap; }}
 th {{ background: #f0f0f0; }}
 .text {{ text-align: left; }}
 figure {{ display: inline-block; margin: 1em 1em 0 0; }}
 .note {{ color: #555; font-size: 13px; max-width: 60em; }}
</style></head><body>
<h1>mpc compare: {n} builds</h1>
<p class="note">Generated {created}. Energy per inference is a model (counted operations and memory accesses priced
with Horowitz, ISSCC 2014, 45 nm; see each build's report.md), not a measurement. Cycles marked (est) come from the
engines' formulas, (sim) from simulation. Energy ratios: each baseline's energy (the original model in float32 with
weights in DRAM or on-chip SRAM, and uncompressed: dense int8 on the same engines) over the build's;
uncompressed/compiled is what compression saved. Attack columns: the compiled model's strongest attack (highest AUC) in
the build's audit.json.</p>
{table}
{figures}
</body></html>
"""


def render_html(rows: list[dict]) -> str:
    headers, body = table_cells(rows)
    align = ['class="text"' if h in TEXT_COLUMNS else "" for h in headers]
    table = (
        "<table>\n<tr>"
        + "".join(f"<th {a}>{html.escape(h)}</th>" for a, h in zip(align, headers))
        + "</tr>\n"
        + "\n".join(
            "<tr>" + "".join(f"<td {a}>{html.escape(c)}</td>" for a, c in zip(align, r)) + "</tr>" for r in body
        )
        + "\n</table>"
    )
    figures = []
    for title, png in (
        ("Energy vs accuracy", plot_energy_vs_accuracy(rows)),
        ("Attack AUC vs compression", plot_auc_vs_compression(rows)),
    ):
        if png is not None:
            data = base64.b64encode(png).decode("ascii")
            figures.append(f'<figure><img alt="{title}" src="data:image/png;base64,{data}"></figure>')
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return PAGE.format(n=len(rows), created=created, table=table, figures="\n".join(figures))


def compare(outs: list[str | Path], html_path: str | Path | None = None) -> str:
    """The comparison table of the builds in `outs` (also written as an HTML page to html_path)."""
    rows = [load_build(out) for out in outs]
    if html_path is not None:
        Path(html_path).write_text(render_html(rows))
    return format_table(rows)
