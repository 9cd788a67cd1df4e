"""What each task's last successful run in this workspace was made of (its key parts and output digest).

`explain` compares against these. They live in one file, read once and written once per run (only when something
changed), so a no-op build of a thousand targets does not write a thousand files.

Nothing in them can be checked offline against a guessed secret: the digests of environment values, and the key
that is made of them, are stored keyed (HMAC-SHA256) with the cache's own random salt (`salt` in the cache
directory, 0600), which never leaves it; records keyed with another salt (the cache was cleared) are not compared.
A file of the wrong shape is set aside with one warning.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from polybuild.support import cachedir

FILE_FORMAT = 3  # 3: keyed digests


class BuildRecords:
    def __init__(self, path: Path, salt_path: Path) -> None:
        self.path = path
        self.salt_path = salt_path
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] | None = None
        self._libraries: dict[str, dict[str, Any]] = {}
        self._dirty = False
        self._salt: bytes | None = None
        self._keyed: dict[str, str] = {}  # digest -> keyed digest (environment values repeat across tasks)

    def _loaded(self) -> dict[str, dict[str, Any]]:
        if self._records is None:
            self._records, self._libraries = {}, {}
            try:
                data = json.loads(self.path.read_bytes())
            except (OSError, ValueError):
                return self._records
            if isinstance(data, dict) and (data.get("format") != FILE_FORMAT or data.get("salt") != self._salt_id()):
                return self._records  # an older polybuild's, or keyed with another cache's salt: rewritten
            problem = _shape_problem(data)
            if problem is None:
                self._records, self._libraries = data["tasks"], data["libraries"]
            else:
                self._set_aside(problem)
        return self._records

    def _set_aside(self, problem: str) -> None:
        from polybuild.cache.store import warn

        aside = self.path.with_name(f"{self.path.name}.corrupt-{uuid.uuid4().hex[:8]}")
        warn(f"{self.path} is damaged ({problem}); set aside as {aside.name}, starting afresh")
        with contextlib.suppress(OSError):
            os.replace(self.path, aside)

    def _salt_id(self) -> str:
        """Names the salt the records were keyed with, without revealing it."""
        return self.keyed("the records' salt")

    def keyed(self, digest: str) -> str:
        """`digest` (of a key, or of an environment value) keyed with the cache's salt, as the records hold it."""
        found = self._keyed.get(digest)
        if found is None:
            if self._salt is None:
                self._salt = cachedir.load_salt(self.salt_path)
            found = self._keyed[digest] = hmac.digest(self._salt, digest.encode(), "sha256").hex()
        return found

    def sealed(self, parts: dict[str, Any]) -> dict[str, Any]:
        """Key parts (`KeyParts.to_json()`) as the records hold them: the key and environment digests keyed."""
        env = {name: value if value == "unset" else self.keyed(value) for name, value in parts["env"].items()}
        return {**parts, "env": env, "key": self.keyed(parts["key"])}

    def library(self, library_id: str) -> dict[str, Any] | None:
        """The files (path -> "mode digest") a library had when a task using it last succeeded."""
        with self._lock:
            self._loaded()
            return self._libraries.get(library_id)

    def library_digest(self, library_id: str) -> str | None:
        record = self.library(library_id)
        return record["digest"] if record else None

    def put_library(self, library_id: str, digest: str, files: dict[str, str]) -> None:
        with self._lock:
            self._loaded()
            old = self._libraries.get(library_id)
            if old is None or old["digest"] != digest:
                self._libraries[library_id] = {"digest": digest, "files": files}
                self._dirty = True

    def get(self, task_id: str) -> dict[str, Any] | None:
        """The task's record: its keyed key, output digest and sealed parts."""
        with self._lock:
            return self._loaded().get(task_id)

    def put(self, task_id: str, key: str, output: str, parts: dict[str, Any]) -> None:
        with self._lock:
            records = self._loaded()
            old = records.get(task_id)
            keyed = self.keyed(key)
            if old is None or old["key"] != keyed or old["output"] != output:
                records[task_id] = {"key": keyed, "output": output, "parts": self.sealed(parts)}
                self._dirty = True

    def save(self) -> None:
        from polybuild.support.fs import write_atomic

        with self._lock:
            if self._dirty and self._records is not None:
                data = {"format": FILE_FORMAT, "salt": self._salt_id(), "tasks": self._records,
                        "libraries": self._libraries}
                write_atomic(self.path, json.dumps(data, sort_keys=True, separators=(",", ":")), durable=False)
                self._dirty = False


def _shape_problem(data: object) -> str | None:
    """What makes the records' file one polybuild did not write, or None. Checked down to each record's fields;
    `explain` checks the parts it reads."""
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict) \
            or not isinstance(data.get("libraries"), dict):
        return "not an object with `tasks` and `libraries`"
    for task_id, r in data["tasks"].items():
        if not (isinstance(r, dict) and isinstance(r.get("key"), str) and isinstance(r.get("output"), str)
                and isinstance(r.get("parts"), dict)):
            return f"the record of {task_id} is malformed"
    for library_id, r in data["libraries"].items():
        if not (isinstance(r, dict) and isinstance(r.get("digest"), str) and isinstance(r.get("files"), dict)):
            return f"the record of library {library_id} is malformed"
    return None
