"""A remote cache over the HTTP protocol of bazel-remote: `GET/PUT /ac/<key>` and `/cas/<sha256>`.

Action-cache entries are JSON-encoded REAPI `ActionResult` messages (bazel-remote validates and serves them with
`Content-Type`/`Accept: application/json`; a plain WebDAV server such as nginx stores them as they are), so the
same server can hold Bazel's entries and ours. Reads are the default; uploads only when asked for (CI on trusted
branches).

The server is not trusted: every entry is validated field by field (digests are 64 hex characters, paths relative
and normalised) and every download verified against its digest; what is uploaded is verified first too. A request,
its retries included, has one deadline (`timeout` seconds, plus a second per 256 KiB the client moves meanwhile),
enforced on every read and write, so a server that trickles cannot hold a build. A server that is down, failing,
slow or hostile costs one warning, then the build goes on with the local cache.

Blobs stream between the socket and a file (downloads into a temp file in the store, hashed as written; uploads
from the output itself), so a 2 GB image needs a few MiB of memory. Requests share a small pool of kept-alive
connections, and blobs move `jobs` at once.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from polybuild.cache.store import BlobSink, CorruptEntry, clashing_paths, is_digest, is_safe_path, warn

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

MIN_RATE = 256 * 1024  # bytes per second: a transfer slower than this on average misses its deadline
MAX_BACKOFF = 2.0  # seconds between retries, at most
MAX_ENTRY = 16 << 20  # bytes: an action-cache entry larger than this is not one
MAX_ERROR_BODY = 64 << 10  # bytes of a refusal read so that its connection can serve the next request
CHUNK = 1 << 20  # bytes read or sent at a time: what a blob in transit holds in memory
JOBS = 8  # transfers at once, by default

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")
Content = Path | bytes
"""A blob to upload: the file holding it (streamed, re-hashed as it is sent) or, when already in memory, its bytes."""


class RemoteUnavailable(Exception):
    """The server could not be reached or kept failing."""


class _Changed(Exception):
    """A file to upload no longer holds the content it was hashed with."""


@dataclass
class RemoteFile:
    path: str
    sha256: str
    size: int
    executable: bool


def redact(url: str) -> str:
    """The URL without credentials, for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class RemoteCache:
    """The cache operations (`fetch`, `push`) over one pool of kept-alive connections; blobs move `jobs` at once
    (over the whole run, whichever tasks ask), straight between the socket and a file."""

    def __init__(self, url: str, *, upload: bool = False, timeout: float = 10.0, retries: int = 2,
                 token: str | None = None, jobs: int = JOBS) -> None:
        parts = urllib.parse.urlsplit(url)
        self.base = urllib.parse.urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""),
                                             parts.path.rstrip("/"), "", ""))
        self.upload = upload
        self.timeout = timeout
        self.retries = retries
        self.jobs = jobs
        self._headers: dict[str, str] = {}
        if parts.username is not None:
            user_pass = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self._headers["Authorization"] = _basic(user_pass)
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._pool = _Pool(parts, self.base, size=jobs)
        self._workers: ThreadPoolExecutor | None = None
        self._workers_lock = threading.Lock()
        self._meter = _Meter()
        self._down = threading.Event()
        self._warned = threading.Lock()
        self.shown = redact(url)

    # -- HTTP with one deadline per request and a bounded retry -------------------------------------------------

    def _request(self, method: str, path: str, body: bytes | Callable[[], Iterable[bytes]] | None = None,
                 headers: dict[str, str] | None = None,
                 read: Callable[[http.client.HTTPResponse], Any] | None = None) -> tuple[int, Any]:
        """(status, what `read` makes of a 200 answer's body: by default the body, of at most MAX_ENTRY bytes;
        None for other answers). `body` is bytes or gives its chunks afresh for each attempt. RemoteUnavailable
        once the deadline has passed or the retries are spent."""
        if self._down.is_set():
            raise RemoteUnavailable("marked unavailable earlier in this run")
        deadline = _Deadline(self.timeout, self._meter)
        headers = {**self._headers, **(headers or {})}
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                pause = min(MAX_BACKOFF, 0.2 * 2 ** attempt)
                if self._down.is_set() or deadline.remaining() < pause:
                    break
                time.sleep(pause)
            try:
                status, result = self._attempt(method, path, body, headers, read or _read_entry, deadline)
                if 300 <= status < 400:
                    raise RemoteUnavailable(f"HTTP {status}, a redirect, which is not followed: set the URL it "
                                            "points to")
                if status < 500:
                    return status, result
                last = f"HTTP {status}"
            except (http.client.HTTPException, OSError, ValueError) as exc:
                last = str(exc) or type(exc).__name__
            if deadline.remaining() <= 0:
                last = f"no complete answer within the {self.timeout}s deadline ({last})"
                break
        raise RemoteUnavailable(last)

    def _attempt(self, method: str, path: str, body: bytes | Callable[[], Iterable[bytes]] | None,
                 headers: dict[str, str], read: Callable[[http.client.HTTPResponse], Any],
                 deadline: _Deadline) -> tuple[int, Any]:
        """One request on a pooled connection, which goes back to the pool only if its answer was read whole."""
        conn = self._pool.get(deadline)
        try:
            try:
                response = self._send(conn, method, path, body, headers)
            except (ConnectionResetError, BrokenPipeError):  # RemoteDisconnected too
                if not conn.reused:
                    raise
                conn.close()  # the server closed it while it was idle: once more on a new one (not a retry)
                conn = self._pool.get(deadline, fresh=True)
                response = self._send(conn, method, path, body, headers)
            result = read(response) if response.status == 200 else _drain(response)
        except BaseException:
            conn.close()
            raise
        self._pool.put(conn, response)
        return response.status, result

    def _send(self, conn: _Connection, method: str, path: str,
              body: bytes | Callable[[], Iterable[bytes]] | None,
              headers: dict[str, str]) -> http.client.HTTPResponse:
        conn.request(method, self._pool.target(path), body=body() if callable(body) else body, headers=headers)
        return conn.getresponse()

    def _give_up(self, exc: Exception) -> None:
        with self._warned:
            if not self._down.is_set():
                self._down.set()
                warn(f"remote cache {self.shown} is unavailable ({exc}); continuing with the local cache only")

    def _each(self, work: Callable[[_Item], _Result], items: list[_Item]) -> list[_Result]:
        """`work(item)` for every item, at most `jobs` at once over the whole run; the results in order. The first
        failure is raised once the started ones have ended (the others are cancelled)."""
        if not items:
            return []
        import concurrent.futures

        with self._workers_lock:
            if self._workers is None:
                self._workers = concurrent.futures.ThreadPoolExecutor(self.jobs, "polybuild-remote")
        futures = [self._workers.submit(work, item) for item in items]
        pending = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION).not_done
        for future in pending:  # something failed: what has not started will not
            future.cancel()
        concurrent.futures.wait(pending)
        failed = next((f.exception() for f in futures if not f.cancelled() and f.exception()), None)
        if failed is not None:
            raise failed
        return [f.result() for f in futures]

    # -- the cache operations ----------------------------------------------------------------------------------

    def fetch(self, key: str, store: BlobSink) -> tuple[list[RemoteFile], str | None] | None:
        """Download the entry's blobs `store` lacks into it (in parallel, each streamed through `blob_writer`, which
        verifies it); the entry's files and log digest, or None on a miss or when unavailable."""
        try:
            status, body = self._request("GET", f"ac/{key}", headers={"Accept": "application/json"})
            if status != 200:
                return None
            files, log = _parse_action_result(body)
            wanted: dict[str, int] = {}
            for digest, size in [(f.sha256, f.size) for f in files] + ([log] if log else []):
                if digest not in wanted and not store.has_blob(digest):
                    wanted[digest] = size
            if not all(self._each(lambda blob: self._download(store, *blob), list(wanted.items()))):
                return None
            return files, (log[0] if log else None)
        except RemoteUnavailable as exc:
            self._give_up(exc)
        except CorruptEntry as exc:
            warn(f"remote cache {self.shown} returned a corrupt blob ({exc}); ignored")
        except ValueError as exc:
            warn(f"remote cache {self.shown} has an unusable entry {key[:12]} ({exc}); ignored")
        return None

    def _download(self, store: BlobSink, digest: str, size: int) -> bool:
        """The blob into the store, through a temp file; False if the server does not have it."""
        def save(response: http.client.HTTPResponse) -> None:
            with store.blob_writer(digest, size) as out:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)

        return self._request("GET", f"cas/{digest}", read=save)[0] == 200

    def push(self, key: str, files: list[RemoteFile], log: tuple[str, int] | None,
             content: Callable[[str], Content | None]) -> None:
        """Upload the blobs the server lacks (checked and sent in parallel), then the action result (only when
        uploads are enabled). `content(digest)` gives a blob as a file to stream or as bytes (None if gone); each
        is verified against its digest as it is sent, and the entry is not uploaded if one fails."""
        if not self.upload:
            return
        sizes: dict[str, int] = {}
        for digest, size in [(f.sha256, f.size) for f in files] + ([log] if log else []):
            sizes.setdefault(digest, size)
        try:
            self._each(lambda blob: self._ensure_uploaded(blob[0], blob[1], content), list(sizes.items()))
            body = json.dumps(_action_result(files, log), sort_keys=True).encode()
            self._check(self._request("PUT", f"ac/{key}", body, {"Content-Type": "application/json"}), f"ac/{key}")
        except RemoteUnavailable as exc:
            self._give_up(exc)
        except _Changed as exc:
            warn(f"the output {exc} changed since it was hashed; {key[:12]} not uploaded")

    def _ensure_uploaded(self, digest: str, size: int, content: Callable[[str], Content | None]) -> None:
        if self._request("HEAD", f"cas/{digest}")[0] == 200:
            return
        source = content(digest)
        if source is None:
            raise _Changed(digest[:12])
        body = _verified_chunks(source, digest, size)
        self._check(self._request("PUT", f"cas/{digest}", body, {"Content-Length": str(size)}),
                    f"cas/{digest}")

    def _check(self, response: tuple[int, Any], what: str) -> None:
        if response[0] not in (200, 201, 204):
            raise RemoteUnavailable(f"upload of {what[:16]}… refused with HTTP {response[0]}")


def _read_entry(response: http.client.HTTPResponse) -> bytes:
    body = response.read(MAX_ENTRY + 1)
    if len(body) > MAX_ENTRY:
        raise RemoteUnavailable(f"an answer is larger than {MAX_ENTRY} bytes")
    return body


def _drain(response: http.client.HTTPResponse) -> None:
    """Read a refusal's body (it says nothing the cache needs), so that its connection can be kept."""
    response.read(MAX_ERROR_BODY)


def _verified_chunks(source: Content, digest: str, size: int) -> Callable[[], Iterator[bytes]]:
    """The body of an upload, read afresh for each attempt: its last chunk is sent only once the whole has been
    hashed and matched `digest` and `size` (_Changed otherwise), so the server never gets a whole wrong blob."""
    def chunks() -> Iterator[bytes]:
        h = hashlib.sha256()
        total = 0
        held = b""
        for chunk in _read(source):
            h.update(chunk)
            total += len(chunk)
            if total > size:
                break
            if held:
                yield held
            held = chunk
        if total != size or h.hexdigest() != digest:
            raise _Changed(digest[:12])
        if held:
            yield held

    return chunks


def _read(source: Content) -> Iterator[bytes]:
    if isinstance(source, bytes):
        yield source
        return
    try:
        with open(source, "rb") as f:
            yield from iter(lambda: f.read(CHUNK), b"")
    except OSError:
        return  # gone: the size check says so


def _basic(user_pass: str) -> str:
    import base64

    return "Basic " + base64.b64encode(user_pass.encode()).decode()


def _digest(sha256: str, size: int) -> dict[str, str]:
    return {"hash": sha256, "sizeBytes": str(size)}


def _action_result(files: list[RemoteFile], log: tuple[str, int] | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "outputFiles": [{"path": f.path, "digest": _digest(f.sha256, f.size), "isExecutable": f.executable}
                        for f in files],
        "exitCode": 0,
    }
    if log:
        result["stdoutDigest"] = _digest(*log)
    return result


def _parse_action_result(body: bytes) -> tuple[list[RemoteFile], tuple[str, int] | None]:
    """The files and log of a successful ActionResult, each field checked; ValueError saying what is wrong."""
    data = json.loads(body)
    if not isinstance(data, dict) or data.get("exitCode", 0) != 0:
        raise ValueError("not a successful ActionResult")
    listed = data.get("outputFiles", [])
    if not isinstance(listed, list):
        raise ValueError("outputFiles is not a list")
    files = [_output_file(f) for f in listed]
    if clashing_paths([f.path for f in files]):
        raise ValueError("an output path is listed twice, or as a file and a directory")
    log = data.get("stdoutDigest")
    return files, (_parse_digest(log) if log is not None else None)


def _output_file(entry: object) -> RemoteFile:
    if not isinstance(entry, dict) or not is_safe_path(entry.get("path")):
        raise ValueError(f"unsafe or missing output path in {json.dumps(entry)[:120]}")
    executable = entry.get("isExecutable", False)
    if not isinstance(executable, bool):
        raise ValueError(f"isExecutable of {entry['path']} is not a boolean")
    return RemoteFile(entry["path"], *_parse_digest(entry.get("digest")), executable)


def _parse_digest(value: object) -> tuple[str, int]:
    """(sha256, size) of a REAPI Digest (sizeBytes is an int64, a string in JSON, omitted when 0)."""
    if not isinstance(value, dict) or not is_digest(value.get("hash")):
        raise ValueError(f"not a sha256 digest: {json.dumps(value)[:120]}")
    size = value.get("sizeBytes", "0")
    if isinstance(size, bool) or not ((isinstance(size, int) and size >= 0)
                                      or (isinstance(size, str) and size.isascii() and size.isdigit()
                                          and len(size) <= 19)):
        raise ValueError(f"not a size: {json.dumps(size)[:40]}")
    return value["hash"], int(size)


class _Meter:
    """The bytes a client has moved, over all its connections."""

    def __init__(self) -> None:
        self.moved = 0
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self.moved += count


class _Deadline:
    """When a request must be done: `seconds` from its start, plus the time the bytes the client moves meanwhile
    take at MIN_RATE. Those of all its transfers count, so that transfers sharing a slow link (each slower than
    MIN_RATE, together faster) are not cut off, while a server that trickles them all still cannot hold a build."""

    def __init__(self, seconds: float, meter: _Meter) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self._meter = meter
        self._before = meter.moved

    def remaining(self) -> float:
        return self.end + (self._meter.moved - self._before) / MIN_RATE - time.monotonic()

    def count(self, moved: int) -> None:
        self._meter.add(moved)


class _Pool:
    """Kept-alive connections to the server, each serving one request at a time, so that a thousand blobs cost a
    few connections, not a thousand; at most `size` wait idle. Proxies come from the environment, as urllib's."""

    def __init__(self, parts: urllib.parse.SplitResult, base: str, size: int) -> None:
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._base = base
        self._size = size
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        proxy = urllib.request.getproxies().get(parts.scheme)
        self._proxy = None if not proxy or urllib.request.proxy_bypass(self._host) else urllib.parse.urlsplit(
            proxy if "://" in proxy else f"http://{proxy}")

    def target(self, path: str) -> str:
        """What the request line names: the path, or the whole URL when a plain-HTTP proxy forwards it."""
        return f"{self._base}/{path}" if self._proxy and not self._https else f"{self._prefix}/{path}"

    def get(self, deadline: _Deadline, fresh: bool = False) -> _Connection:
        conn = None
        if not fresh:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._new()
        conn.reused = conn.sock is not None
        conn.deadline = deadline
        conn.timeout = max(0.05, min(deadline.remaining(), deadline.seconds))  # to connect
        return conn

    def put(self, conn: _Connection, response: http.client.HTTPResponse) -> None:
        if response.isclosed() and not response.will_close and conn.sock is not None:
            with self._lock:
                if len(self._idle) < self._size:
                    self._idle.append(conn)
                    return
        conn.close()

    def _new(self) -> _Connection:
        kind = _HTTPS if self._https else _Connection
        if self._proxy is None:
            return kind(self._host, self._port)
        conn = kind(self._proxy.hostname or "", self._proxy.port or 80)
        auth = {}
        if self._proxy.username is not None:
            user_pass = f"{urllib.parse.unquote(self._proxy.username)}:" \
                        f"{urllib.parse.unquote(self._proxy.password or '')}"
            auth["Proxy-Authorization"] = _basic(user_pass)
        if self._https:
            conn.set_tunnel(self._host, self._port, headers=auth)
        else:
            conn.proxy_headers = auth
        return conn


class _DeadlineSocket:
    """A connected socket whose reads and writes each wait at most what is left of the deadline of the request its
    connection serves, so an answer trickled a byte at a time cannot outlast it. Closing it waits for its reader,
    as a socket's `makefile` does."""

    def __init__(self, sock: Any, conn: _Connection) -> None:
        self._sock = sock
        self._conn = conn
        self._readers = 0
        self._closing = False

    def _arm(self) -> _Deadline:
        """The deadline of the request being served, with the socket's timeout set to what is left of it."""
        deadline = self._conn.deadline
        left = deadline.remaining()
        if left <= 0:
            raise TimeoutError("the request's deadline has passed")
        self._sock.settimeout(min(left, deadline.seconds))  # and no single wait longer than `timeout`
        return deadline

    def sendall(self, data: bytes) -> None:
        self._conn.deadline.count(len(data))
        self._arm()
        self._sock.sendall(data)

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        deadline = self._arm()
        got = self._sock.recv_into(buffer, nbytes)
        deadline.count(got)
        return got

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_Reader(self))

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._closing and not self._readers:
            self._sock.close()

    def close(self) -> None:
        self._closing = True
        if not self._readers:
            self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Reader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._owner = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._owner.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._owner.reader_closed()
        super().close()


class _Connection(http.client.HTTPConnection):
    """An http.client connection whose socket keeps the deadline of the request it serves (set by the pool), and
    which sends a forwarding proxy its credentials."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.blocksize = CHUNK
        self.deadline = _Deadline(0, _Meter())  # the pool sets each request's
        self.reused = False
        self.proxy_headers: dict[str, str] = {}

    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock, self)

    def putrequest(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        super().putrequest(method, url, *args, **kwargs)
        for name, value in self.proxy_headers.items():
            self.putheader(name, value)


class _HTTPS(_Connection, http.client.HTTPSConnection):
    pass
