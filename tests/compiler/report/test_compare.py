"""`mpc compare`: the table across builds, the plots, and an HTML page a browser can render."""

import base64
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from compiler.cli import main
from compiler.report.compare import (
    CompareError,
    compare,
    format_table,
    load_build,
    plot_auc_vs_compression,
    plot_energy_vs_accuracy,
    render_html,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fake_build(folder, target="fpga", acc=0.9, ratio=4.0, energy=7000.0, audit_auc=None, **hardware):
    """A build folder holding only what `mpc compare` reads."""
    folder.mkdir(parents=True)
    hw = {
        "cycles_per_inference": 564,
        "cycles_source": "estimate",
        "energy_pj": {"float32_baseline": 1.8e6, "compiled": energy},
        "energy_ratio": round(1.8e6 / energy, 2),
    }
    hw |= (
        {"lut": 1126, "ff": 915, "dsp": 22, "bram": 0} if target == "fpga" else {"cells": 20000, "area_nand2": 50000.0}
    )
    report = {
        "target": target,
        "float": {"test_accuracy": 0.95},
        "compiled": {"test_accuracy": acc},
        "model": {"compression_ratio": ratio, "weight_bits": int(87040 / ratio)},
        "hardware": hw | hardware,
    }
    (folder / "report.json").write_text(json.dumps(report))
    if audit_auc is not None:
        attack = {"auc": audit_auc, "balanced_accuracy": 0.55, "tpr_at_0_1pct_fpr": 0.004}
        weaker = {"auc": 0.5, "balanced_accuracy": 0.5, "tpr_at_0_1pct_fpr": 0.0}
        audit = {
            "targets": {
                "original": {"attacks": {"lira": dict(attack, auc=0.6), "threshold": weaker}},
                "compiled": {"attacks": {"lira": attack, "threshold": weaker}},
            }
        }
        (folder / "audit.json").write_text(json.dumps(audit))
    return folder


@pytest.fixture
def three_builds(tmp_path):
    return [
        _fake_build(tmp_path / "w8", audit_auc=0.58),
        _fake_build(tmp_path / "w6", acc=0.93, ratio=5.33, energy=6000.0, audit_auc=0.56),
        _fake_build(tmp_path / "w4", acc=0.85, ratio=8.0, energy=5000.0, cycles_source="simulation"),
    ]


def _rows(table: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()]


def test_table_has_one_row_per_build_with_its_numbers(three_builds):
    header, _, *body = _rows(compare(three_builds))
    assert header[:6] == ["build", "target", "float acc", "compiled acc", "compression", "weight bits"]
    assert {"LUT", "FF", "DSP", "BRAM", "cycles", "energy/inf (pJ)", "attack AUC", "TPR@0.1%FPR"} <= set(header)
    assert "cells" not in header  # no asic build
    assert len(body) == 3
    w8 = dict(zip(header, body[0]))
    assert w8["compiled acc"] == "0.9000" and w8["compression"] == "4.00x" and w8["LUT"] == "1,126"
    assert w8["cycles"] == "564 (est)" and w8["energy/inf (pJ)"] == "7,000.0"
    assert w8["attack"] == "lira" and w8["attack AUC"] == "0.580"  # the strongest attack, not the first
    w4 = dict(zip(header, body[2]))
    assert w4["cycles"] == "564 (sim)" and w4["attack AUC"] == "n/a"


def test_asic_builds_show_cells_and_area(tmp_path):
    rows = [load_build(_fake_build(tmp_path / "f")), load_build(_fake_build(tmp_path / "a", target="asic"))]
    header, _, fpga, asic = _rows(format_table(rows))
    assert {"LUT", "cells", "area (NAND2 eq)"} <= set(header) and "attack" not in header
    assert dict(zip(header, asic))["area (NAND2 eq)"] == "50,000" and dict(zip(header, asic))["LUT"] == "n/a"


def test_report_without_hardware_fields_shows_na(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps({"target": "fpga", "model": {}, "hardware": {}}))
    header, _, row = _rows(compare([folder]))
    assert dict(zip(header, row))["energy/inf (pJ)"] == "n/a"


def test_not_a_build_is_a_compare_error(tmp_path):
    with pytest.raises(CompareError, match="no report.json"):
        compare([tmp_path])


def test_plots_are_pngs_and_auc_plot_needs_audits(three_builds, tmp_path):
    rows = [load_build(b) for b in three_builds]
    assert plot_energy_vs_accuracy(rows).startswith(PNG_MAGIC)
    assert plot_auc_vs_compression(rows).startswith(PNG_MAGIC)
    assert plot_auc_vs_compression([load_build(_fake_build(tmp_path / "no-audit"))]) is None


def test_html_embeds_both_plots_and_the_table(three_builds):
    page = render_html([load_build(b) for b in three_builds])
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2 and all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    assert page.count("<tr>") == 4 and "1,126" in page and "http" not in page  # no server, nothing fetched


def test_cli_compare_prints_table_and_writes_html(three_builds, tmp_path, capsys):
    html = tmp_path / "compare.html"
    assert main(["compare", *map(str, three_builds), "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert all(str(b) in out for b in three_builds) and f"wrote {html}" in out
    assert html.read_text().startswith("<!DOCTYPE html>")


def test_cli_compare_error_is_one_line_exit_2(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpc compare: error:") and "no report.json" in err and err.count("\n") == 1


def test_compare_real_builds(fpga_build, asic_build, tiny_build):
    header, _, *body = _rows(compare([fpga_build, asic_build, tiny_build]))
    rows = {Path(r[0]).name: dict(zip(header, r)) for r in body}
    fpga = json.loads((fpga_build / "report.json").read_text())["hardware"]
    assert rows["tiny-fpga"]["LUT"] == f"{fpga['lut']:,}" and rows["tiny-fpga"]["DSP"] == str(fpga["dsp"])
    assert rows["tiny-asic"]["cells"] != "n/a" and rows["tiny-nosynth"]["LUT"] == "n/a"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_html_renders_in_headless_chromium(three_builds, tmp_path):
    from matplotlib.image import imread

    html, shot = tmp_path / "compare.html", tmp_path / "shot.png"
    compare(three_builds, html_path=html)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--window-size=1400,1200",
                f"--screenshot={shot}",
                html.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert shot.is_file(), "chromium wrote no screenshot"
    pixels = imread(shot)[..., :3]
    # the plots' blue points and the table's grey header: a blank or error page has neither
    blue = ((pixels[..., 2] > 0.6) & (pixels[..., 0] < 0.3)).sum()
    assert blue > 50 and pixels.std() > 0.05


def test_adaptive_audits_get_their_own_columns(tmp_path):
    plain, adaptive = (
        _fake_build(tmp_path / "plain", audit_auc=0.58),
        _fake_build(tmp_path / "adaptive", audit_auc=0.55),
    )
    audit = json.loads((adaptive / "audit.json").read_text())
    strong = {"auc": 0.71, "balanced_accuracy": 0.66, "tpr_at_1pct_fpr": 0.08, "tpr_at_0_1pct_fpr": 0.01}
    weak = {"auc": 0.6, "balanced_accuracy": 0.6, "tpr_at_1pct_fpr": 0.2, "tpr_at_0_1pct_fpr": 0.0}
    audit["targets"]["compiled"]["adaptive_attacks"] = {"lira": strong, "threshold": weak}
    (adaptive / "audit.json").write_text(json.dumps(audit))
    header, _, *body = _rows(compare([plain, adaptive]))
    assert {"adaptive AUC", "adaptive TPR@1%FPR"} <= set(header)
    row = dict(zip(header, body[1]))
    assert row["adaptive AUC"] == "0.710" and row["adaptive TPR@1%FPR"] == "0.080"  # the strongest by AUC
    assert dict(zip(header, body[0]))["adaptive AUC"] == "n/a"
    header, *_ = _rows(compare([plain]))
    assert "adaptive AUC" not in header
