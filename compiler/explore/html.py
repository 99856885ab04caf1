"""EXPLORE/index.html: the objectives against each other, the Pareto set marked, every point
linked to its build's report.

Self-contained like `mpc compare --html` (plots embedded as base64 PNG); each plot carries an
image map, so clicking a point opens points/<id>/report.md. Text from the space (axis values,
errors) is data: made printable and HTML-escaped; plot labels are plain text (no mathtext).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import itertools
import json

from compiler.report.text import printable

MAX_PLOTTED_OBJECTIVES = 4  # the first four: six plots of pairs at most
DPI = 100

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mpc explore</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
 table {{ border-collapse: collapse; font-size: 13px; }}
 th, td {{ border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }}
 th {{ background: #f0f0f0; }}
 td.text {{ text-align: left; }}
 tr.pareto td {{ background: #fff3f0; }}
 figure {{ display: inline-block; margin: 1em 1em 0 0; }}
 .note {{ color: #555; font-size: 13px; max-width: 60em; }}
</style></head><body>
<h1>mpc explore: {n} points, {n_pareto} in the Pareto set</h1>
<p class="note">Generated {created} from {space}. Objectives: {objectives}. The Pareto set holds the points no other
point matches or beats on every objective (red); click a point to open its build's report. Energy is a model
(see each report.md), not a measurement.</p>
{figures}
<h2>Points</h2>
{table}
</body></html>
"""


def render_index(results: dict) -> str:
    rows = results["points"]
    objectives = results["objectives"]
    figures = [_figure(rows, a, b, f"plot{k}") for k, (a, b) in enumerate(_pairs(objectives))]
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return PAGE.format(
        n=len(rows),
        n_pareto=len(results["pareto"]),
        created=created,
        space=html.escape(printable(results["space"])),
        objectives=html.escape(printable(", ".join(_label(o) for o in objectives))),
        figures="\n".join(f for f in figures if f),
        table=_table(results),
    )


def _pairs(objectives: list[dict]) -> list[tuple[dict, dict | None]]:
    shown = objectives[:MAX_PLOTTED_OBJECTIVES]
    if len(shown) == 1:
        return [(shown[0], None)]
    return list(itertools.combinations(shown, 2))


def _label(objective: dict) -> str:
    return f"{objective['given']} ({'higher' if objective['direction'] == 'max' else 'lower'} is better)"


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else None


def _figure(rows: list[dict], x_obj: dict, y_obj: dict | None, name: str, size=(5.6, 4.2)) -> str | None:
    """One scatter plot as <figure> with an image map; y_obj None: the objective against the
    point's place in the table."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = []
    for i, row in enumerate(rows):
        if row["status"] != "ok":
            continue
        x = _number(row["metrics"].get(x_obj["key"]))
        y = _number(row["metrics"].get(y_obj["key"])) if y_obj else float(i)
        if x is not None and y is not None:
            points.append((x, y, row))
    if not points:
        return None
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    rest = [(x, y) for x, y, r in points if not r["pareto"]]
    front = [(x, y, r) for x, y, r in points if r["pareto"]]
    if rest:
        ax.scatter([p[0] for p in rest], [p[1] for p in rest], s=22, color="tab:blue", alpha=0.7, label="point")
    if front:
        ax.scatter([p[0] for p in front], [p[1] for p in front], s=46, color="tab:red", label="Pareto set")
        for x, y, r in front:
            ax.annotate(r["id"][:6], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, parse_math=False)
    for axis, values in ((ax.set_xscale, [p[0] for p in points]), (ax.set_yscale, [p[1] for p in points])):
        if y_obj is None and axis == ax.set_yscale:
            continue
        if min(values) > 0 and max(values) / min(values) > 100:
            axis("log")
    ax.set_xlabel(printable(_label(x_obj)), fontsize=9)
    ax.set_ylabel(printable(_label(y_obj)) if y_obj else "point (table order)", fontsize=9)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.margins(0.08)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    height = fig.bbox.height
    areas = []
    for x, y, row in points:
        px, py = ax.transData.transform((x, y))
        described = ", ".join(f"{k}={_show(v)}" for k, v in row["values"].items())
        title = html.escape(printable(f"{row['id']}: {described}"))
        areas.append(
            f'<area shape="circle" coords="{px:.0f},{height - py:.0f},6" href="{row["folder"]}/report.md" '
            f'title="{title}" alt="{title}">'
        )
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    alt = html.escape(printable(f"{x_obj['given']} vs {y_obj['given'] if y_obj else 'point'}"))
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{data}" usemap="#{name}">'
        f'<map name="{name}">{"".join(areas)}</map></figure>'
    )


def _show(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _table(results: dict) -> str:
    axes = [a["name"] for a in results["axes"]]
    objectives = results["objectives"]
    head = ["point", "Pareto", "status", *axes, *(o["given"] for o in objectives), "seconds", "error"]
    lines = ["<table>", "<tr>" + "".join(f"<th>{html.escape(printable(h))}</th>" for h in head) + "</tr>"]
    for row in results["points"]:
        link = f'<a href="{row["folder"]}/report.md">{row["id"]}</a>' if row["status"] == "ok" else row["id"]
        cells = [f'<td class="text">{link}</td>', f"<td>{'yes' if row['pareto'] else ''}</td>"]
        cells.append(f'<td class="text">{html.escape(printable(row["status"]))}</td>')
        cells += [f'<td class="text">{html.escape(printable(_show(row["values"].get(a))))}</td>' for a in axes]
        for o in objectives:
            v = row["metrics"].get(o["key"])
            cells.append(f"<td>{'' if v is None else html.escape(printable(_show(v)))}</td>")
        cells.append(f"<td>{'' if row.get('seconds') is None else row['seconds']}</td>")
        cells.append(f'<td class="text">{html.escape(printable(row.get("error") or ""))}</td>')
        lines.append(f'<tr class="{"pareto" if row["pareto"] else ""}">' + "".join(cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)
