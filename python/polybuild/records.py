"""What each task's last successful run in this workspace was made of (its key parts and output digest).

`explain` compares against these. They live in one file, read once and written once per run (only when something
changed), so a no-op build of a thousand targets does not write a thousand files.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

FILE_FORMAT = 2


class BuildRecords:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] | None = None
        self._libraries: dict[str, dict[str, Any]] = {}
        self._dirty = False

    def _loaded(self) -> dict[str, dict[str, Any]]:
        if self._records is None:
            try:
                data = json.loads(self.path.read_bytes())
                ok = data.get("format") == FILE_FORMAT
                self._records, self._libraries = (data["tasks"], data["libraries"]) if ok else ({}, {})
            except (OSError, ValueError, KeyError, AttributeError):
                self._records, self._libraries = {}, {}
        return self._records

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
        with self._lock:
            return self._loaded().get(task_id)

    def put(self, task_id: str, key: str, output: str, parts: dict[str, Any]) -> None:
        with self._lock:
            records = self._loaded()
            old = records.get(task_id)
            if old is None or old["key"] != key or old["output"] != output:
                records[task_id] = {"key": key, "output": output, "parts": parts}
                self._dirty = True

    def save(self) -> None:
        from polybuild.report import write_atomic

        with self._lock:
            if self._dirty and self._records is not None:
                data = {"format": FILE_FORMAT, "tasks": self._records, "libraries": self._libraries}
                write_atomic(self.path, json.dumps(data, sort_keys=True, separators=(",", ":")))
                self._dirty = False
