"""polybuild.support.fs: the one atomic writer (whole content, streamed, a tool's output path, a move, a create-once
link) and the racy-clean rule every stat-trusting cache applies."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from polybuild.support.fs import RACY_NS, atomic_path, atomic_writer, link_once, move_into_place, racy, write_atomic


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("durable", [True, False])
def test_write_replaces_the_file_and_leaves_no_temp(tmp_path: Path, durable: bool) -> None:
    path = tmp_path / "new" / "dir" / "report.json"
    write_atomic(path, "first\n", durable=durable)
    write_atomic(path, b"second\n", durable=durable)
    assert path.read_bytes() == b"second\n"
    assert os.listdir(path.parent) == ["report.json"]


def test_a_new_file_gets_the_umask_mode_an_explicit_mode_is_exact(tmp_path: Path, umask_027: None) -> None:
    write_atomic(tmp_path / "report", "x")
    write_atomic(tmp_path / "sbom", "x", mode=0o644)  # wider than the umask allows: still exactly 0644
    write_atomic(tmp_path / "salt", b"x", mode=0o600)
    assert (mode_of(tmp_path / "report"), mode_of(tmp_path / "sbom"), mode_of(tmp_path / "salt")) == \
        (0o640, 0o644, 0o600)


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"old")
    with pytest.raises(ValueError), atomic_writer(path) as f:
        f.write(b"half of the new")
        raise ValueError("the digest does not match")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["blob"]


def test_a_tool_writes_its_output_path_with_its_own_mode(tmp_path: Path) -> None:
    """As `go build -o` does: the tool creates the file (executable here); it replaces the destination."""
    binary = tmp_path / "helper"
    with atomic_path(binary) as tmp:
        assert not tmp.exists() and tmp.parent == tmp_path
        subprocess.run([sys.executable, "-c", f"import os; open({str(tmp)!r}, 'w').write('#!'); "
                        f"os.chmod({str(tmp)!r}, 0o755)"], check=True)
        assert not binary.exists()
    assert binary.read_text() == "#!" and mode_of(binary) == 0o755


def test_a_failing_tool_leaves_nothing(tmp_path: Path) -> None:
    binary = tmp_path / "helper"
    with pytest.raises(subprocess.CalledProcessError), atomic_path(binary) as tmp:
        tmp.write_text("partial")
        subprocess.run([sys.executable, "-c", "raise SystemExit(3)"], check=True)
    assert os.listdir(tmp_path) == []


def test_move_into_place_across_filesystems(tmp_path: Path) -> None:
    """/dev/shm is another filesystem than the temp directory on most machines: the move copies, keeps the mode
    and removes the source."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem at hand")
    src = shm / f"polybuild-test-{os.getpid()}"
    src.write_bytes(b"artifact")
    src.chmod(0o755)
    (tmp_path / "dist").mkdir()
    try:
        move_into_place(src, tmp_path / "dist" / "tool")
    finally:
        src.unlink(missing_ok=True)
    assert (tmp_path / "dist" / "tool").read_bytes() == b"artifact" and mode_of(tmp_path / "dist" / "tool") == 0o755
    assert not src.exists() and os.listdir(tmp_path / "dist") == ["tool"]


def test_link_once_keeps_the_first_of_racing_writers(tmp_path: Path) -> None:
    path = tmp_path / "salt"
    results: dict[int, bool] = {}
    start = threading.Barrier(8)

    def create(i: int) -> None:
        start.wait()
        results[i] = link_once(path, bytes([i]) * 32, mode=0o600)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (winner,) = [i for i, won in results.items() if won]
    assert path.read_bytes() == bytes([winner]) * 32 and mode_of(path) == 0o600
    assert os.listdir(tmp_path) == ["salt"]


def test_the_racy_clean_rule() -> None:
    now = 10 * RACY_NS
    assert racy(now - 1, 0, now) and racy(0, now - RACY_NS, now)  # the newer of mtime and ctime counts
    assert racy(now + 5, now + 5, now)  # a clock step back: a future timestamp is not trusted either
    assert not racy(now - RACY_NS - 1, now - RACY_NS - 1, now)
