"""Advisory file locks: one build at a time per workspace (a second `polybuild build` waits instead of racing on
dist/ and logs), and one maker at a time of a shared cache entry such as a tool environment. (Different workspaces
share the cache safely without the workspace lock: every cache write is atomic.)"""

from __future__ import annotations

import contextlib
import fcntl
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path, waiting: str) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing); print `waiting` when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def workspace_lock(state_dir: Path) -> contextlib.AbstractContextManager[None]:
    from polybuild.support.statedir import ensure

    ensure(state_dir)
    return file_lock(state_dir / "lock", "polybuild: waiting for another polybuild run in this workspace to finish...")
