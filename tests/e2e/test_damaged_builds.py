"""`mpc simulate` and `mpc audit` on a damaged build: one line naming the damaged file and
saying to recompile, exit status 2, never a traceback (compiler/build.py checks every file read)."""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from compiler.cli import main

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    from compiler import api

    out = tmp_path_factory.mktemp("build") / "out"
    api.compile(
        ROOT / "examples" / "digits_mlp.onnx",
        ROOT / "examples" / "digits.npz",
        out,
        log=lambda *_: None,
        progress=False,
        synth_timeout=None,
    )
    return out


def run_cli(*args) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in args])
    return rc, err.getvalue()


def edit_json(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def dense_node(doc: dict) -> dict:
    return next(n for n in doc["nodes"] if n["op"] == "dense")


def requantize_node(doc: dict) -> dict:
    return next(n for n in doc["nodes"] if n["op"] == "requantize")


def save_npz(path: Path, arrays: dict) -> None:
    np.savez(path, **arrays)


def truncate(path: Path, size: int = 300) -> None:
    path.write_bytes(path.read_bytes()[:size])


# (damage, the file the message names, commands that read it)
BOTH, SIM = ("simulate", "audit"), ("simulate",)
CASES = {
    "params_truncated": (lambda c: truncate(c / "params.npz"), "params.npz", BOTH),
    "params_deleted": (lambda c: (c / "params.npz").unlink(), "params.npz", BOTH),
    "params_not_a_zip": (lambda c: (c / "params.npz").write_text("hello"), "params.npz", BOTH),
    "params_pickle": (lambda c: (c / "params.npz").write_bytes(pickle.dumps({"p0": 1})), "params.npz", BOTH),
    "params_wrong_shape": (
        lambda c: save_npz(c / "params.npz", {f"p{i}": np.zeros(3, np.int32) for i in range(6)}),
        "params.npz",
        BOTH,
    ),
    "params_array_missing": (lambda c: np.savez(c / "params.npz", p0=np.zeros(3)), "params.npz", BOTH),
    "graph_truncated": (lambda c: truncate(c / "graph.json", 200), "graph.json", BOTH),
    "graph_deleted": (lambda c: (c / "graph.json").unlink(), "graph.json", BOTH),
    "graph_not_an_object": (lambda c: (c / "graph.json").write_text("[1, 2]"), "graph.json", BOTH),
    "graph_unknown_op": (
        lambda c: edit_json(c / "graph.json", lambda d: dense_node(d).update(op="warp")),
        "graph.json",
        BOTH,
    ),
    "graph_extra_node_field": (
        lambda c: edit_json(c / "graph.json", lambda d: dense_node(d).update(colour="red")),
        "graph.json",
        BOTH,
    ),
    "graph_param_table_edited": (
        lambda c: edit_json(c / "graph.json", lambda d: next(iter(d["params"].values())).update(shape=[3, 3])),
        "params.npz",
        BOTH,
    ),
    "graph_plan_engine_edited": (
        lambda c: edit_json(c / "graph.json", lambda d: dense_node(d)["annotations"].update(engine="warp")),
        "graph.json",
        BOTH,
    ),
    "graph_plan_multipliers_edited": (
        lambda c: edit_json(c / "graph.json", lambda d: dense_node(d)["annotations"].update(multipliers=0)),
        "graph.json",
        BOTH,
    ),
    "graph_attr_type_edited": (
        lambda c: edit_json(c / "graph.json", lambda d: requantize_node(d)["attrs"].update(shift="x")),
        "graph.json",
        SIM,
    ),
    "checkpoint_truncated": (
        lambda c: truncate(c / "checkpoints" / "00-import" / "params.npz"),
        "checkpoints/00-import/params.npz",
        ("audit",),
    ),
    "checkpoint_deleted": (
        lambda c: shutil.rmtree(c / "checkpoints" / "00-import"),
        "checkpoints/00-import/graph.json",
        ("audit",),
    ),
    "report_deleted": (lambda c: (c / "report.json").unlink(), "report.json", BOTH),
    "report_truncated": (lambda c: truncate(c / "report.json", 50), "report.json", BOTH),
    "report_not_a_report": (lambda c: (c / "report.json").write_text('{"a": 1}'), "report.json", BOTH),
    "report_data_edited": (
        lambda c: edit_json(c / "report.json", lambda d: d.update(data=[1])),
        "report.json",
        ("audit",),
    ),
    "design_deleted": (lambda c: (c / "rtl" / "design.json").unlink(), "rtl/design.json", SIM),
    "design_truncated": (lambda c: truncate(c / "rtl" / "design.json", 40), "rtl/design.json", SIM),
    "design_sources_escape": (
        lambda c: edit_json(c / "rtl" / "design.json", lambda d: d.update(sources=["../../../etc/passwd"])),
        "rtl/design.json",
        SIM,
    ),
    "design_field_type": (
        lambda c: edit_json(c / "rtl" / "design.json", lambda d: d.update(in_bits="eight")),
        "rtl/design.json",
        SIM,
    ),
    "design_engines_type": (
        lambda c: edit_json(c / "rtl" / "design.json", lambda d: d.update(engines="all of them")),
        "rtl/design.json",
        SIM,
    ),
    "rtl_source_deleted": (lambda c: (c / "rtl" / "mpc_top.v").unlink(), "rtl/mpc_top.v", SIM),
    "rtl_rom_deleted": (lambda c: (c / "rtl" / "layer0_w.mem").unlink(), "rtl/layer0_w.mem", SIM),
    "vectors_deleted": (lambda c: (c / "test_vectors.npz").unlink(), "test_vectors.npz", SIM),
    "vectors_truncated": (lambda c: truncate(c / "test_vectors.npz"), "test_vectors.npz", SIM),
    "vectors_pickled_object": (
        lambda c: np.savez(c / "test_vectors.npz", x_q=np.array([object()] * 3), y=np.zeros(3, np.int64)),
        "test_vectors.npz",
        SIM,
    ),
    "vectors_pickle_file": (
        lambda c: (c / "test_vectors.npz").write_bytes(pickle.dumps([1, 2])),
        "test_vectors.npz",
        SIM,
    ),
    "vectors_wrong_shape": (
        lambda c: np.savez(c / "test_vectors.npz", x_q=np.zeros((3, 5), np.int8), y=np.zeros(3, np.int64)),
        "test_vectors.npz",
        SIM,
    ),
    "vectors_wrong_dtype": (
        lambda c: np.savez(c / "test_vectors.npz", x_q=np.zeros((3, 8, 8)), y=np.zeros(3, np.int64)),
        "test_vectors.npz",
        SIM,
    ),
    "vectors_labels_missing": (
        lambda c: np.savez(c / "test_vectors.npz", x_q=np.zeros((3, 8, 8), np.int8)),
        "test_vectors.npz",
        SIM,
    ),
}


@pytest.mark.parametrize(
    "case, command", [(case, command) for case, (_, _, commands) in CASES.items() for command in commands]
)
def test_damaged_build(build, tmp_path, case, command):
    damage, damaged_file, _ = CASES[case]
    copy = tmp_path / "out"
    shutil.copytree(build, copy)
    damage(copy)
    args = ["simulate", copy, "--samples", "2"] if command == "simulate" else ["audit", copy, "--attacks", "threshold"]
    rc, err = run_cli(*args)
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"mpc {command}: error: "), err
    assert str(copy / damaged_file) in lines[0], (damaged_file, lines[0])
    assert "recompile" in lines[0]
    assert not (copy / "sim.json").exists() and not (copy / "audit.json").exists()


def test_undamaged_copy_passes_the_checks(build, tmp_path):
    from compiler.build import open_build

    copy = tmp_path / "out"
    shutil.copytree(build, copy)
    b = open_build(copy, rtl=True, vectors=True, checkpoints=True)
    assert b.design is not None and b.x_q is not None and b.x_q.dtype == np.int8
    assert len(b.x_q) == len(b.y)


def test_no_pickle_loading_anywhere():
    """No np.load(..., allow_pickle=True) on user-supplied or build files, anywhere in the code."""
    offenders = [
        str(p.relative_to(ROOT))
        for folder in ("compiler", "sim", "kernels", "benchmarks")
        if (ROOT / folder).is_dir()
        for p in (ROOT / folder).rglob("*.py")
        if "allow_pickle=True" in p.read_text() or "pickle.load" in p.read_text()
    ]
    assert offenders == []
