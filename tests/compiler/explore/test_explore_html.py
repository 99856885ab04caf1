"""compiler/explore/html.py: index.html plots the objectives, links every built point to its
report, marks the Pareto set, and shows text from the space escaped (it is data, not markup)."""

from compiler.explore.html import render_index

OBJECTIVES = [
    {"given": "accuracy", "key": "accuracy", "direction": "max"},
    {"given": "compression", "key": "compression", "direction": "max"},
]


def _row(pid, acc, comp, pareto, status="ok", error=None, value=8):
    return {
        "id": pid,
        "folder": f"points/{pid}",
        "status": status,
        "pareto": pareto,
        "values": {"lower.weight_bits": value},
        "metrics": {"accuracy": acc, "compression": comp} if status == "ok" else {},
        "seconds": 1.5,
        "error": error,
    }


def _results(rows):
    return {
        "points": rows,
        "objectives": OBJECTIVES,
        "pareto": [r["id"] for r in rows if r["pareto"]],
        "axes": [{"name": "lower.weight_bits"}],
        "space": "space.toml",
    }


def test_built_points_are_linked_plotted_and_the_pareto_set_marked():
    rows = [_row("aaaaaa11", 0.95, 4.0, True), _row("bbbbbb22", 0.90, 3.0, False), _row("cccccc33", 0.97, 2.0, True)]
    page = render_index(_results(rows))
    assert "3 points, 2 in the Pareto set" in page
    assert page.count('<tr class="pareto">') == 2
    assert page.count("data:image/png;base64,") == 1  # two objectives: one plot
    for pid in ("aaaaaa11", "bbbbbb22", "cccccc33"):  # a table link and an image-map area each
        assert page.count(f'href="points/{pid}/report.md"') == 2


def test_a_failed_point_has_no_link_and_its_error_is_escaped():
    rows = [_row("aaaaaa11", 0.95, 4.0, True), _row("dddddd44", None, None, False, "failed", "<script>x</script>")]
    page = render_index(_results(rows))
    assert 'href="points/dddddd44/report.md"' not in page
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page


def test_axis_values_from_the_space_are_escaped():
    page = render_index(_results([_row("aaaaaa11", 0.9, 2.0, True, value="<b>8</b>")]))
    assert "<b>8</b>" not in page and "&lt;b&gt;8&lt;/b&gt;" in page
