"""The hand-written Verilog library: where its files are and which files each module needs.

A Python package only so that a wheel carries the .v files (package data) and code can find
them; nothing here is imported at simulation time.
"""
from __future__ import annotations

from pathlib import Path

RTL_DIR = Path(__file__).resolve().parent

# Each top-level module's file and the library files it instantiates (directly or not), in an
# order a simulator accepts. Adding a module that others instantiate: list it here.
DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "requantize.v": (),
    "engine_output.v": ("requantize.v",),
    "dense_mac.v": ("requantize.v", "engine_output.v"),
    "sparse_mac.v": ("requantize.v", "engine_output.v"),
    "circulant_mac.v": ("requantize.v", "engine_output.v"),
    "conv2d.v": ("requantize.v",),
    "pool2d.v": ("requantize.v",),
    "argmax.v": (),
}


def sources(*modules: str) -> list[str]:
    """File names (relative to RTL_DIR) that simulating or synthesizing `modules` needs: every
    dependency first (in the order met), then the modules themselves; each file once."""
    unknown = [m for m in modules if m not in DEPENDENCIES]
    if unknown:
        raise KeyError(f"not in rtl.DEPENDENCIES: {', '.join(unknown)}")
    files: list[str] = []
    for f in [d for m in modules for d in DEPENDENCIES[m]] + list(modules):
        if f not in files:
            files.append(f)
    return files


def paths(*modules: str) -> list[Path]:
    """`sources(...)` as absolute paths."""
    return [RTL_DIR / f for f in sources(*modules)]
