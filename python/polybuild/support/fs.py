"""Files written so that a reader, a crash or a second run never sees half of one, and the racy-clean rule that
says when a file's `stat` can be trusted.

Every file polybuild writes goes through `write_atomic` (a whole content), `atomic_writer` (streamed into a file
object) or `atomic_path` (written by a tool that takes an output path), or is moved with `move_into_place`: the new
content goes to a temp file in the destination's directory and is renamed over the destination, so a reader sees
the old file or the new one, and a failure leaves the old one (the temp file is removed).

Durability: `durable=True` (the default) also flushes the file to disk before the rename and the directory after
it, so that after a power loss the name holds the whole new content, never an empty or torn file. Files that are
only a record of a run and cost a rescan or a rebuild if lost (the report, summaries, memos, the stat cache, the
records) pass `durable=False`: the no-op path writes some of them on every run and must not wait for the disk.

Modes: a new file gets 0666 & ~umask, like any file a program creates, unless `mode` says otherwise (the exact
mode, whatever the umask); a tool writing to `atomic_path` decides its file's mode itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# git's "racy clean" problem: a file changed within the timestamp granularity right after it was read can keep
# the (size, mtime, ctime, inode) it was read with, so a change that recent is never trusted by its stat alone.
RACY_NS = 2_000_000_000


def racy(mtime_ns: int, ctime_ns: int, now_ns: int) -> bool:
    """Whether a file with these timestamps changed too recently (2 s) for its stat signature to vouch for its
    content. The native core's stat cache applies the same rule (rust/polybuild-core/src/statcache.rs)."""
    return now_ns - max(mtime_ns, ctime_ns) <= RACY_NS


def write_atomic(path: Path | str, data: str | bytes, *, mode: int | None = None, durable: bool = True) -> None:
    """Replace `path` with `data` (text is written as UTF-8), atomically; see the module docstring."""
    with atomic_writer(path, mode=mode, durable=durable) as f:
        f.write(data.encode() if isinstance(data, str) else data)


@contextlib.contextmanager
def atomic_writer(path: Path | str, *, mode: int | None = None, durable: bool = True) -> Iterator[BinaryIO]:
    """A binary file to stream `path`'s new content into; it replaces `path` when the block ends, and is removed
    if the block raises (e.g. a digest that does not match what was written)."""
    with atomic_path(path, mode=mode, durable=durable) as tmp:
        # Created like open() does (the umask applies), but never wider than an explicit `mode` even for a moment.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666 if mode is None else mode)
        with open(fd, "wb") as f:
            yield f


@contextlib.contextmanager
def atomic_path(path: Path | str, *, mode: int | None = None, durable: bool = True) -> Iterator[Path]:
    """A fresh name beside `path` for a tool to write (`go build -o`, a zip file); whatever it holds when the block
    ends replaces `path`. `mode`, if given, is set on it first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        _commit(tmp, path, durable)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def move_into_place(src: Path | str, dst: Path | str, *, durable: bool = True) -> None:
    """Move a finished file to `dst` with a rename; from another filesystem, copy it beside `dst` first (mode and
    times kept) and rename that."""
    try:
        _commit(Path(src), Path(dst), durable)
    except OSError as exc:
        import errno
        import shutil

        if exc.errno != errno.EXDEV:
            raise
        with atomic_path(dst, durable=durable) as tmp:
            shutil.copy2(src, tmp)
        os.unlink(src)


def link_once(path: Path | str, data: bytes, *, mode: int | None = None) -> bool:
    """Create `path` with `data` unless it exists (then leave it untouched and return False). The content is
    written to a temp file and hard-linked into place, so processes racing to create it agree on one file, none is
    ever replaced while another uses it, and no reader sees it half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666 if mode is None else mode)
    try:
        with open(fd, "wb") as f:
            f.write(data)
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        _sync_dir(path.parent)
        return True
    finally:
        os.unlink(tmp)


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")


def _commit(tmp: Path, path: Path, durable: bool) -> None:
    if durable:
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, path)
    if durable:
        _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    """Make a rename in `directory` survive a power loss (the new name is written with the directory)."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def relative(path: Path, root: Path) -> str:
    """`path` relative to `root` in POSIX form, or as it is when outside."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
