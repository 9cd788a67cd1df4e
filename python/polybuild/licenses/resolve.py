"""Choosing each package's license, in a fixed order: a deny.toml `clarify` whose file hashes still match; the
declared SPDX expression (from the manifest, else `SPDX-License-Identifier:` lines in its license files); legacy
Python metadata that names exactly one license; detection from the package's own license texts above the
confidence threshold; otherwise unlicensed (which the policy rejects)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from polybuild.licenses.expression import ExpressionError, licenses, normalize, parse
from polybuild.licenses.model import Package, Resolved

if TYPE_CHECKING:
    from polybuild.licenses.policy import Policy

# Trove classifiers and common legacy `License:` strings that name exactly one license.
_CLASSIFIERS = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: MIT No Attribution License (MIT-0)": "MIT-0",
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: BSD License": None,  # which BSD is not said: needs the text
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "License :: OSI Approved :: The Unlicense (Unlicense)": "Unlicense",
    "License :: OSI Approved :: zlib/libpng License": "Zlib",
    "License :: OSI Approved :: GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "License :: OSI Approved :: GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "License :: OSI Approved :: GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "License :: OSI Approved :: Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "License :: OSI Approved :: Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "License :: OSI Approved :: Universal Permissive License (UPL)": "UPL-1.0",
    "License :: CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}
_LEGACY = {
    "mit": "MIT", "mit license": "MIT", "the mit license": "MIT", "expat": "MIT",
    "apache 2.0": "Apache-2.0", "apache-2.0": "Apache-2.0", "apache 2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0", "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "bsd-2-clause": "BSD-2-Clause", "bsd 2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause",
    "bsd 3-clause": "BSD-3-Clause", "new bsd": "BSD-3-Clause", "new bsd license": "BSD-3-Clause",
    "isc": "ISC", "isc license": "ISC", "mpl-2.0": "MPL-2.0", "mpl 2.0": "MPL-2.0", "psf": "PSF-2.0",
    "unlicense": "Unlicense", "zlib": "Zlib", "cc0": "CC0-1.0", "public domain": None,
}

# A notice offering a choice between the license texts it names.
CHOICE = re.compile(r"\beither\b|\bat your option\b|\bdual[- ]licen[sc]ed\b", re.IGNORECASE)
# The store's deprecated "GPL with an exception" ids, whose text is the exception's: SPDX writes the GPL text and the
# exception together as `<GPL> WITH <exception>`.
_WITH_EXCEPTION = {
    "GPL-2.0-with-GCC-exception": ("GPL-2.0-only", "GCC-exception-2.0"),
    "GPL-2.0-with-autoconf-exception": ("GPL-2.0-only", "Autoconf-exception-2.0"),
    "GPL-2.0-with-bison-exception": ("GPL-2.0-only", "Bison-exception-2.2"),
    "GPL-2.0-with-classpath-exception": ("GPL-2.0-only", "Classpath-exception-2.0"),
    "GPL-2.0-with-font-exception": ("GPL-2.0-only", "Font-exception-2.0"),
    "GPL-3.0-with-GCC-exception": ("GPL-3.0-only", "GCC-exception-3.1"),
    "GPL-3.0-with-autoconf-exception": ("GPL-3.0-only", "Autoconf-exception-3.0"),
}
# A GNU license notice granting "either version 3, or (at your option) any later version".
_OR_LATER = re.compile(r"GNU\s+(Affero\s+|Lesser\s+|Library\s+)?General\s+Public\s+License\b[^.]*?\beither\s+version\s+"
                       r"(\d+(?:\.\d+)?)(?:\s+of\s+the\s+License)?,?\s+or\s+\(at\s+your\s+option\)\s+any\s+later\s+version",
                       re.IGNORECASE)
_FAMILIES = {"": "GPL", "affero": "AGPL", "lesser": "LGPL", "library": "LGPL"}
# The sample notice in the GNU licenses' "How to apply these terms" follows this placeholder: not a grant.
_TEMPLATE = re.compile(r"one line to give the (program|library)'s name", re.IGNORECASE)
# A REUSE-style tag on a line of its own (after any comment marker) at the top of a license file: the package
# declares its license there. Further down it belongs to the text (CAL-1.0's sample notices, the CC-BY-4.0 tag at
# the end of Community-Spec-1.0's text).
_TAG_LINES = 5
_SPDX_TAG = re.compile(r"^\W*SPDX-License-Identifier:\s*(.+?)\s*(?:\*/|-->)?\s*$", re.MULTILINE)

Detector = Callable[[Sequence[str]], list]  # texts -> [Detection(license, confidence) | None]


def resolve_all(packages: list[Package], policy: Policy, detect_many: Detector) -> list[Resolved]:
    """Resolve every package; the license texts of all packages are detected in one batch."""
    texts = [(i, f.path, f.text) for i, p in enumerate(packages) for f in p.files if f.kind == "license"]
    # A whole license pasted into Python's legacy `License:` field is a license text too.
    texts += [(i, "METADATA License", p.legacy) for i, p in enumerate(packages) if p.legacy and len(p.legacy) >= 100]
    # The same texts recur (a crate family's LICENSE-APACHE): each distinct one is detected once.
    unique = list(dict.fromkeys(text for _, _, text in texts))
    hits = dict(zip(unique, detect_many(unique) if unique else [], strict=True))
    detected: dict[int, list[Detected]] = {}
    for i, path, text in texts:
        hit = hits[text]
        if hit is not None:
            detected.setdefault(i, []).append((hit.license, hit.confidence, path, hit.close))
    return [resolve(p, policy, detected.get(i, [])) for i, p in enumerate(packages)]


# license (an id, or ids joined by " AND " for a file holding several texts), confidence, file, near ties
Detected = tuple[str, float, str, tuple[str, ...]]


def resolve(package: Package, policy: Policy, detected: list[Detected]) -> Resolved:
    """One package's license; `detected` is (license, confidence, file, near ties) for each license text."""
    warnings: list[str] = []
    clarified = _clarified(package, policy, warnings)
    if clarified:
        return Resolved(package, clarified, "clarify", warnings=warnings)
    confident = [d for d in detected if d[1] >= policy.threshold]
    declared = _declared(package, warnings) or _tagged(package, warnings)
    if declared:
        _compare(package, declared, confident, warnings)
        return Resolved(package, declared, "declared", warnings=warnings)
    legacy = _legacy(package)
    if legacy:
        return Resolved(package, legacy, "legacy", warnings=warnings)
    if confident:
        score = min(d[1] for d in confident)
        return Resolved(package, _from_texts(package, confident), "detected", confidence=score, warnings=warnings)
    best = max(detected, key=lambda d: d[1], default=None)
    if best:
        warnings.append(f"{best[2]} looks like {best[0]} only at {best[1]:.2f} (threshold {policy.threshold})")
    return Resolved(package, None, "unlicensed", warnings=warnings)


def _from_texts(package: Package, confident: list[Detected]) -> str:
    """The AND of the licenses the texts hold; texts that a notice in the package offers as a choice, naming each
    file or its license ("either of the licenses found in LICENSE.APACHE or LICENSE.BSD", "dual-licensed under MIT
    and Apache 2.0"), are one OR term instead."""
    by_file = {path: license.split(" AND ") for license, _, path, _ in confident}
    rewritten = _rewritten({lic for ids in by_file.values() for lic in ids}, package)
    by_file = {path: sorted({rewritten.get(lic, lic) for lic in ids}) for path, ids in by_file.items()}
    chosen: set[str] = set()
    terms: list[list[str]] = []
    for file in package.files:
        if file.kind == "documentation" or file.path in by_file or not CHOICE.search(file.text):
            continue
        named = [path for path, ids in by_file.items() if len(ids) == 1 and path not in chosen
                 and (_names_file(file.text, PurePosixPath(path).name) or _names_license(file.text, ids[0]))]
        if len(named) > 1:
            chosen.update(named)
            terms.append(sorted({by_file[path][0] for path in named}))
    rest = sorted({lic for path, ids in by_file.items() if path not in chosen for lic in ids})
    terms += [[lic] for lic in rest]
    joined = " AND ".join(f"({' OR '.join(t)})" if len(t) > 1 and len(terms) > 1 else " OR ".join(t) for t in terms)
    return normalize(joined)


def _rewritten(ids: set[str], package: Package) -> dict[str, str]:
    """What detected ids stand for together: a GPL text with an exception's text is one `GPL-3.0-only WITH
    GCC-exception-3.1` (numpy's wheels bundle libgfortran and ship both texts), and a GNU license is `-or-later`
    when a notice in the package grants "either version 3, or (at your option) any later version" (a license
    text never says so: detection reports `-only`)."""
    found = {lic: lic for lic in ids}
    for deprecated, (base, exception) in _WITH_EXCEPTION.items():
        if deprecated in ids:
            found[deprecated] = found[base] = f"{base} WITH {exception}"
    later = _later_versions(package)
    for lic, now in found.items():
        base, _, exception = now.partition(" WITH ")
        if base.endswith("-only") and base.removesuffix("-only") in later:
            found[lic] = base.removesuffix("-only") + "-or-later" + (f" WITH {exception}" if exception else "")
    return {lic: now for lic, now in found.items() if now != lic}


def _later_versions(package: Package) -> set[str]:
    """The GNU licenses ("GPL-3.0", "LGPL-2.1") that a notice in the package's texts grants in "any later
    version" (the sample notice in the licenses' own "How to apply" section aside)."""
    found = set()
    for file in package.files:
        if file.kind == "documentation":
            continue
        for grant in _OR_LATER.finditer(file.text):
            if _TEMPLATE.search(file.text, max(0, grant.start() - 400), grant.start()):
                continue
            family = _FAMILIES[(grant[1] or "").strip().lower()]
            version = grant[2] if "." in grant[2] else f"{grant[2]}.0"
            found.add(f"{family}-{version}")
    return found


def _names_license(text: str, license_id: str) -> bool:
    """Whether `text` names the license `license_id` by its family ("dual-licensed under MIT and Apache 2.0")."""
    family = re.match(r"[A-Za-z]+", license_id)
    return family is not None and re.search(rf"\b{re.escape(family[0])}\b", text, re.IGNORECASE) is not None


def _names_file(text: str, name: str) -> bool:
    """Whether `text` names the file `name` (not as part of a longer name; a sentence's full stop may follow)."""
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-]|\.\w)", text) is not None


def _clarified(package: Package, policy: Policy, warnings: list[str]) -> str | None:
    entry = policy.clarification_for(package.ecosystem, package.name, package.version)
    if entry is None:
        return None
    texts = {f.path: f.text for f in package.files}
    for path, expected in entry.files:
        actual = zlib.crc32(texts[path].encode()) if path in texts else None
        if actual != expected:
            got = "missing" if actual is None else f"0x{actual:08x}"
            warnings.append(f"clarify for {package.name} ignored: {path} is {got}, deny.toml expects "
                            f"0x{expected:08x} (the license may have changed: review it and update the hash)")
            return None
    return normalize(entry.expression)


def _declared(package: Package, warnings: list[str]) -> str | None:
    if not package.declared:
        return None
    try:
        return normalize(package.declared)
    except ExpressionError as exc:
        warnings.append(f"declared license is not an SPDX expression: {exc}")
        return None


def _tagged(package: Package, warnings: list[str]) -> str | None:
    """The AND of the `SPDX-License-Identifier:` expressions in the package's license files (each once)."""
    found: dict[str, None] = {}
    for file in package.files:
        if file.kind != "license":
            continue
        for tag in _SPDX_TAG.findall("\n".join(file.text.splitlines()[:_TAG_LINES])):
            try:
                found[normalize(tag)] = None
            except ExpressionError as exc:
                warnings.append(f"{file.path}: SPDX-License-Identifier is not an SPDX expression: {exc}")
    if not found:
        return None
    return normalize(" AND ".join(f"({tag})" for tag in found)) if len(found) > 1 else next(iter(found))


def _legacy(package: Package) -> str | None:
    """Legacy Python metadata, only when it names exactly one license: every `License ::` classifier must name it
    (the unspecific BSD classifier is satisfied by a named BSD-* license), else the texts must tell."""
    if any(c not in _CLASSIFIERS and c != "License :: OSI Approved" for c in package.classifiers):
        return None  # a license the table does not know: the texts must tell
    expression = _legacy_expression(package)
    if expression:
        return expression
    named = [_CLASSIFIERS.get(c) for c in package.classifiers]
    if package.legacy and len(package.legacy) < 100:
        named.append(_LEGACY.get(package.legacy.strip().lower()))
    found = {license_id for license_id in named if license_id}
    if len(found) != 1:
        return None
    (license_id,) = found
    unspecific_bsd = "License :: OSI Approved :: BSD License" in package.classifiers
    return license_id if not unspecific_bsd or license_id.startswith("BSD-") else None


def _legacy_expression(package: Package) -> str | None:
    """A legacy `License:` field that is an SPDX expression of known licenses (blake3: `CC0-1.0 OR Apache-2.0`)
    says which choice the texts are, unless a classifier names a license it lacks; detection alone would AND them."""
    from polybuild.licenses.detect import canonical_text

    if not package.legacy or len(package.legacy) >= 100:
        return None
    try:
        ids = {lic.id for lic in licenses(parse(package.legacy))}
    except ExpressionError:
        return None
    named = {_CLASSIFIERS.get(c) for c in package.classifiers} - {None}
    if not ids or any(canonical_text(i) is None for i in ids) or not named <= ids:
        return None
    return normalize(package.legacy)


def _compare(package: Package, declared: str, confident: list[Detected], warnings: list[str]) -> None:
    """Warn when a license text says something the declaration does not (a near tie that the declaration names,
    such as Apache-2.0 for a text that reads as Pixar's modified Apache, is agreement); texts are read as
    `_from_texts` reads them (a GPL text and an exception's: one `GPL-3.0-or-later WITH GCC-exception-3.1`)."""
    named = {lic.id.lower() for lic in licenses(parse(declared))}
    rewritten = _rewritten({lic for found, _, _, _ in confident for lic in found.split(" AND ")}, package)
    for found, score, path, close in confident:
        for lic in dict.fromkeys(rewritten.get(x, x) for x in found.split(" AND ")):
            if not named & {x.lower() for x in (lic.partition(" WITH ")[0], *close)}:
                warnings.append(f"declared '{declared}' but {path} reads as {lic} ({score:.2f})")
