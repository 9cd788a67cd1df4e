"""Whether a string is a version at all (PEP 440 or SemVer), by regular expression alone: config validation runs
on every load, and `packaging` costs more to import than the whole check."""

from __future__ import annotations

import re

SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$"
)
# PEP 440's grammar (packaging.version.VERSION_PATTERN), anchored.
PEP440 = re.compile(
    r"^v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*"
    r"(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?"
    r"(?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?"
    r"(?:[-_.]?dev[-_.]?[0-9]*)?"
    r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$",
    re.IGNORECASE,
)


def is_version(text: str) -> bool:
    """A PEP 440 or SemVer version, with nothing around it (no spaces, no flags)."""
    return bool(SEMVER.fullmatch(text) or PEP440.fullmatch(text))
