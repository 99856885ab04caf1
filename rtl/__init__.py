"""The hand-written Verilog library: where its files are and which files each module needs.

A Python package only so that a wheel carries the .v files (package data) and code can find
them; nothing here is imported at simulation time. Which library files a module instantiates is
read from the files themselves, so a new module needs no entry anywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

RTL_DIR = Path(__file__).resolve().parent


def _code(path: Path) -> str:
    """The Verilog text without comments."""
    text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _scan() -> dict[str, tuple[str, ...]]:
    """Each library file and the library files it instantiates directly."""
    codes = {f.name: _code(f) for f in sorted(RTL_DIR.glob("*.v"))}
    defined = {m: name for name, code in codes.items() for m in re.findall(r"^\s*module\s+(\w+)", code, flags=re.M)}
    uses = {}
    for name, code in codes.items():
        found = {
            file
            for module, file in defined.items()
            if file != name and re.search(rf"^\s*{module}\s*(#|\w+\s*\()", code, flags=re.M)
        }
        uses[name] = tuple(sorted(found))
    return uses


_DIRECT = _scan()


def _closure(name: str, seen: list[str]) -> None:
    """Dependencies of `name` before it, depth first (an order simulators accept)."""
    for dep in _DIRECT[name]:
        if dep not in seen:
            _closure(dep, seen)
    if name not in seen:
        seen.append(name)


def _dependencies(name: str) -> tuple[str, ...]:
    order: list[str] = []
    _closure(name, order)
    return tuple(order[:-1])


# Each library file and every library file it needs (directly or not), dependencies first.
DEPENDENCIES: dict[str, tuple[str, ...]] = {name: _dependencies(name) for name in _DIRECT}


def sources(*modules: str) -> list[str]:
    """File names (relative to RTL_DIR) that simulating or synthesizing `modules` needs: every
    dependency first (in the order met), then the modules themselves; each file once."""
    unknown = [m for m in modules if m not in DEPENDENCIES]
    if unknown:
        raise KeyError(f"not in rtl/: {', '.join(unknown)}")
    files: list[str] = []
    for f in [d for m in modules for d in DEPENDENCIES[m]] + list(modules):
        if f not in files:
            files.append(f)
    return files


def paths(*modules: str) -> list[Path]:
    """`sources(...)` as absolute paths."""
    return [RTL_DIR / f for f in sources(*modules)]
