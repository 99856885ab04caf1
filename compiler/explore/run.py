"""`mpc explore`: every point of a space compiled (simulated, audited) as a Ray task.

EXPLORE/ holds:

    .mpc-explore.json   what this folder is (mpc's marker) and the model and data it was built from
    space.toml          the space of the latest run, as given
    recipes/<id>.toml   each point's recipe: `mpc compile MODEL --recipe recipes/<id>.toml` rebuilds it
    points/<id>/        each point's build, written by api.compile (atomic, with its .mpc-build.json)
    records/<id>.json   each point's outcome: status, error, metrics, seconds
    results.csv/.json   one row per point of the space that has a record; the Pareto set
    index.html          scatter plots of the objectives (Pareto points marked), links to each report

A point is done when its build (points/<id>/ with its manifest) and its record with status "ok"
exist; a new run skips it, so a killed sweep resumes where it was. A failed point is recorded with
its error and tried again by the next run. EXPLORE/ follows compiler/outdir.py's rules: a non-empty
folder without the marker, or holding files mpc does not write there, is refused; so is one whose
points were built from another model or data.

The driver (this process) writes recipes/, records/ and the results; points/<id>/ is written by
the task, wherever it runs: on a cluster, EXPLORE, the model and the data must be at the same path
on every node (a shared file system; docs/explore.md).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from compiler import api
from compiler.errors import MpcError
from compiler.explore.metrics import point_metrics, value_of
from compiler.explore.pareto import pareto_mask
from compiler.explore.search import GridProposer, OptunaProposer
from compiler.explore.space import Point, Space, dump_toml, load_space
from compiler.outdir import OutDirError, build_lock, check_place, read_manifest
from compiler.parallel import TaskFailed, task_pool
from compiler.recipe import one_line

MARKER = ".mpc-explore.json"
MARKER_FORMAT = 1
RESULTS_FORMAT = 1
OWN_FILES = (MARKER, "space.toml", "results.csv", "results.json", "index.html")
OWN_FOLDERS = ("points", "recipes", "records")
# what an interrupted run may leave: a write's temporary file, a build's staging folder or lock
TEMPORARY = re.compile(r"\.(?:[A-Za-z0-9_.-]+\.tmp|[0-9a-f]{12}\.(?:old\.)?[0-9a-f]{8}|[0-9a-f]{12}\.lock)")

_SHADOW_CACHE: dict = {}  # per worker process: every point of a sweep audits with the same shadows


class ExploreError(MpcError, ValueError):
    """The exploration cannot run as asked; the message is one line that says why."""


def explore(
    model: str | Path,
    data: str | Path,
    space: str | Path,
    out: str | Path,
    workers: int | None = None,
    address: str | None = None,
    budget: int | None = None,
    log=print,
    progress: bool = True,
) -> dict:
    """Build every point of SPACE (or, with `budget`, up to that many chosen by a search) into OUT;
    return the results (OUT/results.json). `workers`: tasks at once (default: this machine's CPUs,
    or with `address` the cluster's); 1 without an address runs the points in this process."""
    model, data, space_path, out = Path(model).absolute(), Path(data).absolute(), Path(space), Path(out)
    if workers is not None and workers < 1:
        raise ExploreError(f"--workers must be at least 1 (got {workers})")
    if budget is not None and budget < 1:
        raise ExploreError(f"--budget must be at least 1 (got {budget})")
    sp = load_space(space_path)  # SpaceError (an MpcError) says what is wrong
    check = api.recipe_checker(model, data)  # the model and the data, read once

    def check_point(recipe: dict, target: str) -> None:
        try:
            check(recipe, target, where=str(space_path))
        except MpcError as e:
            message = str(e)
            if message.startswith("unknown target"):
                message = f"[explore] target: {message}"
            raise ExploreError(message if message.startswith(str(space_path)) else f"{space_path}: {message}") from None

    sp.check(check_point)  # every value of every axis, before any work
    inputs = [("input model", model), ("data file", data), ("space", space_path)]
    identity = {"model": _identity(model), "data": _identity(data)}
    with _lock(out):
        _prepare(out, inputs, identity)
        (out / "space.toml").write_text(space_path.read_text())
        return _sweep(sp, model, data, out, workers, address, budget, log, progress)


# ---- the folder -------------------------------------------------------------------------------
def _identity(path: Path) -> dict:
    """Path and sha256 of the model (a file, or a checkpoint folder's graph and params) or data."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else [path / "graph.json", path / "params.npz"]
    for f in files:
        with open(f, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    return {"path": str(path), "sha256": digest.hexdigest()}


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """OUT's lock (outdir.build_lock): a second explore into OUT fails at once."""
    lock = build_lock(out)
    try:
        lock.__enter__()
    except OutDirError as e:
        raise ExploreError(str(e).replace("another mpc compile", "another mpc explore")) from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def _prepare(out: Path, inputs: list, identity: dict) -> None:
    """Refuse what outdir.py refuses, a foreign folder, one built from another model or data;
    create the folder (or resume it) and clear what an interrupted run left."""
    check_place(out, inputs)
    entries = sorted(os.listdir(out)) if out.is_dir() else []
    if entries:
        marker = _read_marker(out)
        if marker is None:
            why = "an mpc build" if read_manifest(out) is not None else "not an mpc explore folder"
            raise ExploreError(f"{out}: {why} (no {MARKER}); not writing into it; choose another -o")
        for what in ("model", "data"):
            if marker.get(what, {}).get("sha256") != identity[what]["sha256"]:
                raise ExploreError(
                    f"{out}: its points were built from another {what} ({marker.get(what, {}).get('path')}); "
                    "choose another -o"
                )
        foreign = [
            e
            for e in entries
            if not (
                (e in OWN_FILES and (out / e).is_file() and not (out / e).is_symlink())
                or (e in OWN_FOLDERS and (out / e).is_dir() and not (out / e).is_symlink())
                or TEMPORARY.fullmatch(e)
            )
        ]
        if foreign:
            shown = ", ".join(foreign[:3]) + (f", ... ({len(foreign)} entries)" if len(foreign) > 3 else "")
            raise ExploreError(
                f"{out}: holds files mpc did not write ({shown}); not writing into it; "
                "choose another -o or remove them yourself"
            )
    out.mkdir(parents=True, exist_ok=True)
    for folder in OWN_FOLDERS:
        (out / folder).mkdir(exist_ok=True)
    for place in (out, out / "points", out / "records", out / "recipes"):
        for name in os.listdir(place):  # an interrupted run's leftovers (mpc's names only)
            if TEMPORARY.fullmatch(name) and not name.endswith(".lock"):
                path = place / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
    if not (out / MARKER).is_file():
        from compiler.outdir import _mpc_version

        marker = {"format": MARKER_FORMAT, "kind": "mpc explore", "mpc_version": _mpc_version(), **identity}
        _write_atomic(out / MARKER, json.dumps(marker, indent=1) + "\n")


def _read_marker(out: Path) -> dict | None:
    try:
        doc = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == "mpc explore" else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)


def _read_record(out: Path, point_id: str) -> dict | None:
    try:
        record = json.loads((out / "records" / f"{point_id}.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("id") == point_id else None


def _done(out: Path, record: dict | None) -> bool:
    if record is None or record.get("status") != "ok":
        return False
    build = out / "points" / record["id"]
    return (build / ".mpc-build.json").is_file() and (build / "report.json").is_file()


# ---- one point: the Ray task ------------------------------------------------------------------
def run_point(job: dict) -> dict:
    """Compile the point (then simulate and audit it, as its run settings say) into job["out"];
    return its record. Never raises for a failed build: the record says what went wrong."""
    from compiler.audit.shadows import single_threaded

    start = time.perf_counter()
    record: dict[str, Any] = {"id": job["id"], "status": "ok", "error": None, "node": socket.gethostname()}
    record["ray_node"] = _ray_node()
    run, out = job["run"], Path(job["out"])
    quiet: dict[str, Any] = {"log": lambda *_: None}
    try:
        for what in ("model", "data", "recipe"):
            if not os.path.exists(job[what]):
                raise MpcError(
                    f"{job[what]}: not visible on {record['node']}; EXPLORE/, the model and the data must be "
                    "at the same path on every node of the cluster (docs/explore.md)"
                )
        with single_threaded():
            api.compile(
                job["model"],
                job["data"],
                out,
                target=job["target"],
                recipe=job["recipe"],
                seed=job["seed"],
                force=os.path.lexists(out),  # a build whose record never came: replaced (api checks it is mpc's)
                progress=False,
                synth_timeout=run["synth_timeout"] if run["synth"] else None,
                **quiet,
            )
            if run["simulate"]:
                sim = api.simulate(out, samples=run["simulate"], **quiet)
                if sim["mismatches"]:
                    raise MpcError(f"simulation: {sim['mismatches']} mismatches against the golden executor")
            audit = None
            if run["audit"]:
                from compiler.exec.train import TrainConfig

                options = dict(run["audit"], shadow_training=TrainConfig(**run["audit"]["shadow_training"]))
                audit = api.audit(out, seed=job["seed"], progress=False, shadow_cache=_SHADOW_CACHE, **options, **quiet)
        record["metrics"] = point_metrics(json.loads((out / "report.json").read_text()), audit)
    except MpcError as e:
        record |= {"status": "failed", "error": one_line(str(e))}
    except Exception as e:  # a bug: recorded with its traceback, the sweep goes on
        record |= {"status": "failed", "error": one_line(f"{type(e).__name__}: {e}")}
        record["traceback"] = traceback.format_exc()
    record["seconds"] = round(time.perf_counter() - start, 2)
    return record


def _ray_node() -> str | None:
    """The Ray node running this task (None in process)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()


# ---- the sweep --------------------------------------------------------------------------------
def _sweep(
    sp: Space,
    model: Path,
    data: Path,
    out: Path,
    workers: int | None,
    address: str | None,
    budget: int | None,
    log,
    progress: bool,
) -> dict:
    from tqdm.auto import tqdm

    points = list(sp.points())
    records = {p.id: r for p in points if (r := _read_record(out, p.id)) is not None}
    done = {pid for pid, r in records.items() if _done(out, r)}
    proposer: GridProposer | OptunaProposer
    if budget is None or budget >= len(points):
        proposer = GridProposer(points, done)
        to_build = proposer.total - len(done)
    else:
        proposer = OptunaProposer(sp, budget, {pid: _values(sp, records[pid]) for pid in done}, seed=sp.seed)
        to_build = max(0, proposer.total - len(proposer.known))
    if workers is None and address is None:
        workers = max(1, min(os.cpu_count() or 1, to_build))
    how = f"on the Ray cluster at {address}" if address else (f"{workers} workers" if workers != 1 else "in process")
    search = f", a search of {proposer.total}" if isinstance(proposer, OptunaProposer) else ""
    log(f"explore: {len(points)} points in the space{search}; {len(done)} built before, {to_build} to build ({how})")
    by_id = {p.id: p for p in points}
    if to_build:
        bar = tqdm(total=proposer.total, initial=proposer.total - to_build, desc="explore", disable=not progress)
        with bar, task_pool(workers, address) as pool:
            for point_id, record in _run(proposer, pool, model, data, out):
                records[point_id] = record
                _write_atomic(out / "records" / f"{point_id}.json", json.dumps(record, indent=1) + "\n")
                proposer.tell(by_id[point_id], _values(sp, record))
                bar.update()
                if record["status"] != "ok":
                    bar.write(f"point {point_id} failed: {record['error']}")
                _write_results(sp, points, records, out, model, data, html=False)
    results = _write_results(sp, points, records, out, model, data, html=True)
    ok = sum(r["status"] == "ok" for r in results["points"])
    log(
        f"explore: {ok} points built, {len(results['points']) - ok} failed; Pareto set {len(results['pareto'])} "
        f"points; wrote {out}/results.csv, results.json, index.html"
    )
    return results


def _run(proposer, pool, model: Path, data: Path, out: Path) -> Iterator[tuple[str, dict]]:
    """Keep the pool full of points the proposer names; yield (id, record) as each one ends."""
    while True:
        while len(pool) < pool.capacity and (point := proposer.next()) is not None:
            recipe = out / "recipes" / f"{point.id}.toml"
            _write_atomic(recipe, dump_toml(point.recipe))
            job = {
                "id": point.id,
                "model": str(model),
                "data": str(data),
                "recipe": str(recipe.absolute()),
                "out": str((out / "points" / point.id).absolute()),
                "target": point.target,
                "seed": point.seed,
                "run": point.run.as_dict(),
            }
            pool.submit(point.id, run_point, job)
        if not len(pool):
            return
        try:
            point_id, record = pool.wait()
        except TaskFailed as e:  # the worker died (killed, out of memory): the point failed
            point_id = str(e.key)
            record = {"id": point_id, "status": "failed", "error": one_line(f"the task died: {e.cause}")}
        yield point_id, record


def _values(sp: Space, record: dict) -> list[float] | None:
    """The record's objective values, or None when it failed or lacks one."""
    if record.get("status") != "ok":
        return None
    values = [value_of(record.get("metrics") or {}, o) for o in sp.objectives]
    return None if any(v is None for v in values) else values  # type: ignore[return-value]


# ---- results ----------------------------------------------------------------------------------
def results_of(sp: Space, points: list[Point], records: dict[str, dict], model: Path, data: Path) -> dict:
    rows: list[dict[str, Any]] = []
    for point in points:
        record = records.get(point.id)
        if record is None:
            continue
        rows.append(
            {
                "id": point.id,
                "status": record.get("status"),
                "error": record.get("error"),
                "values": point.values,
                "target": point.target,
                "seed": point.seed,
                "recipe": point.recipe,
                "folder": f"points/{point.id}",
                "seconds": record.get("seconds"),
                "metrics": record.get("metrics") or {},
            }
        )
    table = [[value_of(r["metrics"], o) if r["status"] == "ok" else None for o in sp.objectives] for r in rows]
    mask = pareto_mask(table, [o.sign for o in sp.objectives])
    for row, in_set in zip(rows, mask):
        row["pareto"] = in_set
    return {
        "format": RESULTS_FORMAT,
        "model": str(model),
        "data": str(data),
        "space": str(sp.path),
        "objectives": [{"key": o.key, "direction": o.direction, "given": o.given} for o in sp.objectives],
        "axes": [{"name": a.name, "values": list(a.values)} for a in sp.axes],
        "run": sp.run.as_dict(),
        "points": rows,
        "pareto": [r["id"] for r in rows if r["pareto"]],
    }


def _write_results(sp, points, records, out: Path, model, data, html: bool) -> dict:
    results = results_of(sp, points, records, model, data)
    _write_atomic(out / "results.json", json.dumps(results, indent=1) + "\n")
    _write_atomic(out / "results.csv", results_csv(results))
    if html:
        from compiler.explore.html import render_index

        _write_atomic(out / "index.html", render_index(results))
    return results


def results_csv(results: dict) -> str:
    """One row per point: id, status, pareto, the axes, the objectives, every other metric."""
    rows = results["points"]
    axes = [a["name"] for a in results["axes"]]
    objectives = [o["key"] for o in results["objectives"]]
    others = sorted({k for r in rows for k in r["metrics"]} - set(objectives))
    header = ["id", "status", "pareto", *axes, *objectives, *others, "seconds", "folder", "error", "recipe"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        cells = [r["id"], r["status"], r["pareto"], *(r["values"].get(a) for a in axes)]
        cells += [r["metrics"].get(k) for k in [*objectives, *others]]
        cells += [r["seconds"], r["folder"], r["error"], json.dumps(r["recipe"], sort_keys=True)]
        writer.writerow([_cell(c) for c in cells])
    return buf.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)
