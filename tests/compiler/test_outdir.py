"""`mpc compile -o OUT [--force]` never loses a file mpc did not write (issue 12).

Every scenario runs in a tmp folder holding user files that must survive byte for byte, and
asserts the exact one-line message. Compiles are small: the digits MLP without synthesis."""

from __future__ import annotations

import errno
import os
import shutil
import threading
from pathlib import Path

import pytest

from compiler import outdir
from compiler.cli import main
from tests.conftest import EXAMPLES

MODEL, DATA = EXAMPLES / "digits_mlp.onnx", EXAMPLES / "digits.npz"
REFUSE = "mpc replaces OUT as a whole (choose a new folder for -o)"


@pytest.fixture
def mpc(capsys):
    """mpc(*compile args) -> (exit code, stderr); the model, data, --no-synth and --quiet added."""

    def run(*args, model=MODEL, data=DATA):
        rc = main(["compile", str(model), "--data", str(data), "--no-synth", "--quiet", *map(str, args)])
        return rc, capsys.readouterr().err

    return run


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under root: file bytes, link targets."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            found[rel] = path.read_bytes()
        else:
            found[rel] = "dir"
    return found


@pytest.fixture
def user_tree(tmp_path):
    """tmp_path with a user's files; returns (tmp_path, snapshot of it)."""
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("my notes\n")
    (tmp_path / "user" / "data").mkdir()
    (tmp_path / "user" / "data" / "x.csv").write_bytes(b"1,2,3\n" * 10)
    (tmp_path / "thesis.tex").write_text("\\documentclass{article}\n")
    return tmp_path, snapshot(tmp_path)


def refused(rc: int, err: str, message: str) -> None:
    assert rc == 2
    assert err == f"mpc compile: error: {message}\n"


def no_leftovers(folder: Path) -> None:
    hidden = sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
    assert hidden == [], hidden


def test_force_refuses_a_folder_of_user_files(mpc, user_tree):
    root, before = user_tree
    out = root / "user"
    refused(
        *mpc("-o", out, "--force"),
        f"{out}: not an mpc build (no .mpc-build.json); not replacing it; choose another -o or remove it yourself",
    )
    assert snapshot(root) == before


def test_force_refuses_a_build_holding_a_file_mpc_did_not_write(mpc, tmp_path):
    out = tmp_path / "b"
    assert mpc("-o", out) == (0, "")
    for name in ("notes.txt", "rtl/my_patch.v", "zz/a.txt", "zz/b.txt"):
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_text(name)
    before = snapshot(tmp_path)
    refused(
        *mpc("-o", out, "--force"),
        f"{out}: holds files mpc did not write (notes.txt, rtl/my_patch.v, zz/a.txt, ... (4 files)); "
        "not replacing it; choose another -o or remove them yourself",
    )
    assert snapshot(tmp_path) == before
    no_leftovers(tmp_path)


def test_force_replaces_a_previous_build_and_an_empty_folder(mpc, tmp_path):
    out = tmp_path / "b"
    assert mpc("-o", out) == (0, "")
    manifest = outdir.read_manifest(out)
    assert manifest and manifest["format"] == 1 and "report.json" in manifest["files"]
    assert "checkpoints/00-import/graph.json" in manifest["files"]
    (out / "report.md").write_text("edited")  # a file mpc wrote stays mpc's
    assert mpc("-o", out, "--force") == (0, "")
    assert (out / "report.md").read_text() != "edited"
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert mpc("-o", tmp_path / "empty", "--force") == (0, "")
    assert (tmp_path / "empty" / "report.json").is_file()
    no_leftovers(tmp_path)


def test_simulate_and_audit_files_are_recorded(mpc, tmp_path):
    out = tmp_path / "b"
    assert mpc("-o", out) == (0, "")
    (out / "sim.json").write_text("{}")
    (out / "audit_roc_compiled.png").write_bytes(b"png")
    (out / "sim_build" / "icarus" / "deep").mkdir(parents=True)
    (out / "sim_build" / "icarus" / "deep" / "sim.vvp").write_text("vvp")
    outdir.record_files(out, ["sim.json", out / "audit_roc_compiled.png"])
    outdir.record_folders(out, [out / "sim_build" / "icarus"])
    manifest = outdir.read_manifest(out)
    assert manifest and {"sim.json", "audit_roc_compiled.png"} <= set(manifest["files"])
    assert manifest["folders"] == ["sim_build/icarus"]
    assert mpc("-o", out, "--force") == (0, "")
    assert not (out / "sim.json").exists()
    outdir.record_files(tmp_path / "not-a-build", ["x"])  # no manifest: nothing happens
    assert not (tmp_path / "not-a-build").exists()


@pytest.mark.parametrize("given", [".", ""])
def test_working_directory(mpc, user_tree, monkeypatch, given):
    root, before = user_tree
    monkeypatch.chdir(root)
    refused(*mpc("-o", given, "--force"), f".: is the working directory; {REFUSE}")
    assert snapshot(root) == before


def test_parent_of_the_working_directory(mpc, user_tree, monkeypatch):
    root, before = user_tree
    monkeypatch.chdir(root / "user" / "data")
    refused(*mpc("-o", "..", "--force"), f"..: holds the working directory; {REFUSE}")
    refused(*mpc("-o", "../..", "--force"), f"../..: holds the working directory; {REFUSE}")
    assert snapshot(root) == before


def test_root_and_home(mpc, user_tree, monkeypatch):
    root, before = user_tree
    monkeypatch.setenv("HOME", str(root / "user"))
    refused(*mpc("-o", root / "user", "--force"), f"{root / 'user'}: is your home folder; {REFUSE}")
    refused(*mpc("-o", "/", "--force"), f"/: is the root folder; {REFUSE}")
    assert snapshot(root) == before


def test_folder_holding_the_inputs(mpc, user_tree):
    root, before = user_tree
    model, data = root / "user" / "model.onnx", root / "user" / "data" / "d.npz"
    shutil.copy(MODEL, model)
    shutil.copy(DATA, data)
    before = snapshot(root)
    out = root / "user"
    refused(*mpc("-o", out, "--force", model=model), f"{out}: holds the input model {model}; choose an -o outside it")
    refused(
        *mpc("-o", out / "data", "--force", data=data),
        f"{out / 'data'}: holds the data file {data}; choose an -o outside it",
    )
    recipe = root / "user" / "r.toml"
    recipe.write_text("[lower]\nweight_bits = 8\n")
    before = snapshot(root)
    refused(
        *mpc("-o", out, "--force", "--recipe", recipe), f"{out}: holds the recipe {recipe}; choose an -o outside it"
    )
    assert snapshot(root) == before


def test_replanning_into_the_build_it_reads_from(mpc, tmp_path):
    out = tmp_path / "b"
    assert mpc("-o", out) == (0, "")
    before = snapshot(tmp_path)
    checkpoint = out / "checkpoints" / "02-lower"
    refused(
        *mpc("-o", out, "--force", model=checkpoint),
        f"{out}: holds the input model {checkpoint}; choose an -o outside it",
    )
    refused(
        *mpc("-o", checkpoint / "new", model=checkpoint),
        f"{checkpoint / 'new'}: is inside the input model {checkpoint}; choose an -o outside it",
    )
    assert snapshot(tmp_path) == before


def test_a_file_a_link_and_a_file_as_parent(mpc, user_tree):
    root, before = user_tree
    notes = root / "user" / "notes.txt"
    refused(*mpc("-o", notes, "--force"), f"{notes}: is a file, not a folder; choose another -o")
    link = root / "link"
    link.symlink_to(root / "user")
    before = snapshot(root)
    refused(*mpc("-o", link, "--force"), f"{link}: is a symbolic link; give the folder it points to, or another -o")
    refused(*mpc("-o", notes / "b" / "c"), f"{notes / 'b' / 'c'}: {notes} is a file, not a folder; choose another -o")
    assert snapshot(root) == before


def test_parent_not_writable(mpc, user_tree, monkeypatch):
    root, before = user_tree
    locked = root / "user" / "data"
    real_access = os.access

    def access(path, mode, *args, **kwargs):  # as root the permission bits do not stop writes
        return False if Path(path) == locked else real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(outdir.os, "access", access)
    out = locked / "b" / "c"
    refused(*mpc("-o", out), f"{out}: cannot write in {locked} (permission denied); choose another -o")
    assert snapshot(root) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_parent_read_only_for_real(mpc, user_tree):
    root, before = user_tree
    locked = root / "user" / "data"
    locked.chmod(0o555)
    try:
        refused(
            *mpc("-o", locked / "b"), f"{locked / 'b'}: cannot write in {locked} (permission denied); choose another -o"
        )
    finally:
        locked.chmod(0o755)
    assert snapshot(root) == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_proc(mpc):
    refused(
        *mpc("-o", "/proc/mpc-build", "--force"), "/proc/mpc-build: cannot write in /proc (No such file or directory)"
    )


def test_name_too_long(mpc, user_tree):
    root, before = user_tree
    for n in (245, 300):
        out = root / ("n" * n)
        refused(
            *mpc("-o", out),
            f"{out}: the folder name is too long ({n} bytes; at most 241, as mpc keeps .NAME.old.xxxxxxxx beside it)",
        )
    out = root / ("n" * 241)
    assert mpc("-o", out) == (0, "")
    shutil.rmtree(out)
    assert snapshot(root) == before


@pytest.mark.parametrize(
    "code, reason, in_build",
    [(errno.ENOSPC, "No space left on device", False), (errno.EACCES, "Permission denied", True)],
)
def test_write_errors_are_one_line_and_leave_nothing(mpc, tmp_path, monkeypatch, code, reason, in_build):
    from compiler.report import report

    out = tmp_path / "b"
    assert mpc("-o", out) == (0, "")
    before = snapshot(tmp_path)

    def failing_write_report(doc, folder):
        raise OSError(code, os.strerror(code), *([str(Path(folder) / "report.json")] if in_build else []))

    monkeypatch.setattr(report, "write_report", failing_write_report)
    where = out / "report.json" if in_build else out
    refused(*mpc("-o", out, "--force"), f"{where}: cannot write ({reason}); no build written to {out}")
    assert snapshot(tmp_path) == before  # the previous build untouched, no temporary folder left
    no_leftovers(tmp_path)


def test_a_second_build_into_the_same_out_fails_at_once(mpc, tmp_path):
    out = tmp_path / "b"
    assert mpc("-o", out) == (0, "")
    before = snapshot(tmp_path)
    with outdir.build_lock(out):  # as a running `mpc compile -o b` holds it
        refused(
            *mpc("-o", out, "--force"),
            f"{out}: another mpc compile is writing it now; wait for it to end or choose another -o",
        )
    assert snapshot(tmp_path) == before
    no_leftovers(tmp_path)  # the lock file is removed with the lock
    assert mpc("-o", out, "--force") == (0, "")


def test_concurrent_builds_in_threads(tmp_path):
    """Two builds into one OUT at the same moment: one wins, the other fails cleanly (no
    'Directory not empty'), the build in OUT is complete."""
    from compiler import api

    out = tmp_path / "b"
    api.compile(MODEL, DATA, out, log=lambda *_: None, progress=False, synth_timeout=None)
    errors: list[str] = []

    def build():
        try:
            api.compile(MODEL, DATA, out, force=True, log=lambda *_: None, progress=False, synth_timeout=None)
        except api.MpcError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(
        e == f"{out}: another mpc compile is writing it now; wait for it to end or choose another -o" for e in errors
    )
    outdir.check_replaceable(out)
    assert (out / "report.json").is_file()
    no_leftovers(tmp_path)


def test_out_gets_the_users_umask(mpc, tmp_path):
    old = os.umask(0o027)
    try:
        assert mpc("-o", tmp_path / "b") == (0, "")
    finally:
        os.umask(old)
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o750
    old = os.umask(0o022)
    try:
        assert mpc("-o", tmp_path / "b", "--force") == (0, "")
    finally:
        os.umask(old)
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o755


def test_existing_out_without_force(mpc, user_tree):
    root, before = user_tree
    refused(*mpc("-o", root / "user"), f"{root / 'user'}: already exists (use --force to replace it)")
    assert snapshot(root) == before


# --- the command line's argument errors: one line, exit 2, never a traceback ---


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", str(2**64)], f"--seed must be an integer in 0..4294967295 (got '{2**64}')"),
        (["--seed", str(2**32)], "--seed must be an integer in 0..4294967295 (got '4294967296')"),
        (["--seed", "-1"], "--seed must be an integer in 0..4294967295 (got '-1')"),
        (["--seed", "x"], "--seed must be an integer in 0..4294967295 (got 'x')"),
        (
            ["--synth-timeout", "inf"],
            "--synth-timeout must be a positive number of seconds (got 'inf'; --no-synth skips synthesis)",
        ),
        (
            ["--synth-timeout", "nan"],
            "--synth-timeout must be a positive number of seconds (got 'nan'; --no-synth skips synthesis)",
        ),
        (
            ["--synth-timeout", "-3"],
            "--synth-timeout must be a positive number of seconds (got '-3'; --no-synth skips synthesis)",
        ),
        (
            ["--synth-timeout", "soon"],
            "--synth-timeout must be a positive number of seconds (got 'soon'; --no-synth skips synthesis)",
        ),
    ],
)
def test_compile_argument_errors(tmp_path, capsys, args, message):
    assert main(["compile", str(MODEL), "--data", str(DATA), "-o", str(tmp_path / "b"), *args]) == 2
    assert capsys.readouterr().err == f"mpc compile: error: {message}\n"
    assert not (tmp_path / "b").exists()


def test_other_argument_errors_are_one_line(tmp_path, capsys):
    assert main(["audit", str(tmp_path), "--seed", str(2**40)]) == 2
    assert capsys.readouterr().err == f"mpc audit: error: --seed must be an integer in 0..4294967295 (got '{2**40}')\n"
    assert main(["compile", str(MODEL)]) == 2
    assert capsys.readouterr().err == "mpc compile: error: the following arguments are required: -o/--out\n"
    assert (
        main(
            [
                "compile",
                str(MODEL),
                "--data",
                str(DATA),
                "-o",
                str(tmp_path / "b"),
                "--seed",
                "4294967295",
                "--no-synth",
                "--quiet",
            ]
        )
        == 0
    )
