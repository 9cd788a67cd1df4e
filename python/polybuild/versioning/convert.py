"""PEP 440 (Python) and SemVer (Cargo) spellings of one release version, converted both ways.

Python packaging and Cargo disagree on how a pre-release or a post-release is written (`1.2.0rc1` vs `1.2.0-rc.1`,
`0.9.0.post1` vs `0.9.0-post.1`); a release stamps the same version in both, so each spelling is derived from one
parsed value and anything that only one side can express is refused up front, before any file is touched.

SemVer spelling chosen here: `-alpha.N`, `-beta.N`, `-rc.N`, `-post.N`, `-dev.N`, joined in PEP 440's order
(pre, post, dev), e.g. `1.2.0rc1.dev2` <-> `1.2.0-rc.1.dev.2`. Reading also accepts the glued forms `-rc1`, `-post1`
(`0.9.0-post1`), `-a1`, `-b1` and `-c1`. Release numbers are padded to three (`1.2` -> `1.2.0`).
Caveat: SemVer orders `0.9.0-post.1` before `0.9.0` (PEP 440 after it); the conversion keeps identity, not order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from polybuild.support.errors import UserError
from polybuild.support.versions import SEMVER as _SEMVER

_IDENTIFIER = re.compile(r"^(?P<name>[A-Za-z]+)(?P<number>\d+)?$")
_PRE_NAMES = {"alpha": "a", "a": "a", "beta": "b", "b": "b", "rc": "rc", "c": "rc"}
_SEMVER_PRE = {"a": "alpha", "b": "beta", "rc": "rc"}
_SEGMENT_ORDER = ("pre", "post", "dev")


class VersionError(UserError):
    """A version string that is invalid, or valid in one scheme but not expressible in the other."""


@dataclass(frozen=True)
class ReleaseVersion:
    """One version with its spelling per ecosystem: `pep440` for pyproject files, `semver` for Cargo."""

    pep440: str
    semver: str


def parse_version(text: str) -> ReleaseVersion:
    """Accept either spelling (SemVer first, since PEP 440 would also swallow some SemVer forms loosely)."""
    text = text.strip()
    pep440 = semver_to_pep440(text) if _SEMVER.match(text) else _normalized_pep440(text)
    return ReleaseVersion(pep440=pep440, semver=pep440_to_semver(pep440))


def pep440_to_semver(text: str) -> str:
    """`1.2.0rc1` -> `1.2.0-rc.1`; epochs, local labels and more than three release numbers are errors."""
    version = _checked(text)
    identifiers = []
    if version.pre:
        identifiers += [_SEMVER_PRE[version.pre[0]], str(version.pre[1])]
    if version.post is not None:
        identifiers += ["post", str(version.post)]
    if version.dev is not None:
        identifiers += ["dev", str(version.dev)]
    release = ".".join(str(n) for n in _padded(version.release))
    return f"{release}-{'.'.join(identifiers)}" if identifiers else release


def semver_to_pep440(text: str) -> str:
    """`1.2.0-rc.1` -> `1.2.0rc1`; pre-release identifiers PEP 440 has no word for are errors."""
    m = _SEMVER.match(text.strip())
    if not m:
        raise VersionError(f"'{text}' is not a SemVer version",
                           hint="SemVer is MAJOR.MINOR.PATCH with an optional -PRERELEASE, e.g. 1.2.0-rc.1")
    if m["build"]:
        raise VersionError(f"'{text}' has build metadata '+{m['build']}', which PEP 440 cannot express "
                           "(its local labels are refused by PyPI)")
    segments = _pre_release_segments(text, m["pre"]) if m["pre"] else {}
    pre = segments.get("pre", "")
    post = f".post{segments['post']}" if "post" in segments else ""
    dev = f".dev{segments['dev']}" if "dev" in segments else ""
    return _normalized_pep440(f"{m['major']}.{m['minor']}.{m['patch']}{pre}{post}{dev}")


def _pre_release_segments(text: str, pre_release: str) -> dict[str, str]:
    """Read `rc.1.post.2` (or `rc1.post2`) into {"pre": "rc1", "post": "2"}, in PEP 440's order, each at most once."""
    parts = _pair_identifiers(text, pre_release.split("."))
    segments: dict[str, str] = {}
    for name, number in parts:
        kind = "pre" if name in _PRE_NAMES else name
        if kind not in _SEGMENT_ORDER:
            raise VersionError(f"'{text}': pre-release identifier '{name}' has no PEP 440 equivalent",
                               hint="use alpha, beta, rc, post or dev, each with a number (e.g. -rc.1)")
        if segments and _SEGMENT_ORDER.index(kind) <= _SEGMENT_ORDER.index(list(segments)[-1]):
            raise VersionError(f"'{text}': '{name}' is out of order or repeated; PEP 440 allows "
                               "one each of pre (alpha/beta/rc), post and dev, in that order")
        segments[kind] = f"{_PRE_NAMES[name]}{number}" if kind == "pre" else number
    return segments


def _pair_identifiers(text: str, identifiers: list[str]) -> list[tuple[str, str]]:
    """[`rc`, `1`, `post2`] -> [(rc, 1), (post, 2)]: a name is followed by its number, or carries it glued on."""
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(identifiers):
        m = _IDENTIFIER.match(identifiers[i])
        if not m:
            raise VersionError(f"'{text}': pre-release identifier '{identifiers[i]}' has no PEP 440 equivalent",
                               hint="use alpha, beta, rc, post or dev, each with a number (e.g. -rc.1)")
        number = m["number"]
        if number is None and i + 1 < len(identifiers) and identifiers[i + 1].isdigit():
            i += 1
            number = identifiers[i]
        if number is None:
            raise VersionError(f"'{text}': '{m['name']}' needs a number (e.g. {m['name']}.1)")
        pairs.append((m["name"].lower(), str(int(number))))
        i += 1
    return pairs


def _normalized_pep440(text: str) -> str:
    """The canonical PEP 440 spelling, release padded to three numbers, after the same checks as for SemVer."""
    version = _checked(text)
    release = ".".join(str(n) for n in _padded(version.release))
    pre = f"{version.pre[0]}{version.pre[1]}" if version.pre else ""
    post = f".post{version.post}" if version.post is not None else ""
    dev = f".dev{version.dev}" if version.dev is not None else ""
    return f"{release}{pre}{post}{dev}"


def _checked(text: str) -> Version:
    """Parse PEP 440 and refuse what has no SemVer counterpart, saying why."""
    try:
        version = Version(text)
    except InvalidVersion:
        raise VersionError(f"'{text}' is not a valid version (neither PEP 440 nor SemVer)",
                           hint="e.g. 1.2.0, 1.2.0rc1 (PEP 440) or 1.2.0-rc.1 (SemVer)") from None
    if version.epoch:
        raise VersionError(f"'{text}' has an epoch ('{version.epoch}!'), which SemVer and Cargo cannot express")
    if version.local:
        raise VersionError(f"'{text}' has a local label ('+{version.local}'): PyPI refuses it and Cargo ignores "
                           "build metadata when matching pins, so it cannot be a release version")
    if len(version.release) > 3:
        raise VersionError(f"'{text}' has {len(version.release)} release numbers; SemVer has exactly three "
                           "(MAJOR.MINOR.PATCH)")
    return version


def _padded(release: tuple[int, ...]) -> tuple[int, ...]:
    return release + (0,) * (3 - len(release))
