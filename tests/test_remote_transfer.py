"""How the HTTP remote cache moves blobs, against a real nginx (WebDAV) on loopback: streamed between socket and
disk in bounded memory, over a few kept-alive connections, several at once. Connections are counted, and requests
delayed, by a TCP proxy written here that sits between the client and nginx (a harness, not a stand-in server).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import polybuild_env
from polybuild.cache.remote import RemoteCache, RemoteFile
from polybuild.cache.store import LocalStore
from servers import Nginx


@pytest.fixture
def nginx(tmp_path):
    server = Nginx(tmp_path / "nginx")
    yield server
    server.stop()


class TcpProxy:
    """Forwards loopback connections to `port`, counting those it accepts, and holds each chunk a client sends for
    `delay` seconds before passing it on (so each request arrives `delay` late, whatever else is in flight). With
    `rate`, answers share a link of that many bytes per second, as transfers do on a slow network."""

    def __init__(self, port: int, delay: float = 0.0, rate: float | None = None) -> None:
        self.port, self.delay, self.rate = port, delay, rate
        self.accepted = 0
        self._link = threading.Lock()
        self._link_free = 0.0  # when the shared link can carry the next chunk
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            upstream = socket.create_connection(("127.0.0.1", self.port))
            threading.Thread(target=self._pump, args=(client, upstream, self.delay), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, 0.0, self.rate), daemon=True).start()

    def _pump(self, source: socket.socket, dest: socket.socket, delay: float, rate: float | None = None) -> None:
        try:
            while data := source.recv(1 << 14):
                time.sleep(delay if rate is None else self._slot(len(data), rate))
                dest.sendall(data)
            dest.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _slot(self, size: int, rate: float) -> float:
        """How long to wait before `size` bytes may cross the shared link."""
        with self._link:
            now = time.monotonic()
            start = max(now, self._link_free)
            self._link_free = start + size / rate
        return start - now

    def close(self) -> None:
        self.listener.close()


def blobs(count: int, size: int = 3000) -> dict[str, bytes]:
    """`count` distinct blobs by digest."""
    contents = [os.urandom(size) for _ in range(count)]
    return {hashlib.sha256(c).hexdigest(): c for c in contents}


def entry(nginx: Nginx, key: str, contents: dict[str, bytes]) -> list[RemoteFile]:
    """An action-cache entry of these blobs, put on the server as an upload would leave it."""
    files = [RemoteFile(f"out/{i}", d, len(c), False) for i, (d, c) in enumerate(contents.items())]
    for d, c in contents.items():
        (nginx.data / "cas").mkdir(exist_ok=True)
        (nginx.data / "cas" / d).write_bytes(c)
    result = {"exitCode": 0, "outputFiles": [{"path": f.path, "digest": {"hash": f.sha256, "sizeBytes": str(f.size)},
                                              "isExecutable": False} for f in files]}
    (nginx.data / "ac").mkdir(exist_ok=True)
    (nginx.data / "ac" / key).write_text(json.dumps(result))
    return files


KEY = "a" * 64


def test_blobs_of_an_entry_share_a_few_kept_alive_connections(tmp_path, nginx):
    contents = blobs(40)
    entry(nginx, KEY, contents)
    proxy = TcpProxy(nginx.port)
    try:
        cache = RemoteCache(proxy.url, upload=True, jobs=4)
        fetched = cache.fetch(KEY, LocalStore(tmp_path / "store"))
        assert fetched is not None and len(fetched[0]) == 40
        assert proxy.accepted <= 4, proxy.accepted  # not one per request (41)
        pushed = blobs(40)
        files = [RemoteFile(f"p/{i}", d, len(c), False) for i, (d, c) in enumerate(pushed.items())]
        cache.push("b" * 64, files, None, pushed.get)
        assert all((nginx.data / "cas" / d).read_bytes() == c for d, c in pushed.items())
        assert proxy.accepted <= 4, proxy.accepted  # the same connections again (not 81 more)
    finally:
        proxy.close()


def test_a_connection_the_server_closed_while_idle_is_replaced_without_a_warning(tmp_path, capsys):
    nginx = Nginx(tmp_path / "nginx", "keepalive_timeout 1s;")
    try:
        contents = blobs(16)
        entry(nginx, KEY, contents)
        cache = RemoteCache(nginx.url, jobs=4)  # more idle connections than retries
        assert cache.fetch(KEY, LocalStore(tmp_path / "one")) is not None
        time.sleep(1.5)  # nginx closes the idle connections
        assert cache.fetch(KEY, LocalStore(tmp_path / "two")) is not None
        assert "warning" not in capsys.readouterr().err
    finally:
        nginx.stop()


def test_blobs_are_transferred_several_at_once(tmp_path, nginx):
    count, delay = 16, 0.25
    contents = blobs(count)
    entry(nginx, KEY, contents)
    proxy = TcpProxy(nginx.port, delay=delay)
    try:
        cache = RemoteCache(proxy.url, upload=True, jobs=8)
        start = time.monotonic()
        assert cache.fetch(KEY, LocalStore(tmp_path / "store")) is not None
        fetch_time = time.monotonic() - start
        pushed = blobs(count)
        files = [RemoteFile(f"p/{i}", d, len(c), False) for i, (d, c) in enumerate(pushed.items())]
        start = time.monotonic()
        cache.push("b" * 64, files, None, pushed.get)
        push_time = time.monotonic() - start
    finally:
        proxy.close()
    assert all((nginx.data / "cas" / d).exists() for d in pushed)
    # one after another: count * delay for the downloads, twice that for the checks and uploads
    assert fetch_time < count * delay / 2, fetch_time
    assert push_time < count * delay, push_time


def test_transfers_sharing_a_slow_link_are_not_cut_off(tmp_path, nginx, capsys):
    """Eight downloads at once over a link of 600 KiB/s (above the minimum rate of 256 KiB/s) get 75 KiB/s each: the
    minimum rate is the client's, over all its transfers, not each one's."""
    contents = blobs(8, size=192 << 10)
    entry(nginx, KEY, contents)
    proxy = TcpProxy(nginx.port, rate=600 << 10)
    try:
        fetched = RemoteCache(proxy.url, timeout=1, jobs=8).fetch(KEY, LocalStore(tmp_path / "store"))
    finally:
        proxy.close()
    assert fetched is not None, capsys.readouterr().err


def test_an_upload_whose_file_changed_leaves_nothing_on_the_server(tmp_path, nginx, capsys):
    out = tmp_path / "big"
    data = os.urandom(3 << 20)
    digest = hashlib.sha256(data).hexdigest()
    out.write_bytes(data[:-1] + b"X")  # changed after it was hashed, in its last chunk
    RemoteCache(nginx.url, upload=True).push(KEY, [RemoteFile("big", digest, len(data), False)], None,
                                             lambda d: out)
    assert "changed since it was hashed" in capsys.readouterr().err
    assert not (nginx.data / "cas" / digest).exists() and not (nginx.data / "ac").exists()


def test_a_download_not_matching_its_digest_leaves_nothing_in_the_store(tmp_path, nginx, capsys):
    contents = blobs(3, size=3 << 20)
    entry(nginx, KEY, contents)
    first = next(iter(contents))
    (nginx.data / "cas" / first).write_bytes(contents[first][:-1] + b"X")
    store = tmp_path / "store"
    assert RemoteCache(nginx.url).fetch(KEY, LocalStore(store)) is None
    assert capsys.readouterr().err.count("returned a corrupt blob") == 1
    assert not (store / "cas" / first[0] / first).exists()
    assert not [p for p in store.rglob("*") if p.name.endswith(".tmp")]


BIG = 384 << 20
CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from polybuild.cache.remote import RemoteCache, RemoteFile
    from polybuild.cache.store import LocalStore

    url, source, digest, store = sys.argv[1], Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    size = source.stat().st_size
    RemoteCache(url, upload=True).push("c" * 64, [RemoteFile("big", digest, size, False)], None, lambda d: source)
    fetched = RemoteCache(url).fetch("c" * 64, LocalStore(store))
    assert fetched is not None, "not fetched"
    # VmHWM, this process's own peak: ru_maxrss would count the parent's peak too (Linux takes it over at exec)
    hwm = next(line for line in Path('/proc/self/status').read_text().splitlines() if line.startswith('VmHWM:'))
    print(int(hwm.split()[1]) * 1024)
""")


def test_a_large_blob_moves_through_little_memory(tmp_path, nginx):
    source = tmp_path / "image.tar"
    with open(source, "wb") as f:  # sparse: no disk used, read back as zeros
        f.truncate(BIG)
    h = hashlib.sha256()
    zeros = b"\0" * (1 << 20)
    for _ in range(BIG >> 20):
        h.update(zeros)
    digest = h.hexdigest()
    store = tmp_path / "store"
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, nginx.url, str(source), digest, str(store)],
                              env=polybuild_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        peak = int(proc.stdout.split()[-1])
        assert (nginx.data / "cas" / digest).stat().st_size == BIG
        assert (store / "cas" / digest[0] / digest).stat().st_size == BIG
        assert peak < BIG / 4, f"peak RSS {peak >> 20} MiB for a {BIG >> 20} MiB blob"
    finally:
        shutil.rmtree(nginx.data / "cas", ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)



def test_a_proxy_from_the_environment_carries_the_requests(tmp_path, nginx, monkeypatch):
    contents = blobs(3)
    entry(nginx, KEY, contents)
    proxy = TcpProxy(nginx.port)  # nginx answers a request for an absolute URL, as a forwarding proxy does
    for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", proxy.url)
    try:
        fetched = RemoteCache("http://cache.invalid:8080").fetch(KEY, LocalStore(tmp_path / "store"))
        assert fetched is not None and proxy.accepted >= 1
    finally:
        proxy.close()


def test_small_files_restored_from_the_remote_live_in_the_manifest(tmp_path, nginx):
    from polybuild.cache.tasks import TaskCache

    small, large = blobs(5, size=2000), blobs(1, size=200_000)
    files = entry(nginx, KEY, {**small, **large})
    store = tmp_path / "store"
    restored = TaskCache(LocalStore(store), RemoteCache(nginx.url)).restore(KEY, "t", tmp_path / "out",
                                                                             tmp_path / "t.log")
    assert restored is not None
    for f in files:
        assert hashlib.sha256((tmp_path / "out" / f.path).read_bytes()).hexdigest() == f.sha256
    assert sorted(p.name for p in (store / "cas").rglob("*") if p.is_file()) == sorted(large)  # one file, not six
