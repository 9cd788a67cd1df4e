"""Reading an included config file from a git repository at a revision.

Each repository is fetched into a bare repository under the local cache (`<cache>/git/<hash of the URL>`), so a
commit is fetched once and read with `git show COMMIT:PATH` afterwards; polybuild.lock keeps the content too, so a
locked git include costs no git call at all. Git never prompts (a build must not hang on a password question).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

from polybuild.support.errors import UserError
from polybuild.support.process import git

_FULL_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?\Z")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^[\w.-]+@[\w.-]+:")


def is_url(location: str) -> bool:
    """A URL (`https://...`, `ssh://...`, `git@host:path`), as opposed to a local path."""
    return bool(_URL.match(location))


def resolve(url: str, rev: str) -> str:
    """The commit `rev` (a commit, tag or branch) names in the repository at `url` now."""
    repo = _cache_repo(url)
    if _FULL_SHA.match(rev) and _has_commit(repo, rev):
        return rev
    fetched = git(repo, "fetch", "--quiet", "--no-tags", "--", url, rev, check=False, env=_ENV)
    if fetched.returncode == 0:
        return git(repo, "rev-parse", "--verify", "FETCH_HEAD^{commit}", env=_ENV).stdout.strip()
    # An abbreviated commit cannot be fetched by name: fetch every branch and tag, then look it up.
    everything = git(repo, "fetch", "--quiet", "--force", "--", url, "+refs/heads/*:refs/remotes/include/*",
                     "+refs/tags/*:refs/tags/*", check=False, env=_ENV)
    found = git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False, env=_ENV)
    if everything.returncode != 0 or found.returncode != 0:
        reason = (fetched.stderr or everything.stderr).strip().splitlines()
        raise UserError(f"cannot read revision '{rev}' of git repository {url}"
                        + (f": {reason[-1]}" if reason else ""),
                        hint="check `git` and `rev` of the include (a commit, tag or branch of that repository)")
    return found.stdout.strip()


def show(url: str, commit: str, path: str) -> bytes | None:
    """The bytes of `path` at `commit`, or None when the commit has no such file."""
    repo = _cache_repo(url)
    if not _has_commit(repo, commit):
        resolve(url, commit)
    shown = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, env=_ENV)
    return shown.stdout if shown.returncode == 0 else None


_ENV = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}


def _cache_repo(url: str) -> Path:
    from polybuild.support.cachedir import default_dir

    repo = default_dir() / "git" / hashlib.sha256(url.encode()).hexdigest()[:24]
    if not (repo / "HEAD").is_file():
        repo.parent.mkdir(parents=True, exist_ok=True)
        tmp = repo.with_name(f".{repo.name}.{os.getpid()}.tmp")
        git(repo.parent, "init", "--quiet", "--bare", str(tmp), env=_ENV)
        try:
            os.rename(tmp, repo)
        except OSError:  # another run created it first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return repo


def _has_commit(repo: Path, commit: str) -> bool:
    return git(repo, "cat-file", "-e", f"{commit}^{{commit}}", check=False, env=_ENV).returncode == 0
