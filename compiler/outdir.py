"""The output folder's safety: mpc never loses a file it did not write.

`mpc compile -o OUT` builds into a temporary folder beside OUT (`.OUT.xxxxxxxx`) and moves it
into place only when complete. Around that:

- `check_target` refuses, whatever --force says, an OUT whose replacement would lose what is not
  mpc's: the working directory or a folder holding it, the home folder, `/`, a folder holding the
  input model, data or recipe; a file or symbolic link; a parent that is a file or not writable;
  a name too long for the temporary names. With --force it replaces an existing OUT only when
  OUT is a previous mpc build: it has the manifest (`OUT/.mpc-build.json`) and holds no file the
  manifest does not list (or no file at all).
- `build_lock` (flock on `.OUT.lock` beside OUT) makes a second build into the same OUT fail at
  once instead of racing the first.
- `staging` creates the temporary folder with the user's umask and always removes it;
  `place` writes the manifest and swaps the folder in with signals held off.
- `record_files` / `record_folders`: `mpc simulate` and `mpc audit` add what they write to the
  manifest, so a later --force still recognises the build as mpc's own.
- `handle_signals`: SIGTERM and SIGHUP (and SIGINT) raise `Interrupted`, so every `finally`
  runs (temporary folder removed, child process groups killed) and the CLI exits 128 + signal.

Every refusal is an `OutDirError` whose message is one line naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from compiler.errors import MpcError

MANIFEST = ".mpc-build.json"
MANIFEST_FORMAT = 1
# The longest suffix mpc puts around OUT's name for the names it keeps beside OUT:
# `.NAME.lock`, `.NAME.xxxxxxxx` (the build), `.NAME.old.xxxxxxxx` (the previous build, briefly).
NAME_OVERHEAD = len("..old.") + 8
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class OutDirError(MpcError):
    """OUT cannot be (re)written safely; the message is one line that names the path."""


class Interrupted(KeyboardInterrupt):
    """A signal (SIGINT, SIGTERM, SIGHUP) ended the command; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# ---------------------------------------------------------------------------------------------
# refusals


def check_target(out: Path, force: bool, inputs: Iterable[tuple[str, str | Path | None]] = ()) -> None:
    """Raise OutDirError when writing a build to OUT could lose anything that is not mpc's.
    `inputs`: (what, path) of the files the build reads (the input model, the data file, the recipe)."""
    _check_place(out, inputs)
    if os.path.lexists(out):
        if not force:
            raise OutDirError(f"{out}: already exists (use --force to replace it)")
        check_replaceable(out)


def check_place(out: Path, inputs: Iterable[tuple[str, str | Path | None]] = ()) -> None:
    """The refusals that hold whatever --force says, for a folder mpc fills without replacing it
    as a whole (`mpc explore`'s, with a manifest of its own): raise OutDirError."""
    _check_place(Path(out), inputs)


def _check_place(out: Path, inputs: Iterable[tuple[str, str | Path | None]]) -> None:
    """The refusals that hold whatever --force says."""
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    home = Path.home().resolve()
    if resolved == Path(resolved.anchor):
        raise OutDirError(f"{out}: is the root folder; mpc replaces OUT as a whole (choose a new folder for -o)")
    if resolved == cwd:
        raise OutDirError(f"{out}: is the working directory; mpc replaces OUT as a whole (choose a new folder for -o)")
    if resolved in cwd.parents:
        raise OutDirError(
            f"{out}: holds the working directory; mpc replaces OUT as a whole (choose a new folder for -o)"
        )
    if resolved == home or resolved in home.parents:
        what = "is" if resolved == home else "holds"
        raise OutDirError(f"{out}: {what} your home folder; mpc replaces OUT as a whole (choose a new folder for -o)")
    name_max = _name_max(resolved.parent)
    size = len(os.fsencode(resolved.name))
    if size + NAME_OVERHEAD > name_max:
        raise OutDirError(
            f"{out}: the folder name is too long ({size} bytes; at most {name_max - NAME_OVERHEAD}, "
            f"as mpc keeps .NAME.old.xxxxxxxx beside it)"
        )
    for what, path in inputs:
        if path is None or str(path) == "":
            continue
        source = Path(path).resolve()
        if resolved == source or resolved in source.parents:
            raise OutDirError(f"{out}: holds the {what} {path}; choose an -o outside it")
        if source.is_dir() and source in resolved.parents:
            raise OutDirError(f"{out}: is inside the {what} {path}; choose an -o outside it")
    if out.is_symlink():
        raise OutDirError(f"{out}: is a symbolic link; give the folder it points to, or another -o")
    if out.exists() and not out.is_dir():
        raise OutDirError(f"{out}: is a file, not a folder; choose another -o")
    ancestor = resolved.parent
    while not ancestor.exists() and not ancestor.is_symlink():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutDirError(f"{out}: {ancestor} is a file, not a folder; choose another -o")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutDirError(f"{out}: cannot write in {ancestor} (permission denied); choose another -o")


def _name_max(folder: Path) -> int:
    """NAME_MAX of the file system that will hold OUT (255 where it cannot be asked)."""
    while not folder.is_dir():
        folder = folder.parent
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_replaceable(out: Path) -> None:
    """Raise OutDirError unless OUT is an mpc build holding only what mpc wrote (or no file)."""
    files = _files_under(out)
    if not files:
        return  # an empty folder (or empty folders only): nothing to lose
    manifest = read_manifest(out)
    if manifest is None:
        raise OutDirError(
            f"{out}: not an mpc build (no {MANIFEST}); not replacing it; choose another -o or remove it yourself"
        )
    listed = set(manifest["files"]) | {MANIFEST}
    folders = tuple(f.rstrip("/") + "/" for f in manifest["folders"])
    foreign = sorted(f for f in files if f not in listed and not f.startswith(folders))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f", ... ({len(foreign)} files)" if len(foreign) > 3 else "")
        raise OutDirError(
            f"{out}: holds files mpc did not write ({shown}); not replacing it; "
            "choose another -o or remove them yourself"
        )


def _files_under(folder: Path) -> list[str]:
    """Every non-folder entry under folder (files, links, ...), as POSIX paths relative to it."""
    found = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        rel = Path(root).relative_to(folder)
        # a link to a folder is listed in dirs, but it is an entry of its own: not walked into
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        dirs[:] = [d for d in dirs if d not in links]
        found += [(rel / n).as_posix() for n in [*names, *links]]
    return found


# ---------------------------------------------------------------------------------------------
# the manifest


def _mpc_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mpc")
    except PackageNotFoundError:
        return "unknown"


def read_manifest(out: Path) -> dict | None:
    """OUT's manifest, or None where it has none (or it cannot be read as one)."""
    try:
        doc = json.loads((Path(out) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        return None
    doc.setdefault("folders", [])
    return doc


def write_manifest(build: Path) -> None:
    """List every file now in `build` (a complete build, before it is moved into place)."""
    doc = {
        "format": MANIFEST_FORMAT,
        "mpc_version": _mpc_version(),
        "files": sorted(f for f in _files_under(build) if f != MANIFEST),
        "folders": [],  # folders mpc owns whole (simulation work folders): see record_folders
    }
    (build / MANIFEST).write_text(json.dumps(doc, indent=1) + "\n")


def record_files(out: str | Path, paths: Iterable[str | Path]) -> None:
    """Add files mpc wrote into the build OUT (relative to OUT, or absolute inside it) to its
    manifest. A folder without a manifest (not an mpc build, or one older than manifests) is
    left alone."""
    _record(Path(out), "files", paths)


def record_folders(out: str | Path, paths: Iterable[str | Path]) -> None:
    """Add folders whose whole contents mpc writes (e.g. OUT/sim_build/icarus) to the manifest.
    Record them before writing into them, so an interrupted run leaves nothing unlisted."""
    _record(Path(out), "folders", paths)


def _record(out: Path, key: str, paths: Iterable[str | Path]) -> None:
    base = out.resolve()
    rel = []
    for p in paths:
        p = Path(p)
        rel.append((p.resolve().relative_to(base) if p.is_absolute() else p).as_posix())
    try:
        with open(out / MANIFEST, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # simulate and audit may record at the same time
            doc = json.loads(f.read())
            doc[key] = sorted(set(doc.get(key, [])) | set(rel))
            f.seek(0)
            f.truncate()
            f.write(json.dumps(doc, indent=1) + "\n")
    except FileNotFoundError:
        return
    except ValueError:
        return  # an unreadable manifest stays as it is: --force refuses such a build anyway


# ---------------------------------------------------------------------------------------------
# lock, staging folder, placing the build


def lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


@contextlib.contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """Hold OUT's build lock (creating OUT's parent folders); fail at once if another build holds it."""
    out = Path(out)
    path = lock_path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutDirError(f"{out}: cannot create {e.filename or out.parent} ({e.strerror})") from None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise OutDirError(f"{out}: cannot write in {out.parent} ({e.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutDirError(
                f"{out}: another mpc compile is writing it now; wait for it to end or choose another -o"
            ) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if not same:  # the holder before us removed the file after we opened it
            raise OutDirError(f"{out}: another mpc compile is writing it now; wait for it to end or choose another -o")
        try:
            yield
        finally:
            # removed while still held: a build that opened the old file sees it is gone (above)
            with contextlib.suppress(OSError):
                os.unlink(path)
    finally:
        os.close(fd)


@contextlib.contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A new temporary folder beside OUT, with the user's umask (mkdtemp's would be 0700);
    removed when the block ends unless `place` moved it to OUT."""
    out = Path(out)
    while True:
        tmp = out.parent / f".{out.name}.{secrets.token_hex(4)}"
        try:
            os.mkdir(tmp, 0o777)  # the umask applies
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise OutDirError(write_error(e, tmp, out)) from None
    try:
        yield tmp
    finally:
        with deferred_signals():
            shutil.rmtree(tmp, ignore_errors=True)


def place(tmp: Path, out: Path, force: bool) -> None:
    """Write the manifest into the complete build `tmp` and move it to OUT, replacing a previous
    build there when `force` (checked again now: files may have appeared while building)."""
    write_manifest(tmp)
    with deferred_signals():
        if os.path.lexists(out):
            if not force:
                raise OutDirError(f"{out}: appeared while building (use --force to replace it)")
            _check_place(out, ())
            check_replaceable(out)
            old = out.parent / f".{out.name}.old.{secrets.token_hex(4)}"
            os.rename(out, old)
            try:
                os.rename(tmp, out)
            except BaseException:
                os.rename(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)


def write_error(e: OSError, tmp: Path, out: Path) -> str:
    """One line for an OSError met while writing the build in `tmp` (named as its place in OUT)."""
    where = str(e.filename) if e.filename else str(out)
    if where.startswith(str(tmp)):
        where = str(out) + where[len(str(tmp)) :]
    reason = e.strerror or (errno.errorcode.get(e.errno or 0) if e.errno else None) or str(e)
    return f"{where}: cannot write ({reason}); no build written to {out}"


# ---------------------------------------------------------------------------------------------
# signals


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM and SIGHUP raise Interrupted instead of
    ending the process on the spot, and so does SIGINT (a KeyboardInterrupt). Signals with a
    handler of the caller's own, or ignored ones, are left as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in HANDLED_SIGNALS:
        current = signal.getsignal(signum)
        if current in (signal.SIG_DFL, signal.default_int_handler):
            previous[signum] = current
            signal.signal(signum, _raise_interrupted)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP off while the block runs (a swap of folders, a cleanup);
    they are delivered when it ends."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
