"""Reading a build (OUT/, written by `mpc compile`): the one reader of a build folder, for
`mpc simulate`, `mpc audit` and the bit-flip audit.

Every file read is checked before anything runs on it: graph.json + params.npz (each graph
folder: the build's and its checkpoints'), rtl/design.json and the files it lists, the ROM
images' words (`Build.rom`), test_vectors.npz (never unpickled) and report.json. A missing or
damaged file raises BuildError naming the file and saying to recompile; the API prints it as
one line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compiler.errors import MpcError
from compiler.ir import Graph
from kernels.rom import read_mem
from kernels.rom_protect import PROTECTIONS

RECOMPILE = "recompile the build (`mpc compile`)"


class BuildError(MpcError, ValueError):
    """A build folder is not a complete, undamaged mpc build; the message names the file."""


@dataclass
class Build:
    out: Path
    graph: Graph
    report: dict
    design: dict | None = None
    x_q: np.ndarray | None = None  # test vectors: quantized inputs [N, *input shape]
    y: np.ndarray | None = None  # their labels [N]
    checkpoints: dict[str, Graph] = field(default_factory=dict)  # folder name (00-import, ...) -> graph

    def rom(self, file: str, words: int, width: int) -> list[int]:
        """The words of the ROM image rtl/FILE ($readmemh, kernels.rom.read_mem), checked: `words`
        of them, each within `width` stored bits (data and check bits)."""
        assert self.design is not None, "open the build with rtl=True"
        path = self.out / "rtl" / file
        if not _plain_name(file) or not path.is_file():
            raise BuildError(f"{path}: missing (the bit-flip audit reads the design's ROM files); recompile")
        try:
            return read_mem(path, words, width)
        except OSError as e:
            raise damaged(path, f"unreadable: {e.strerror}") from None
        except ValueError as e:  # the count, a line that is no hex word, a word wider than the ROM
            raise BuildError(f"{e}; recompile") from None


def open_build(out: str | Path, rtl: bool = False, vectors: bool = False, checkpoints: bool = False) -> Build:
    """Check and load OUT: graph.json + params.npz and report.json always; `rtl`: rtl/design.json
    and every file it names; `vectors`: test_vectors.npz; `checkpoints`: every checkpoint folder
    (the audit's targets), with checkpoints/00-import required."""
    out = Path(out)
    if not out.is_dir() or not any((out / f).exists() for f in ("graph.json", "report.json", "rtl", "checkpoints")):
        raise BuildError(f"{out}: not a complete mpc build (no graph.json or report.json); run `mpc compile` first")
    graph = load_graph(out)
    report = _load_report(out)
    build = Build(out, graph, report)
    if rtl:
        open_rtl(build)
    if vectors:
        build.x_q, build.y = _load_vectors(out, graph)
        _smoke_run(out, graph, build.x_q[:1])
    if checkpoints:
        folder = out / "checkpoints"
        if not (folder / "00-import" / "graph.json").is_file():
            raise _missing(folder / "00-import" / "graph.json")
        build.checkpoints = {sub.name: load_graph(sub) for sub in sorted(p for p in folder.iterdir() if p.is_dir())}
    return build


def open_rtl(build: Build) -> dict:
    """rtl/design.json and every file it names, checked, into `build.design` (open_build's `rtl`,
    for a caller that decides on the design after opening the build)."""
    build.design = _load_design(build.out, build.graph)
    return build.design


def damaged(path: Path, why: str) -> BuildError:
    return BuildError(_one_line(f"{path}: damaged or truncated ({why}); {RECOMPILE}"))


def _missing(path: Path) -> BuildError:
    return BuildError(f"{path}: missing (the build is incomplete); {RECOMPILE}")


def _why(e: Exception) -> str:
    """An exception of np.load, short: pickles are named as such (mpc never loads them)."""
    if isinstance(e, ValueError) and ("pickle" in str(e) or "Object arrays" in str(e)):
        return "it holds pickled (object) data, which mpc never loads"
    return f"{type(e).__name__}: {e}"


def _one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", text.strip())


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise _missing(path)
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise damaged(path, f"unreadable: {e.strerror}") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise damaged(path, f"not valid JSON: {e}") from None


# ---- graphs ------------------------------------------------------------------------------------
def load_graph(folder: Path) -> Graph:
    """Graph.load(folder), after checking graph.json's parameter table against params.npz array
    by array, so a damaged file is named (Graph.validate checks nodes and the hardware plan)."""
    doc = _read_json(folder / "graph.json")
    declared = _declared_params(folder / "graph.json", doc)
    _check_params(folder / "params.npz", declared)
    try:
        graph = Graph.load(folder)
    except Exception as e:  # IRError, and what a hand-edited document makes the constructors raise
        why = str(e).removeprefix(f"{folder}/graph.json: ").removeprefix(f"{folder}: ")
        raise damaged(folder / "graph.json", f"{type(e).__name__}: {why}") from None
    _check_graph(folder / "graph.json", graph)
    return graph


def _declared_params(path: Path, doc: Any) -> list[tuple[str, str, tuple[int, ...]]]:
    if not isinstance(doc, dict):
        raise damaged(path, "not a graph document")
    for key, kind in (("inputs", list), ("outputs", list), ("nodes", list), ("params", dict)):
        if not isinstance(doc.get(key), kind):
            raise damaged(path, f"{key!r} is missing or not a {kind.__name__}")
    declared = []
    for name, spec in doc["params"].items():
        shape = spec.get("shape") if isinstance(spec, dict) else None
        dtype = spec.get("dtype") if isinstance(spec, dict) else None
        if (
            not isinstance(dtype, str)
            or not isinstance(shape, list)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise damaged(path, f"parameter {name!r} has no valid dtype and shape")
        declared.append((name, dtype, tuple(shape)))
    return declared


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    """An .npz archive of the build, never unpickling anything."""
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as e:
        raise damaged(path, _why(e)) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise damaged(path, "not an .npz archive")
    return npz


def _check_params(path: Path, declared: list[tuple[str, str, tuple[int, ...]]]) -> None:
    if not path.is_file():
        raise _missing(path)
    with _open_npz(path) as npz:
        for i, (name, dtype, shape) in enumerate(declared):
            try:
                arr = npz[f"p{i}"]
            except KeyError:
                raise damaged(path, f"array p{i} ({name!r}) is missing") from None
            except Exception as e:  # BadZipFile, zlib.error, EOFError, an object array
                raise damaged(path, f"array p{i} ({name!r}): {_why(e)}") from None
            if str(arr.dtype) != dtype or arr.shape != shape:
                raise damaged(
                    path,
                    f"array p{i} ({name!r}) is {arr.dtype}{list(arr.shape)}; graph.json says {dtype}{list(shape)}",
                )
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise damaged(path, f"array p{i} ({name!r}) holds NaN or Inf")


def _check_graph(path: Path, graph: Graph) -> None:
    for spec in [*graph.inputs, *graph.outputs]:
        if not all(isinstance(d, int) and d > 0 for d in spec.shape):
            raise damaged(path, f"tensor {spec.name!r} has shape {list(spec.shape)}")
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise damaged(path, "a build's graph has one input and one output")


def _smoke_run(out: Path, graph: Graph, x_q: np.ndarray) -> None:
    """The golden executor on one test vector: a hand-edited graph that validates but cannot
    execute (an attribute of the wrong type, a shape that does not chain) is caught here."""
    from compiler.exec import golden

    try:
        with np.errstate(all="ignore"):
            golden.run_integer(graph, x_q.astype(np.int64))
    except Exception as e:
        raise damaged(out / "graph.json", f"the golden executor cannot run it: {type(e).__name__}: {e}") from None


# ---- the other files ---------------------------------------------------------------------------
def _load_report(out: Path) -> dict:
    path = out / "report.json"
    report = _read_json(path)
    if not isinstance(report, dict) or not isinstance(report.get("hardware"), dict):
        raise damaged(path, "not an mpc report (no 'hardware' table)")
    from compiler.report.markdown import render_markdown

    try:
        render_markdown(report)  # what simulate and audit do with it after updating it
    except Exception as e:
        raise damaged(path, f"cannot be rendered: {type(e).__name__}: {e}") from None
    return report


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _plain_name(v: Any) -> bool:
    """A file name inside rtl/: no folders, no way out of it."""
    return isinstance(v, str) and bool(re.fullmatch(r"[A-Za-z0-9_.-]+", v)) and v not in (".", "..")


def _load_design(out: Path, graph: Graph) -> dict:
    rtl = out / "rtl"
    path = rtl / "design.json"
    design = _read_json(path)
    if not isinstance(design, dict):
        raise damaged(path, "not a design description")
    problems = []
    if not isinstance(design.get("top"), str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", design["top"]):
        problems.append("'top' is not a Verilog module name")
    sources = design.get("sources")
    if not isinstance(sources, list) or not sources or not all(_plain_name(s) for s in sources):
        problems.append("'sources' is not a list of file names in rtl/")
    for key in ("in_bits", "logit_bits", "n_classes"):
        if not _positive_int(design.get(key)):
            problems.append(f"{key!r} is not a positive integer")
    shape = design.get("input_shape")
    if not isinstance(shape, list) or not shape or not all(_positive_int(d) for d in shape):
        problems.append("'input_shape' is not a list of positive integers")
    elif int(np.prod(shape)) != int(np.prod(graph.inputs[0].shape)):
        problems.append(f"'input_shape' {shape} does not match graph.json's input {list(graph.inputs[0].shape)}")
    if design.get("input_order", "row-major") not in ("row-major", "hwc"):
        problems.append(f"'input_order' {design.get('input_order')!r} is neither 'row-major' nor 'hwc'")
    if _positive_int(design.get("n_classes")) and design["n_classes"] != int(np.prod(graph.outputs[0].shape)):
        problems.append(f"'n_classes' {design['n_classes']} does not match graph.json's {graph.outputs[0].shape}")
    problems += _engine_problems(design.get("engines"))
    if problems:
        raise damaged(path, "; ".join(problems))
    roms = {
        v
        for e in (design["engines"] if isinstance(design.get("engines"), list) else [])
        if isinstance(e, dict) and isinstance(e.get("parameters") or {}, dict)
        for v in (e.get("parameters") or {}).values()
        if isinstance(v, str) and v.endswith(".mem")
    }
    for name in [*(sources or []), *sorted(roms)]:
        if not _plain_name(name):
            raise damaged(path, f"it names the file {name!r}, not a file of rtl/")
        if not (rtl / name).is_file():
            raise BuildError(f"{rtl / name}: missing (listed in rtl/design.json); {RECOMPILE}")
    return design


def _engine_problems(engines: Any) -> list[str]:
    """design.json's engine tables, as far as a reader of the design's ROMs relies on them."""
    tables = isinstance(engines, list) and all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in engines)
    if not tables:
        return ["'engines' is not a list of tables with a 'name'"]
    if any(e.get("protection", "none") not in PROTECTIONS for e in engines):
        return [f"an engine's 'protection' is none of {', '.join(PROTECTIONS)}"]
    return []


def serial_top(build: Build) -> dict:
    """rtl/design.json's "serial_top" entry (the UART board top, compiler/backends/serial.py),
    checked: a module name, files of rtl/ that exist, and integer parameters."""
    assert build.design is not None, "open the build with rtl=True"
    path = build.out / "rtl" / "design.json"
    entry = build.design.get("serial_top")
    if entry is None:
        raise BuildError(f"{path}: no 'serial_top' (the build predates the serial wrapper); {RECOMPILE}")
    problems = []
    if not isinstance(entry, dict):
        raise damaged(path, "'serial_top' is not a table")
    if not isinstance(entry.get("module"), str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", entry["module"]):
        problems.append("'serial_top.module' is not a Verilog module name")
    files = entry.get("sources")
    if not isinstance(files, list) or not files or not all(_plain_name(s) for s in files):
        problems.append("'serial_top.sources' is not a list of file names in rtl/")
        files = []
    params = entry.get("parameters")
    if not isinstance(params, dict) or not all(_positive_int(v) for v in params.values()):
        problems.append("'serial_top.parameters' is not a table of positive integers")
    elif not {"CLKS_PER_BIT", "CLASS_BITS"} <= params.keys():
        problems.append("'serial_top.parameters' lacks CLKS_PER_BIT or CLASS_BITS")
    if problems:
        raise damaged(path, "; ".join(problems))
    for name in files:
        if not (build.out / "rtl" / name).is_file():
            raise BuildError(f"{build.out / 'rtl' / name}: missing (listed in rtl/design.json); {RECOMPILE}")
    return entry


def _load_vectors(out: Path, graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    path = out / "test_vectors.npz"
    if not path.is_file():
        raise BuildError(f"{path}: missing (was the build compiled without --data?); recompile the build with --data")
    with _open_npz(path) as npz:
        arrays = {}
        for key in ("x_q", "y"):
            try:
                arrays[key] = npz[key]
            except KeyError:
                raise damaged(path, f"array {key!r} is missing") from None
            except Exception as e:  # an object array (a pickle), a damaged member
                raise damaged(path, f"array {key!r}: {_why(e)}") from None
    x_q, y = arrays["x_q"], arrays["y"]
    n_in = int(np.prod(graph.inputs[0].shape))
    if x_q.dtype != np.int8 or x_q.ndim < 2 or len(x_q) == 0 or int(np.prod(x_q.shape[1:])) != n_in:
        raise damaged(
            path, f"x_q is {x_q.dtype}{list(x_q.shape)}; need int8 [N, {', '.join(map(str, graph.inputs[0].shape))}]"
        )
    if graph.meta.get("task") == "regression":  # float target rows, one per vector
        n_out = int(np.prod(graph.outputs[0].shape))
        if y.dtype.kind != "f" or y.shape != (len(x_q), n_out):
            raise damaged(path, f"y is {y.dtype}{list(y.shape)}; need float targets [{len(x_q)}, {n_out}]")
    elif y.dtype.kind not in "iu" or y.shape != (len(x_q),):
        raise damaged(path, f"y is {y.dtype}{list(y.shape)}; need integer labels [{len(x_q)}]")
    return x_q.reshape(len(x_q), *graph.inputs[0].shape), y
