"""The wheel carries everything `mpc compile` and `mpc simulate` need (compiler/, kernels/, sim/'s
testbenches, rtl/'s Verilog): build it, install it into a fresh venv that sees the dependencies
but not this checkout, and run both commands from a folder outside the repository."""

import json
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.slow


def _run(cmd, cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def _copy_sources(dest: Path) -> None:
    """The checkout's files as git sees them (tracked or new, not ignored): the wheel is built
    from what a commit would hold, never from a stale build/ folder, and the checkout gets no
    build/ or egg-info of its own."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an sdist, say)
        ignore = shutil.ignore_patterns(".git", ".venv", "build", "sim_build", "__pycache__", "*.egg-info")
        shutil.copytree(ROOT, dest, ignore=ignore)
        return
    for name in filter(None, listed.split("\0")):
        src = ROOT / name
        if src.is_file():  # a tracked file deleted in the working tree is still listed
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def test_wheel_installs_and_compiles_and_simulates(tmp_path):
    src, wheels, env_dir, work = (tmp_path / d for d in ("src", "wheels", "venv", "work"))
    work.mkdir()
    _copy_sources(src)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, "."], src, env, 300)
    (wheel,) = wheels.glob("mpc-*.whl")

    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    _run([*pip, "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], work, env, 300)
    # The dependencies (numpy, torch, cocotb, ...) come from this interpreter's site-packages,
    # appended after the new venv's own: plain path lines, so the .pth files there (the editable
    # install's finder among them) are not run and this checkout stays off the path. Written
    # after the install so pip does not see (and try to replace) the editable mpc.
    purelib_of = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(_run([python, "-c", purelib_of], work, env, 60).stdout.strip())
    deps = [p for p in site.getsitepackages() if Path(p).is_dir() and Path(p).resolve() != ROOT]
    (purelib / "_mpc_test_deps.pth").write_text("".join(f"{p}\n" for p in deps))

    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    probe = (
        "import json, sys, compiler, kernels, rtl, sim.runner; "
        "print(json.dumps({'compiler': compiler.__file__, 'kernels': kernels.__file__, 'rtl': str(rtl.RTL_DIR), "
        "'sim': sim.runner.__file__, 'path': sys.path}))"
    )
    where = json.loads(_run([python, "-c", probe], work, env, 120).stdout)
    installed = env_dir.resolve()
    for name in ("compiler", "kernels", "rtl", "sim"):
        assert Path(where[name]).resolve().is_relative_to(installed), (name, where[name])
    assert all((work / p).resolve() != ROOT for p in where["path"]), where["path"]  # "" is the cwd
    assert sorted(p.name for p in Path(where["rtl"]).glob("*.v")) == sorted(p.name for p in (ROOT / "rtl").glob("*.v"))

    mpc = env_dir / "bin" / "mpc"
    out = work / "out"
    _run([mpc, "compile", EXAMPLES / "digits_mlp.onnx", "--data", EXAMPLES / "digits.npz", "-o", out], work, env, 900)
    design = json.loads((out / "rtl" / "design.json").read_text())
    assert list((out / "rtl").glob("*.v"))
    assert all((out / "rtl" / s).is_file() for s in design["sources"]), design["sources"]
    synthesis = json.loads((out / "report.json").read_text())["hardware"]["synthesis"]
    assert synthesis["status"] == ("ok" if shutil.which("yosys") else "unavailable"), synthesis

    _run([mpc, "simulate", out, "--samples", "8"], work, env, 900)
    sim = json.loads((out / "sim.json").read_text())
    assert sim["samples"] == 8 and sim["mismatches"] == 0, sim
