"""`mpc explore` end to end on tiny sweeps: results, Pareto set, resume after a kill, failed
points, the folder's rules, the budgeted search, the same builds with Ray workers."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from compiler import api
from compiler.explore import run as explore_run
from compiler.explore.pareto import pareto_mask
from tests.compiler.explore.conftest import QUIET, SPACE


def explore(model, data, space, out, **options):
    return explore_run.explore(model, data, space, out, **{"workers": 1, **QUIET, **options})


def count_compiles(monkeypatch) -> list[str]:
    """The builds api.compile makes from now on (their folders' names: the point ids)."""
    built, compile_ = [], api.compile

    def counting(model, data, out, **kw):
        built.append(Path(out).name)
        return compile_(model, data, out, **kw)

    monkeypatch.setattr(api, "compile", counting)
    return built


def test_sweep_writes_results_pareto_and_page(tmp_path, digits_model, digits_npz, space_file):
    out = tmp_path / "explore"
    results = explore(digits_model, digits_npz, space_file(), out)
    rows = results["points"]
    assert [r["values"] for r in rows] == [{"lower.weight_bits": b} for b in (8, 6, 4)]
    assert all(r["status"] == "ok" for r in rows)
    table = [[r["metrics"]["compiled.test_accuracy"], r["metrics"]["model.compression_ratio"]] for r in rows]
    assert [r["pareto"] for r in rows] == pareto_mask(table, [1, 1])
    assert results["pareto"] == [r["id"] for r in rows if r["pareto"]]
    assert rows[0]["metrics"]["model.compression_ratio"] < rows[2]["metrics"]["model.compression_ratio"]
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("id,status,pareto,lower.weight_bits,compiled.test_accuracy,model.compression_ratio,")
    assert len(csv_lines) == 4
    page = (out / "index.html").read_text()
    for r in rows:
        assert f'href="points/{r["id"]}/report.md"' in page
        assert (out / "points" / r["id"] / ".mpc-build.json").is_file()
        assert json.loads((out / "records" / f"{r['id']}.json").read_text())["status"] == "ok"
        # each point's recipe is a RECIPE.toml `mpc compile` reads
        assert tomllib.loads((out / "recipes" / f"{r['id']}.toml").read_text()) == r["recipe"]
    assert page.count("data:image/png;base64,") == 1  # two objectives: one plot
    assert (out / ".mpc-explore.json").is_file() and (out / "space.toml").read_text() == SPACE


def test_killed_sweep_resumes_without_rebuilding_finished_points(
    tmp_path, digits_model, digits_npz, space_file, monkeypatch
):
    """Ctrl-C (or SIGTERM, which mpc turns into the same) during the second point; then resume."""
    out, space = tmp_path / "explore", space_file()
    started, run_point = [], explore_run.run_point

    def interrupted_at_the_second(job):
        if started:
            raise KeyboardInterrupt
        started.append(job["id"])
        return run_point(job)

    monkeypatch.setattr(explore_run, "run_point", interrupted_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        explore(digits_model, digits_npz, space, out)
    [finished] = started
    assert [p.name for p in (out / "records").iterdir()] == [f"{finished}.json"]
    before = (out / "points" / finished / "report.json").stat()

    monkeypatch.setattr(explore_run, "run_point", run_point)
    built = count_compiles(monkeypatch)
    results = explore(digits_model, digits_npz, space, out)
    assert finished not in built and len(built) == 2
    assert all(r["status"] == "ok" for r in results["points"]) and len(results["points"]) == 3
    after = (out / "points" / finished / "report.json").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    built.clear()
    explore(digits_model, digits_npz, space, out)  # everything done: nothing built
    assert built == []


def test_a_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path, digits_model, digits_npz, space_file, monkeypatch):
    out, space = tmp_path / "explore", space_file()
    compile_ = api.compile

    def failing_at_six_bits(model, data, out, recipe=None, **kw):
        if "weight_bits = 6" in Path(recipe).read_text():
            raise api.MpcError("the six-bit build broke")
        return compile_(model, data, out, recipe=recipe, **kw)

    monkeypatch.setattr(api, "compile", failing_at_six_bits)
    results = explore(digits_model, digits_npz, space, out)
    status = {r["values"]["lower.weight_bits"]: (r["status"], r["error"], r["pareto"]) for r in results["points"]}
    assert status[6] == ("failed", "the six-bit build broke", False)
    assert status[8][0] == status[4][0] == "ok"
    assert "the six-bit build broke" in (out / "index.html").read_text()

    monkeypatch.setattr(api, "compile", compile_)
    built = count_compiles(monkeypatch)
    results = explore(digits_model, digits_npz, space, out)  # the failed point is tried again, alone
    assert len(built) == 1 and all(r["status"] == "ok" for r in results["points"])


def test_the_folder_follows_outdir_rules(tmp_path, digits_model, digits_npz, space_file):
    one_point = space_file(SPACE.replace("[8, 6, 4]", "[8]"))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(api.MpcError, match="not an mpc explore folder"):
        explore(digits_model, digits_npz, one_point, foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]

    out = tmp_path / "explore"
    explore(digits_model, digits_npz, one_point, out)
    d = np.load(digits_npz)
    other = tmp_path / "other.npz"
    np.savez(other, **{k: d[k][: len(d[k]) // 2] for k in d.files})
    with pytest.raises(api.MpcError, match="built from another data"):
        explore(digits_model, other, one_point, out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(api.MpcError, match=r"holds files mpc did not write \(notes.txt\)"):
        explore(digits_model, digits_npz, one_point, out)
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(api.MpcError, match="holds the space"):
        explore(digits_model, digits_npz, one_point, tmp_path)


def test_cli_errors_are_one_line_before_any_work(tmp_path, digits_model, digits_npz, space_file):
    bad = space_file(SPACE.replace("[8, 6, 4]", "[8, 9]"))
    out = tmp_path / "explore"
    proc = subprocess.run(
        [sys.executable, "-m", "compiler.cli", "explore", str(digits_model), "--data", str(digits_npz)]
        + ["--space", str(bad), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line == f"mpc explore: error: {bad}: [lower] weight_bits: must be an integer in 2..8, got 9"
    assert not out.exists()
    from compiler.cli import main

    assert (
        main(
            [
                "explore",
                str(digits_model),
                "--data",
                str(digits_npz),
                "--space",
                str(bad),
                "-o",
                str(out),
                "--workers",
                "0",
            ]
        )
        == 2
    )


def test_budgeted_search_builds_at_most_budget_points(tmp_path, digits_model, digits_npz, space_file, monkeypatch):
    out, space = tmp_path / "explore", space_file(SPACE.replace("[8, 6, 4]", "[8, 7, 6, 5, 4]"))
    built = count_compiles(monkeypatch)
    results = explore(digits_model, digits_npz, space, out, budget=2)
    assert len(built) == 2 and len(results["points"]) == 2
    results = explore(digits_model, digits_npz, space, out, budget=3)  # the two built count
    assert len(built) == 3 and len(results["points"]) == 3
    assert len({r["id"] for r in results["points"]}) == 3


def _build_files(folder: Path) -> dict[str, bytes]:
    """Every file of a build but the report (it holds timings)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in ("report.json", "report.md")
    }


def test_two_ray_workers_build_the_same_points_bit_for_bit(tmp_path, digits_model, digits_npz, space_file):
    space = space_file(SPACE.replace("[8, 6, 4]", "[8, 4]"))
    serial = explore(digits_model, digits_npz, space, tmp_path / "serial")
    ray = explore(digits_model, digits_npz, space, tmp_path / "ray", workers=2)
    assert [r["id"] for r in serial["points"]] == [r["id"] for r in ray["points"]]
    for r in serial["points"]:
        a, b = tmp_path / "serial" / r["folder"], tmp_path / "ray" / r["folder"]
        assert _build_files(a) == _build_files(b)
    strip = lambda rows: [{k: v for k, v in r["metrics"].items() if "seconds" not in k} for r in rows]
    assert strip(serial["points"]) == strip(ray["points"])
