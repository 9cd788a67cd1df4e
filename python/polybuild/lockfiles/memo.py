"""Remembered clean lockfile checks: a lock whose inputs, tool and platform are unchanged is not checked again.

`cargo update --locked`, `go mod tidy -diff` + `go mod verify` and `uv lock --check` take seconds each (a minute on
a repository with dozens of go.sum files), yet their answer depends only on files in the tree, the tool, the
platform and a few environment variables. The key is the sha256 of all of those: the content of every file the
answer can depend on (through the stat cache, so an unchanged file costs one `lstat`), the tool's own version
output, the host platform, polybuild's version and the environment variables the tool reads. Only clean results are
remembered (a failure may be a network hiccup, and is what the user is about to fix); a hit replays its notes.

Entries live in polybuild's cache directory as `lockcheck/<key>.json`; like anything read from a cache they are
untrusted, so an entry that is not the expected shape is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from polybuild import __version__
from polybuild.support.fingerprint import StatCache, tree_digest_of
from polybuild.support.fs import write_atomic
from polybuild.support.platforms import host

FORMAT = 1


class Memo:
    """The remembered clean checks of one run; `enabled=False` (`lock check --no-cache`) reads nothing, but still
    records what it checks."""

    def __init__(self, cache_dir: Path, state_dir: Path, enabled: bool) -> None:
        self.dir = cache_dir / "lockcheck"
        self.enabled = enabled
        self.stat_cache = StatCache(state_dir / "statcache")

    def digests(self, root: Path, paths: Sequence[str]) -> dict[str, str]:
        """path -> sha256 of the files among `paths` that exist (a missing one is part of the answer too)."""
        present = [p for p in dict.fromkeys(paths) if os.path.lexists(root / p)]
        return {path: digest for path, (_, digest) in self.stat_cache.entries(root, present).items()}

    def key(self, kind: str, lock: str, inputs: dict[str, str], tool: str, settings: Sequence[str]) -> str:
        """The sha256 naming one check: what is checked, with which tool, where, and under which settings."""
        entries = {path: ("100644", digest) for path, digest in inputs.items()}
        text = json.dumps([FORMAT, __version__, kind, lock, tree_digest_of(entries), tool, host().name,
                           list(settings)])
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> list[str] | None:
        """The notes of a remembered clean check, or None when it must run."""
        if not self.enabled:
            return None
        try:
            data = json.loads((self.dir / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        notes = data.get("notes") if isinstance(data, dict) and data.get("key") == key else None
        return notes if isinstance(notes, list) and all(isinstance(n, str) for n in notes) else None

    def put(self, key: str, notes: list[str]) -> None:
        """Remember a clean check (best effort: an unwritable cache only costs the next run a re-check)."""
        with contextlib.suppress(OSError):
            write_atomic(self.dir / f"{key}.json", json.dumps({"key": key, "notes": notes}), durable=False)

    def save(self) -> None:
        with contextlib.suppress(OSError):
            self.stat_cache.save()


def environment(names: Sequence[str] = (), prefixes: Sequence[str] = ()) -> list[str]:
    """The values of the environment variables a tool reads, hashed (an index URL may carry a token)."""
    found = sorted((k, v) for k, v in os.environ.items() if k in names or k.startswith(tuple(prefixes)))
    return [f"{k}={hashlib.sha256(v.encode()).hexdigest()}" for k, v in found]
