"""What each task's last successful run in this workspace was made of (its key parts and output digest).

`explain` compares against these. They live in one file, read once and written once per run (only when something
changed), so a no-op build of a thousand targets does not write a thousand files.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

FILE_FORMAT = 1


class BuildRecords:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] | None = None
        self._dirty = False

    def _loaded(self) -> dict[str, dict[str, Any]]:
        if self._records is None:
            try:
                data = json.loads(self.path.read_bytes())
                self._records = data["tasks"] if data.get("format") == FILE_FORMAT else {}
            except (OSError, ValueError, KeyError, AttributeError):
                self._records = {}
        return self._records

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
                write_atomic(self.path, json.dumps({"format": FILE_FORMAT, "tasks": self._records},
                                                   sort_keys=True, separators=(",", ":")))
                self._dirty = False
