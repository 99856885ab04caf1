"""Slow: a sweep through `--address` on a two-process Ray cluster on this machine (head + worker,
one CPU each), and a sweep killed with SIGKILL that resumes."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.compiler.explore.conftest import SPACE
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

RAY = Path(sys.executable).parent / "ray"
# no token: a cluster of this machine's processes only (the test does not touch ~/.ray)
ENV = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    """`ray start --block ...` in its own process group (so teardown ends exactly what it started)."""
    with open(log, "w") as f:
        return subprocess.Popen(
            [str(RAY), "start", "--block", "--num-cpus=1", "--disable-usage-stats", *args],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=ENV,
            start_new_session=True,
        )


def _wait_started(proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Ray runtime started" in log.read_text():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"ray start did not start:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group `ray start` leads, SIGKILL to it after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                proc.wait()
                return
            proc.poll()
            time.sleep(0.5)


@pytest.fixture
def ray_cluster():
    temp = Path(tempfile.mkdtemp(prefix="mpcray", dir="/tmp"))  # short: Ray's socket paths have a limit
    address = f"127.0.0.1:{_free_port()}"
    port = address.split(":")[1]
    started = []
    try:
        head = _start(
            [
                "--head",
                f"--port={port}",
                "--node-ip-address=127.0.0.1",
                "--include-dashboard=false",
                f"--temp-dir={temp}",
            ],
            temp / "head.log",
        )
        started.append(head)
        _wait_started(head, temp / "head.log")
        worker = _start([f"--address={address}", "--node-ip-address=127.0.0.1"], temp / "worker.log")
        started.append(worker)
        _wait_started(worker, temp / "worker.log")
        yield address
    finally:
        for proc in reversed(started):
            _stop(proc)
        shutil.rmtree(temp, ignore_errors=True)


def mpc(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "compiler.cli", *map(str, args)], env=ENV, capture_output=True, text=True, **kw
    )


def test_two_point_sweep_on_a_two_process_cluster(ray_cluster, tmp_path, digits_model, digits_npz):
    space = tmp_path / "space.toml"
    space.write_text(SPACE.replace("[8, 6, 4]", "[8, 4]"))
    out = tmp_path / "explore"
    proc = mpc(
        "explore",
        digits_model,
        "--data",
        digits_npz,
        "--space",
        space,
        "-o",
        out,
        "--address",
        ray_cluster,
        "--quiet",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert [r["status"] for r in results["points"]] == ["ok", "ok"]
    nodes = {json.loads(p.read_text())["ray_node"] for p in (out / "records").iterdir()}
    assert len(nodes) == 2  # one CPU per node, both points at once: one on each process


def test_a_sweep_killed_with_sigkill_resumes(tmp_path, digits_model, digits_npz):
    space = tmp_path / "space.toml"
    space.write_text(SPACE.replace("[8, 6, 4]", "[8, 7, 6, 5, 4, 3]"))
    out = tmp_path / "explore"
    args = ["explore", digits_model, "--data", digits_npz, "--space", space, "-o", out, "--workers", "1", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "compiler.cli", *map(str, args)], env=ENV, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    records = out / "records"
    while not (records.is_dir() and any(records.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    finished = {p.stem: (out / "points" / p.stem / "report.json").stat() for p in (out / "records").iterdir()}
    assert 1 <= len(finished) < 6
    done = mpc(*args, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert len(results["points"]) == 6 and all(r["status"] == "ok" for r in results["points"])
    for point_id, before in finished.items():  # not rebuilt
        after = (out / "points" / point_id / "report.json").stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    leftovers = [p.name for p in (out / "points").iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]
    assert leftovers == []
