"""The workspace's state directory (`.polybuild/` by default): made in one place, so that it ignores itself.

When polybuild creates the directory it writes a `.gitignore` of `*` into it, as uv does for `.venv`: git then
never lists what polybuild keeps there (logs, records, memos), in repositories that never mention polybuild in
their own .gitignore too, and `git ls-files` does not walk it on every run. A directory polybuild did not create
(a configured `state-dir` that already existed) is left as it is.
"""

from __future__ import annotations

from pathlib import Path

GITIGNORE = "# Created by polybuild: its state directory ignores itself.\n*\n"


def ensure(state_dir: Path) -> Path:
    """`state_dir`, created if missing, with its `.gitignore` when this call created it."""
    if state_dir.is_dir():
        return state_dir
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        state_dir.mkdir()
    except FileExistsError:  # another run made it first, and writes the file itself
        return state_dir
    ignore_itself(state_dir)
    return state_dir


def ignore_itself(state_dir: Path) -> None:
    """Write the state directory's `.gitignore` (also for `polybuild init`, in a directory an older polybuild made)."""
    from polybuild.support.fs import write_atomic

    write_atomic(state_dir / ".gitignore", GITIGNORE, durable=False)  # lost, it only costs a noisy `git status`
