"""A remote cache over the HTTP protocol of bazel-remote: `GET/PUT /ac/<key>` and `/cas/<sha256>`.

Action-cache entries are JSON-encoded REAPI `ActionResult` messages (bazel-remote validates and serves them with
`Content-Type`/`Accept: application/json`; a plain WebDAV server such as nginx stores them as they are), so the
same server can hold Bazel's entries and ours. Reads are the default; uploads only when asked for (CI on trusted
branches).

The server is not trusted: every entry is validated field by field (digests are 64 hex characters, paths relative
and normalised) and every download verified against its digest; what is uploaded is verified first too. A request,
its retries included, has one deadline (`timeout` seconds, plus a second per 256 KiB moved), enforced on every read
and write, so a server that trickles cannot hold a build. A server that is down, failing, slow or hostile costs one
warning, then the build goes on with the local cache.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polybuild.cache.store import LocalStore, clashing_paths, is_digest, is_safe_path, warn

MIN_RATE = 256 * 1024  # bytes per second: a transfer slower than this on average misses its deadline
MAX_BACKOFF = 2.0  # seconds between retries, at most
MAX_ENTRY = 16 << 20  # bytes: an action-cache entry larger than this is not one


class RemoteUnavailable(Exception):
    """The server could not be reached or kept failing."""


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
    def __init__(self, url: str, *, upload: bool = False, timeout: float = 10.0, retries: int = 2,
                 token: str | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        self.base = urllib.parse.urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""),
                                             parts.path.rstrip("/"), "", ""))
        self.upload = upload
        self.timeout = timeout
        self.retries = retries
        self._headers: dict[str, str] = {}
        if parts.username is not None:
            import base64

            user_pass = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(user_pass.encode()).decode()
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._down = threading.Event()
        self._warned = threading.Lock()
        self.shown = redact(url)

    # -- HTTP with one deadline per request and a bounded retry -------------------------------------------------

    def _request(self, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None,
                 limit: int = MAX_ENTRY) -> tuple[int, bytes]:
        """(status, body of at most `limit` bytes); RemoteUnavailable once the deadline has passed or the retries
        are spent."""
        if self._down.is_set():
            raise RemoteUnavailable("marked unavailable earlier in this run")
        deadline = _Deadline(self.timeout)
        req = _Request(f"{self.base}/{path}", data=data, method=method, headers={**self._headers, **(headers or {})},
                       deadline=deadline)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                pause = min(MAX_BACKOFF, 0.2 * 2 ** attempt)
                if self._down.is_set() or deadline.remaining() < pause:
                    break
                time.sleep(pause)
            try:
                with _OPENER.open(req, timeout=max(0.05, deadline.remaining())) as resp:
                    body = resp.read(limit + 1)
                    if len(body) > limit:
                        raise RemoteUnavailable(f"an answer to {method} {path[:16]}… is larger than {limit} bytes")
                    return resp.status, body
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return exc.code, b""
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                last = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
            if deadline.remaining() <= 0:
                last = f"no complete answer within the {self.timeout}s deadline ({last})"
                break
        raise RemoteUnavailable(last)

    def _give_up(self, exc: Exception) -> None:
        with self._warned:
            if not self._down.is_set():
                self._down.set()
                warn(f"remote cache {self.shown} is unavailable ({exc}); continuing with the local cache only")

    # -- the cache operations ----------------------------------------------------------------------------------

    def fetch(self, key: str, store: LocalStore) -> tuple[list[RemoteFile], str | None] | None:
        """Download an entry's blobs into the local store (verified); None on a miss or when unavailable."""
        try:
            status, body = self._request("GET", f"ac/{key}", headers={"Accept": "application/json"})
            if status != 200:
                return None
            files, log = _parse_action_result(body)
            for digest, size in [(f.sha256, f.size) for f in files] + ([log] if log else []):
                if not store.has_blob(digest):
                    status, blob = self._request("GET", f"cas/{digest}", limit=size)
                    if status != 200:
                        return None
                    if len(blob) != size or hashlib.sha256(blob).hexdigest() != digest:
                        warn(f"remote cache {self.shown} returned a corrupt blob {digest[:12]}; ignored")
                        return None
                    store.put_blob(digest, data=blob)
            return files, (log[0] if log else None)
        except RemoteUnavailable as exc:
            self._give_up(exc)
        except ValueError as exc:
            warn(f"remote cache {self.shown} has an unusable entry {key[:12]} ({exc}); ignored")
        return None

    def push(self, key: str, files: list[RemoteFile], log: tuple[str, int] | None,
             content: Callable[[str], bytes | None]) -> None:
        """Upload blobs (`content` gives each by digest), then the action result (only when uploads are enabled)."""
        if not self.upload:
            return
        try:
            for digest in [f.sha256 for f in files] + ([log[0]] if log else []):
                status, _ = self._request("HEAD", f"cas/{digest}")
                if status != 200:
                    data = content(digest)
                    if data is None or hashlib.sha256(data).hexdigest() != digest:
                        warn(f"the output {digest[:12]} changed since it was hashed; {key[:12]} not uploaded")
                        return
                    self._check(self._request("PUT", f"cas/{digest}", data=data), f"cas/{digest}")
            body = json.dumps(_action_result(files, log), sort_keys=True).encode()
            self._check(self._request("PUT", f"ac/{key}", data=body, headers={"Content-Type": "application/json"}),
                        f"ac/{key}")
        except RemoteUnavailable as exc:
            self._give_up(exc)

    def _check(self, response: tuple[int, bytes], what: str) -> None:
        if response[0] not in (200, 201, 204):
            raise RemoteUnavailable(f"upload of {what[:16]}… refused with HTTP {response[0]}")


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


class _Deadline:
    """When a request must be done: `seconds` from its start, plus the time its bytes take at MIN_RATE."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.moved = 0

    def remaining(self) -> float:
        return self.end + self.moved / MIN_RATE - time.monotonic()


class _Request(urllib.request.Request):
    """A request carrying its deadline to the connection that serves it."""

    def __init__(self, url: str, *, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.deadline = deadline


class _DeadlineSocket:
    """A connected socket whose reads and writes each wait at most what is left of the request's deadline, so
    an answer trickled a byte at a time cannot outlast it. Closing it waits for its reader, as a socket's
    `makefile` does."""

    def __init__(self, sock: Any, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline
        self._readers = 0
        self._closing = False

    def _arm(self) -> None:
        left = self._deadline.remaining()
        if left <= 0:
            raise TimeoutError("the request's deadline has passed")
        self._sock.settimeout(min(left, self._deadline.seconds))  # and no single wait longer than `timeout`

    def sendall(self, data: bytes) -> None:
        self._deadline.moved += len(data)
        self._arm()
        self._sock.sendall(data)

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        self._arm()
        got = self._sock.recv_into(buffer, nbytes)
        self._deadline.moved += got
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


class _DeadlineConnection:
    """Mixed into http.client's connections: once connected, the socket keeps the request's deadline."""

    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock, self.deadline)


class _HTTP(_DeadlineConnection, http.client.HTTPConnection):
    pass


class _HTTPS(_DeadlineConnection, http.client.HTTPSConnection):
    pass


class _DeadlineHandlerMixin:
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        conn = _HTTPS if issubclass(http_class, http.client.HTTPSConnection) else _HTTP
        return super().do_open(lambda host, **kw: conn(host, deadline=req.deadline, **kw), req, **kwargs)


class _HTTPHandler(_DeadlineHandlerMixin, urllib.request.HTTPHandler):
    pass


class _HTTPSHandler(_DeadlineHandlerMixin, urllib.request.HTTPSHandler):
    pass


_OPENER = urllib.request.build_opener(_HTTPHandler, _HTTPSHandler)  # proxies from the environment, as urlopen
