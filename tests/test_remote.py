"""The remote cache on a real server (nginx with WebDAV on a loopback port): two checkouts share results."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import polybuild_env, run_polybuild, write_tree
from servers import Nginx, free_port
from test_cache import GO_WS, statuses


@pytest.fixture
def nginx(tmp_path):
    server = Nginx(tmp_path / "nginx")
    yield server
    server.stop()


def checkout(tmp_path: Path, name: str) -> Path:
    return write_tree(tmp_path / name, GO_WS)


def build(root: Path, *args: str, cache: Path):
    proc = run_polybuild("build", *args, cwd=root, env=polybuild_env(POLYBUILD_CACHE_DIR=str(cache)))
    assert proc.returncode == 0, proc.stderr
    return proc


def test_second_checkout_builds_nothing(tmp_path, nginx):
    first, second = checkout(tmp_path, "a"), checkout(tmp_path, "b")
    built = build(first, "--remote", nginx.url, "--remote-upload", cache=tmp_path / "cache-a")
    assert set(statuses(built).values()) == {"done"}
    assert list((nginx.data / "ac").iterdir()) and list((nginx.data / "cas").iterdir())
    before = len(nginx.requests())
    restored = build(second, "--remote", nginx.url, cache=tmp_path / "cache-b")
    assert set(statuses(restored).values()) == {"cached"}
    for name in ("svc", "tool"):
        assert (second / "dist" / name).read_bytes() == (first / "dist" / name).read_bytes()
    assert subprocess.run([str(second / "dist" / "svc")], capture_output=True, text=True).stdout.strip() == \
        "lib 1.0.0"
    assert {r.split()[0] for r in nginx.requests()[before:]} == {"GET"}  # the second checkout only read


def test_reads_only_unless_uploads_are_enabled(tmp_path, nginx):
    build(checkout(tmp_path, "a"), "--remote", nginx.url, cache=tmp_path / "cache")
    assert not (nginx.data / "ac").exists()
    assert {r.split()[0] for r in nginx.requests()} == {"GET"}


def test_remote_url_from_config_and_upload_flag(tmp_path, nginx):
    root = checkout(tmp_path, "a")
    (root / "polybuild.toml").write_text(GO_WS["polybuild.toml"] + f"[remote]\nurl = '{nginx.url}'\nupload = true\n")
    build(root, cache=tmp_path / "cache")
    assert len(list((nginx.data / "ac").iterdir())) == 3


def test_server_down_means_local_cache_and_one_warning(tmp_path):
    root = checkout(tmp_path, "a")
    url = f"http://builder:s3cret@127.0.0.1:{free_port()}"
    proc = build(root, "--remote", url, "--remote-upload", cache=tmp_path / "cache")
    assert proc.stderr.count("is unavailable") == 1
    assert "s3cret" not in proc.stderr and "builder" not in proc.stderr
    assert set(statuses(proc).values()) == {"done"}
    assert set(statuses(build(root, "--remote", url, cache=tmp_path / "cache")).values()) == {"cached"}


def test_corrupt_remote_blob_is_rejected_and_rebuilt(tmp_path, nginx):
    first, second = checkout(tmp_path, "a"), checkout(tmp_path, "b")
    build(first, "--remote", nginx.url, "--remote-upload", cache=tmp_path / "cache-a")
    for blob in (nginx.data / "cas").iterdir():
        if blob.stat().st_size > 100_000:
            blob.write_bytes(b"X" + blob.read_bytes()[1:])
    proc = build(second, "--remote", nginx.url, cache=tmp_path / "cache-b")
    assert "returned a corrupt blob" in proc.stderr
    assert "done" in statuses(proc).values()
    for name in ("svc", "tool"):
        assert (second / "dist" / name).read_bytes() == (first / "dist" / name).read_bytes()


def test_bad_remote_url_is_a_usage_error(tmp_path):
    proc = run_polybuild("build", "--remote", "ftp://cache", cwd=checkout(tmp_path, "a"))
    assert proc.returncode == 2 and "not a remote cache URL" in proc.stderr

