"""The version from git: the latest `vX.Y.Z` tag reachable from HEAD, plus the distance for dev builds.

At the tag the version is the tag's. N commits after it, it is the next version as a dev release (as
setuptools-scm guesses it): `v1.2.0` + 3 -> `1.2.1.dev3`, `v1.2.0rc1` + 3 -> `1.2.0rc2.dev3`, so a dev build always
sorts after the tag it grew from and before the release it leads to.
"""

from __future__ import annotations

import re
from pathlib import Path

from packaging.version import Version

from polybuild.support.errors import UserError
from polybuild.support.process import git
from polybuild.versioning.convert import ReleaseVersion, parse_version

_DESCRIBE = re.compile(r"^(?P<tag>.+)-(?P<distance>\d+)-g[0-9a-f]+$")


def from_git(root: Path) -> ReleaseVersion:
    """The version of the commit checked out at `root` (one `git describe` call)."""
    proc = git(root, "describe", "--tags", "--long", "--match", "v[0-9]*", check=False)
    m = _DESCRIBE.match(proc.stdout.strip()) if proc.returncode == 0 else None
    if m is None:
        raise UserError(f"no version tag (vX.Y.Z) is reachable from HEAD in {root}",
                        hint="tag a release, e.g. `git tag -a v0.1.0 -m v0.1.0`, or pass the version explicitly")
    return next_dev(parse_version(m["tag"].removeprefix("v")), int(m["distance"]))


def next_dev(tagged: ReleaseVersion, distance: int) -> ReleaseVersion:
    """`tagged` itself at distance 0; otherwise the next version's `.dev<distance>`."""
    if distance == 0:
        return tagged
    v = Version(tagged.pep440)
    release = ".".join(map(str, v.release))
    if v.is_devrelease:
        return parse_version(f"{v.base_version}{_pre(v)}.dev{v.dev + distance}")
    if v.post is not None:
        return parse_version(f"{release}{_pre(v)}.post{v.post + 1}.dev{distance}")
    if v.pre is not None:
        return parse_version(f"{release}{v.pre[0]}{v.pre[1] + 1}.dev{distance}")
    major, minor, patch = (*v.release, 0, 0)[:3]
    return parse_version(f"{major}.{minor}.{patch + 1}.dev{distance}")


def _pre(v: Version) -> str:
    return f"{v.pre[0]}{v.pre[1]}" if v.pre else ""
