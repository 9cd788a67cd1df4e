"""A remote cache over the HTTP protocol of bazel-remote: `GET/PUT /ac/<key>` and `/cas/<sha256>`.

Action-cache entries are JSON-encoded REAPI `ActionResult` messages (bazel-remote validates and serves them with
`Content-Type`/`Accept: application/json`; a plain WebDAV server such as nginx stores them as they are), so the
same server can hold Bazel's entries and ours. Reads are the default; uploads only when asked for (CI on trusted
branches). Every download is verified against its digest. A server that is down or failing costs one warning, then
the build goes on with the local cache.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polybuild.store import LocalStore, warn


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

    # -- HTTP with timeouts and a bounded retry ------------------------------------------------------------------

    def _request(self, method: str, path: str, data: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        if self._down.is_set():
            raise RemoteUnavailable("marked unavailable earlier in this run")
        req = urllib.request.Request(f"{self.base}/{path}", data=data, method=method,
                                     headers={**self._headers, **(headers or {})})
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(0.2 * 2 ** attempt)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return exc.code, b""
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
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
                    status, blob = self._request("GET", f"cas/{digest}")
                    if status != 200:
                        return None
                    if len(blob) != size or hashlib.sha256(blob).hexdigest() != digest:
                        warn(f"remote cache {self.shown} returned a corrupt blob {digest[:12]}; ignored")
                        return None
                    store.put_blob(digest, data=blob)
            return files, (log[0] if log else None)
        except RemoteUnavailable as exc:
            self._give_up(exc)
        except ValueError:
            warn(f"remote cache {self.shown} has an unreadable entry {key[:12]}; ignored")
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
                    if data is None:
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
    data = json.loads(body)
    if not isinstance(data, dict) or data.get("exitCode", 0) != 0:
        raise ValueError("not a successful ActionResult")
    files = [RemoteFile(f["path"], f["digest"]["hash"], int(f["digest"].get("sizeBytes", 0)),
                        bool(f.get("isExecutable")))
             for f in data.get("outputFiles", [])]
    for f in files:
        if f.path.startswith("/") or ".." in f.path.split("/"):
            raise ValueError(f"unsafe output path {f.path!r}")
    log = data.get("stdoutDigest")
    return files, ((log["hash"], int(log.get("sizeBytes", 0))) if log else None)
