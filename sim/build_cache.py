"""A simulator build reused across runs: the compiled model of a design (Icarus' sim.vvp,
Verilator's executable) is kept in its build folder with the key it was built from, and a run
whose key matches skips the build.

The key is a hash of everything the compiled model depends on: the simulator and its version,
cocotb's version and library folder (the executable links them), the top module, the parameters,
the build arguments, and every source file's name and contents. ROM images are not in it: every
ROM is read by `$readmemh` when the simulation starts (rtl/rom_port.v), from the run folder,
so the same model simulates other ROM contents (the bit-flip audit's flipped copies).

A build folder holding the key file is this module's own: a stale one is emptied before the
rebuild. A lock file in the folder serializes builds; runs hold it shared, so that no process
rebuilds a model another one is running.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

KEY_FILE = "mpc_build_key.json"
LOCK_FILE = ".mpc_build.lock"
# What a Verilator run needs of its build folder is the executable: the generated C++, objects
# and precompiled headers (about 150 MB for a LeNet-5) are removed once it links.
VERILATOR_INTERMEDIATES = ("*.gch", "*.o", "*.a", "*.cpp", "*.h", "*.d", "*.mk", "*.dat", "*.verilator_deplist*")


@functools.cache
def simulator_version(simulator: str) -> str:
    """The simulator's version line (part of the key: a new simulator rebuilds)."""
    argv = ["verilator", "--version"] if simulator == "verilator" else ["iverilog", "-V"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stdout or done.stderr).splitlines()
    return lines[0].strip() if lines else "unknown"


def build_key(sources, toplevel: str, simulator: str, parameters: dict, build_args: list[str], extra: dict) -> str:
    """sha256 of what the compiled model depends on (the module docstring); `extra`: the
    runner's own settings (timescale, make overrides)."""
    import cocotb
    import cocotb_tools.config

    digest = hashlib.sha256()
    settings = {
        "simulator": simulator,
        "version": simulator_version(simulator),
        "cocotb": cocotb.__version__,
        "cocotb_libs": str(cocotb_tools.config.libs_dir),
        "toplevel": toplevel,
        "parameters": sorted((str(k), str(v)) for k, v in parameters.items()),
        "build_args": list(build_args),
    } | extra
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for source in sources:
        source = Path(source)
        digest.update(f"\0{source.name}\0{source.stat().st_size}\0".encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def model_file(build_dir: Path, simulator: str, toplevel: str) -> Path:
    """The file a run executes: Icarus' sim.vvp, Verilator's executable named after the top."""
    return build_dir / ("sim.vvp" if simulator == "icarus" else toplevel)


def read_key(build_dir: Path) -> dict | None:
    try:
        return json.loads((build_dir / KEY_FILE).read_text())
    except (OSError, ValueError):
        return None


def is_current(build_dir: Path, key: str, simulator: str, toplevel: str) -> bool:
    """Whether build_dir holds a finished build of `key`."""
    recorded = read_key(build_dir)
    return bool(recorded and recorded.get("key") == key) and model_file(build_dir, simulator, toplevel).is_file()


def start_build(build_dir: Path) -> None:
    """Before a (re)build: a folder this module keyed before is emptied (its lock file stays:
    other processes may wait on it); the key file is written without a key, which marks the
    folder as the cache's own even if the build fails."""
    if (build_dir / KEY_FILE).exists():
        for entry in build_dir.iterdir():
            if entry.name == LOCK_FILE:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    (build_dir / KEY_FILE).write_text(json.dumps({"key": None}))


def finish_build(build_dir: Path, key: str, simulator: str, seconds: float) -> None:
    """After a successful build: the intermediates a run does not need go, the key is recorded."""
    if simulator == "verilator":
        for pattern in VERILATOR_INTERMEDIATES:
            for path in build_dir.glob(pattern):
                if path.is_file():
                    path.unlink()
    (build_dir / KEY_FILE).write_text(json.dumps({"key": key, "build_seconds": round(seconds, 2)}))


@contextlib.contextmanager
def locked(build_dir: Path, exclusive: bool):
    """flock on the build folder's lock file, exclusive (building) or shared (running)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
