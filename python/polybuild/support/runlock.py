"""One build at a time per workspace: a second `polybuild build` waits instead of racing on dist/ and logs.
(Different workspaces share the cache safely without it: every cache write is atomic.)"""

from __future__ import annotations

import contextlib
import fcntl
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def workspace_lock(state_dir: Path) -> Iterator[None]:
    from polybuild.support.statedir import ensure

    ensure(state_dir)
    with open(state_dir / "lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("polybuild: waiting for another polybuild run in this workspace to finish...", file=sys.stderr,
                  flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
