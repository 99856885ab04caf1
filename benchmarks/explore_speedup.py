"""`mpc explore` with 1 worker against N: the same sweep, its wall time, the speedup.

    python benchmarks/explore_speedup.py [--quick] [--workers 1,2] [--out DIR]

The sweep is the issue's example on the digits MLP: ADMM sparsity x bits (12 points: 4 x 3), each
point compiled with yosys synthesis, objectives accuracy, compression, energy and LUTs. --quick:
4 points (2 x 2), 2 + 1 ADMM epochs, no synthesis. Each run is a fresh `mpc explore` process into
a new folder (Ray's start included in the time); --workers 1 builds the points in that process,
more start a local Ray instance of that many CPUs. The builds must agree point for point (the
same ids, every file but the report, yosys's log and the copies of rtl/'s modules, the objectives),
which the script checks. `task s/point` is the mean time a point took inside its task: when it grows
with the workers, they contended for the cores (with each other, or with other jobs). The load average of the
machine before and after is printed: other jobs on the cores slow the parallel run more.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = ROOT / "examples" / "digits_mlp.onnx"
DATA = ROOT / "examples" / "digits.npz"

FULL = """passes = ["canonicalize", "admm", "lower"]
[admm]
sparsity = [0.5, 0.8, 0.9, 0.95]
bits = [8, 4, 3]
admm_epochs = 10
retrain_epochs = 10
[explore]
objectives = ["compiled.test_accuracy", "model.compression_ratio", "energy", "lut"]
"""
QUICK = """passes = ["canonicalize", "admm", "lower"]
[admm]
sparsity = [0.5, 0.9]
bits = [8, 4]
admm_epochs = 2
retrain_epochs = 1
[explore]
objectives = ["compiled.test_accuracy", "model.compression_ratio", "energy"]
"""


def run_sweep(space: Path, out: Path, workers: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "compiler.cli", "explore", str(MODEL), "--data", str(DATA), "--space", str(space)]
    cmd += ["-o", str(out), "--workers", str(workers), "--quiet"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"mpc explore --workers {workers} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def comparable(out: Path) -> dict:
    """What must not depend on the number of workers: each point's build, file by file (but the
    report, with its timings, and yosys's log), and its objective values."""
    results = json.loads((out / "results.json").read_text())
    keys = [o["key"] for o in results["objectives"]]
    found = {}
    for r in results["points"]:
        build = out / r["folder"]
        files = {
            str(f.relative_to(build)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(build.rglob("*"))
            if f.is_file() and f.name not in ("report.json", "report.md", "yosys.log") and not _library(f)
        }
        found[r["id"]] = (files, [r["metrics"].get(k) for k in keys])
    return found


def _library(f: Path) -> bool:
    """A copy of one of rtl/'s hand-written modules (the same in every build of a checkout)."""
    return f.suffix == ".v" and (ROOT / "rtl" / f.name).is_file()


def task_seconds(out: Path) -> float:
    """Mean seconds a point took inside its task: grows when the workers contend for the cores."""
    records = [json.loads(p.read_text()) for p in (out / "records").glob("*.json")]
    return sum(r["seconds"] for r in records) / len(records)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="4 points, 3 ADMM epochs, no synthesis")
    p.add_argument("--workers", default="1,2", help="worker counts to time, comma-separated (default: 1,2)")
    p.add_argument("--out", type=Path, help="keep the EXPLORE folders here (default: a temporary folder)")
    args = p.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    base = args.out or Path(tempfile.mkdtemp(prefix="explore_speedup."))
    base.mkdir(parents=True, exist_ok=True)
    space = base / "space.toml"
    space.write_text(QUICK if args.quick else FULL)
    load_before = os.getloadavg()
    print(f"explore speedup: digits MLP, {'quick' if args.quick else 'full'} sweep; {os.cpu_count()} CPUs")
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    times, inside, reference = {}, {}, None
    for workers in counts:
        out = base / f"workers{workers}"
        times[workers] = run_sweep(space, out, workers)
        inside[workers] = task_seconds(out)
        metrics = comparable(out)
        failed = [r["id"] for r in json.loads((out / "results.json").read_text())["points"] if r["status"] != "ok"]
        if failed:
            sys.exit(f"--workers {workers}: points failed: {', '.join(failed)} (see {out}/results.csv)")
        if reference is None:
            reference = metrics
        elif metrics != reference:
            sys.exit(f"--workers {workers}: the builds differ from --workers {counts[0]}'s")
        n = len(metrics)
    load_after = os.getloadavg()
    print(f"{'workers':>7}  {'points':>6}  {'wall s':>8}  {'wall s/point':>12}  {'task s/point':>12}  {'speedup':>7}")
    for workers, seconds in times.items():
        speedup, per_point = times[counts[0]] / seconds, seconds / n
        print(f"{workers:>7}  {n:>6}  {seconds:>8.1f}  {per_point:>12.2f}  {inside[workers]:>12.2f}  {speedup:>6.2f}x")
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"builds identical across worker counts (but reports, logs, rtl/ copies): yes; {base}")


if __name__ == "__main__":
    main()
