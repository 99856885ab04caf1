"""SIGINT, SIGTERM and SIGHUP during `mpc compile`: exit 130 / 143 / 129 with one line, the
temporary folder removed, OUT as it was, and no child process left (issue 12).

A stand-in yosys on PATH (a shell script that starts a grandchild and waits) holds the build in
synthesis while the test signals mpc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.runner import run_in_group
from tests.compiler.test_outdir import snapshot
from tests.conftest import EXAMPLES, ROOT

FAKE_YOSYS = """#!/bin/sh
if [ "$1" = "-V" ]; then echo "Yosys 0.0 (stand-in)"; exit 0; fi
sleep 120 &
echo "$$ $!" > "$MPC_TEST_PIDS.tmp" && mv "$MPC_TEST_PIDS.tmp" "$MPC_TEST_PIDS"
wait
"""


def alive(pid: int) -> bool:
    """Whether pid runs (a zombie waiting for a reaper counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def start_compile(tmp_path: Path, out: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "yosys").write_text(FAKE_YOSYS)
    (bin_dir / "yosys").chmod(0o755)
    pids = tmp_path / "pids"
    env = dict(
        os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", MPC_TEST_PIDS=str(pids), OMP_NUM_THREADS="1"
    )
    env["PYTHONPATH"] = str(ROOT)

    def default_signals():  # a test runner may ignore SIGINT; mpc as a user starts it may not
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_DFL)

    proc = subprocess.Popen(
        [sys.executable, "-m", "compiler.cli", "compile", str(EXAMPLES / "digits_mlp.onnx"), "--data",
         str(EXAMPLES / "digits.npz"), "-o", str(out), "--quiet", *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=default_signals,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not pids.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the stand-in yosys never started"
        time.sleep(0.05)
    return proc, pids


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_signal_during_synthesis_cleans_up(tmp_path, signum, code):
    out = tmp_path / "b"
    (tmp_path / "mine.txt").write_text("a user's file beside OUT\n")
    proc, pids = start_compile(tmp_path, out)
    yosys_pids = [int(p) for p in pids.read_text().split()]
    assert all(alive(p) for p in yosys_pids)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".b.")]  # the build is under way
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert stderr == f"mpc compile: interrupted by {signal.Signals(signum).name}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "mine.txt", "pids"]  # no .b.*, no lock
    assert (tmp_path / "mine.txt").read_text() == "a user's file beside OUT\n"
    deadline = time.monotonic() + 10
    while any(alive(p) for p in yosys_pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in yosys_pids), "yosys (or a child of it) outlived mpc"


@pytest.mark.slow
def test_sigterm_leaves_the_previous_build_and_a_second_build_is_refused(tmp_path):
    from compiler import api

    out = tmp_path / "b"
    api.compile(EXAMPLES / "digits_mlp.onnx", EXAMPLES / "digits.npz", out, log=lambda *_: None, progress=False,
                synth_timeout=None)  # fmt: skip
    before = snapshot(out)
    proc, pids = start_compile(tmp_path, out, "--force")
    second = subprocess.run(
        [sys.executable, "-m", "compiler.cli", "compile", str(EXAMPLES / "digits_mlp.onnx"), "--data",
         str(EXAMPLES / "digits.npz"), "-o", str(out), "--force", "--no-synth", "--quiet"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert second.returncode == 2
    assert second.stderr == (
        f"mpc compile: error: {out}: another mpc compile is writing it now; wait for it to end or choose another -o\n"
    )
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and stderr == "mpc compile: interrupted by SIGTERM\n"
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "bin", "pids"]


def test_run_in_group_kills_the_whole_group_on_timeout_and_interrupt(tmp_path):
    script = tmp_path / "tree.sh"
    script.write_text(f"#!/bin/sh\nsleep 120 &\necho $! > {tmp_path}/child\nwait\n")
    script.chmod(0o755)
    with pytest.raises(subprocess.TimeoutExpired):
        run_in_group([str(script)], timeout=1.0)
    child = int((tmp_path / "child").read_text())
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
    done = run_in_group(["sh", "-c", "echo hi; exit 3"], stdout=subprocess.PIPE, text=True)
    assert (done.returncode, done.stdout) == (3, "hi\n")
