"""Attribution files: ATTRIBUTIONS.md (what is covered, counts, license totals, system libraries) and one file per
ecosystem with every third-party package's license and NOTICE texts, as pure functions from data to Markdown.

The texts come from the packages themselves (`Package.files`, at the pinned version), never from an upstream branch.
A package that ships no license text gets the canonical text of its license(s), flagged as a fallback, or a flagged
"no license text found" line: an auditor can grep for both markers. A text shared by several packages (the Apache-2.0
boilerplate) is printed once at the end and referenced by its SHA-256, the way cargo-about groups texts.
The workspace's own packages are not third-party and are left out. For one artifact or image, pass a Subject for it
and the packages it ships.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from polybuild.licenses.expression import canonical
from polybuild.licenses.model import ECOSYSTEMS, LicenseFile, Resolved
from polybuild.licenses.sbom import Subject, ordered

CanonicalText = Callable[[str], str | None]

ECOSYSTEM_TITLES = {"cargo": "Rust", "pypi": "Python", "golang": "Go"}
FALLBACK_MARKER = "⚠ FALLBACK"
NO_TEXT_MARKER = "⚠ NO LICENSE TEXT FOUND"
# Phrases of the generated introductions: with the title, they tell polybuild's own files from hand-written ones.
_TITLE = re.compile(r"^# (?:Attributions|(?:Rust|Python|Go) attributions) for \S")
SUMMARY_MARK = "their licenses, and the system libraries declared in the polybuild config"
ECOSYSTEM_MARK = "Each package's license and NOTICE texts are reproduced from the package itself"
_HOW = {"declared": "the declared license", "clarify": "a clarification in the polybuild config",
        "legacy": "Python's legacy License field or classifiers", "detected": "detection in the package's texts",
        "unlicensed": "nothing: no license could be determined"}


@dataclass(frozen=True)
class Text:
    """One text printed for a package: from the package itself, or a canonical fallback."""

    title: str  # the path inside the package and the kind, or "`MIT` (canonical text, fallback)"
    text: str
    license_id: str | None = None  # for a canonical text: the license it is the text of

    @property
    def sha256(self) -> str:
        return _sha256(self.text)


def ecosystem_file(ecosystem: str) -> str:
    """The per-ecosystem file name: ATTRIBUTIONS-Rust.md, -Python.md, -Go.md."""
    return f"ATTRIBUTIONS-{ECOSYSTEM_TITLES[ecosystem]}.md"


def third_party(resolved: Iterable[Resolved], ecosystem: str | None = None) -> list[Resolved]:
    """The packages an attribution lists: not the workspace's own, sorted by name and version."""
    chosen = [r for r in ordered(resolved) if not r.package.workspace and ecosystem in (None, r.package.ecosystem)]
    return sorted(chosen, key=lambda r: (r.package.ecosystem, r.package.name.lower(), r.package.name,
                                         _natural(r.package.version)))


def generated(text: str) -> bool:
    """Whether a file is one polybuild wrote (its title and its introduction), not a hand-written one."""
    first, _, rest = text.partition("\n")
    return bool(_TITLE.match(first)) and (SUMMARY_MARK in rest or ECOSYSTEM_MARK in rest)


def hand_written(names: Iterable[str], directory: Path) -> list[str]:
    """Those of `names` that exist in `directory` and were not written by polybuild: never overwritten unasked."""
    found = []
    for name in sorted(names):
        path = directory / name
        if path.is_file() and not generated(path.read_text(encoding="utf-8", errors="replace")):
            found.append(name)
    return found


# --- ATTRIBUTIONS.md -----------------------------------------------------------------------------------------------


def summary_markdown(subject: Subject, resolved: Iterable[Resolved], system_libraries: list[dict],
                     left_out: list[str] = ()) -> str:
    """ATTRIBUTIONS.md: what it covers (and what the config left out of the scan), packages per ecosystem, license
    totals, what needs attention and the system libraries declared in the config."""
    packages = third_party(resolved)
    lines = [f"# Attributions for {subject.name} {subject.version}", "",
             f"This file covers {subject.describe()}: the {len(packages)} third-party packages it is built from, "
             f"{SUMMARY_MARK}. The license and NOTICE texts of every package are in the per-ecosystem files linked "
             "below."]
    if subject.sha256:
        lines += ["", f"SHA-256 of the {subject.kind}: `{subject.sha256}`"]
    if left_out:
        lines += ["", f"**Not covered:** {', '.join(_code(r) for r in left_out)}, left out of the license scan by "
                  "`[licenses] exclude-targets` / `exclude-extras`: the packages only they ship are not listed here."]
    lines += ["", *_ecosystem_table(packages), "", *_license_totals(packages)]
    lines += _attention(packages)
    lines += ["", *_system_libraries(system_libraries)]
    return "\n".join(lines) + "\n"


def _ecosystem_table(packages: list[Resolved]) -> list[str]:
    counts = Counter(r.package.ecosystem for r in packages)
    rows = [f"| {ECOSYSTEM_TITLES[eco]} ({eco}) | {counts[eco]} | [{ecosystem_file(eco)}]({ecosystem_file(eco)}) |"
            for eco in ECOSYSTEMS if counts[eco]]
    return ["## Packages", "", "| Ecosystem | Packages | License texts |", "|---|---:|---|", *rows]


def _license_totals(packages: list[Resolved]) -> list[str]:
    """Packages per license expression, equivalent expressions together (`MIT OR Apache-2.0` is `Apache-2.0 OR
    MIT`), each written in its canonical form."""
    counts = Counter(canonical(r.expression) if r.expression else None for r in packages)
    rows = [f"| {_code(expr) if expr else '*none found*'} | {n} |"
            for expr, n in sorted(counts.items(), key=lambda item: (-item[1], item[0] is None, item[0] or ""))]
    return ["## Licenses", "", "| License | Packages |", "|---|---:|", *rows]


def _attention(packages: list[Resolved]) -> list[str]:
    """Packages an auditor must look at: no license found, or no text shipped."""
    rows = [f"| {ECOSYSTEM_TITLES[r.package.ecosystem]} | {_cell(r.package.name)} | {_cell(r.package.version)} "
            f"| {reason} |" for r in packages if (reason := _flag(r))]
    if not rows:
        return []
    return ["", "## Needs attention", "", "| Ecosystem | Package | Version | Why |", "|---|---|---|---|", *rows]


def _flag(r: Resolved) -> str:
    if r.expression is None:
        return "no license found"
    if not _license_files(r):
        return "ships no license text (canonical text given as a fallback)"
    return ""


def _system_libraries(libraries: list[dict]) -> list[str]:
    head = ["## System libraries", ""]
    if not libraries:
        return [*head, "None declared in the polybuild config."]
    fields = ("name", "version", "license", "note")
    rows = sorted(tuple(str(lib.get(f) or "") for f in fields) for lib in libraries)
    return [*head, "Declared in the polybuild config (linked or shipped, not found by the inventory).", "",
            "| Name | Version | License | Note |", "|---|---|---|---|",
            *("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)]


# --- ATTRIBUTIONS-<Ecosystem>.md -----------------------------------------------------------------------------------


def ecosystem_markdown(subject: Subject, ecosystem: str, resolved: Iterable[Resolved],
                       canonical_text: CanonicalText) -> str:
    """Every third-party package of one ecosystem: its licenses and how they were chosen, a link to the pinned
    version, and every license and NOTICE text it ships (or a flagged fallback)."""
    packages = third_party(resolved, ecosystem)
    texts = {r.package.purl: _texts(r, canonical_text) for r in packages}
    shared = _shared(texts)
    title = ECOSYSTEM_TITLES[ecosystem]
    lines = [f"# {title} attributions for {subject.name} {subject.version}", "",
             f"The {len(packages)} third-party {title} ({ecosystem}) packages of {subject.describe()}, sorted by name "
             f"and version. {ECOSYSTEM_MARK}, at the pinned version. Where a package ships no license text, the "
             f"canonical text is given instead, marked **{FALLBACK_MARKER}**; where none is known either, the "
             f"package is marked **{NO_TEXT_MARKER}**. Texts shared by several "
             "packages are printed once, under [Shared texts](#shared-texts)."]
    lines += ["", "| Package | Version | License |", "|---|---|---|"]
    lines += [f"| [{_cell(r.package.name)}](#{_anchor(r)}) | {_cell(r.package.version)} | "
              f"{_code(r.expression) if r.expression else '*none found*'} |" for r in packages]
    for r in packages:
        lines += ["", *_package_section(r, texts[r.package.purl], shared)]
    if shared:
        lines += ["", "## Shared texts", "", *_shared_section(packages, texts, shared)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Texts:
    """What is printed for one package."""

    own: list[Text]  # shipped in the package: licenses first, then NOTICEs, by path
    fallback: list[Text]  # canonical texts, only when the package ships no license text
    missing: list[str]  # license ids with neither

    @property
    def printed(self) -> list[Text]:
        return [*self.fallback, *self.own]


def _texts(r: Resolved, canonical_text: CanonicalText) -> Texts:
    own = [Text(f"{f.path} ({f.kind})", f.text) for f in sorted(r.package.files, key=lambda f: (f.kind, f.path))]
    if _license_files(r) or r.expression is None:
        return Texts(own, [], [])
    canonical = {lic: canonical_text(lic) for lic in _license_ids(r.expression)}
    fallback = [Text(f"{_code(lic)} (canonical text, fallback)", text, lic) for lic, text in canonical.items() if text]
    return Texts(own, fallback, [lic for lic, text in canonical.items() if not text])


def _package_section(r: Resolved, texts: Texts, shared: set[str]) -> list[str]:
    p = r.package
    lines = [f'<a id="{_anchor(r)}"></a>', "", f"## {p.name} {p.version}", "",
             f"- Declared license: {_code(p.declared) if p.declared else '*none declared*'}"]
    if p.legacy or p.classifiers:
        legacy = "; ".join(_code(v) for v in (p.legacy, *p.classifiers) if v)
        lines.append(f"- Legacy license metadata: {legacy}")
    lines.append(f"- Chosen license: {_code(r.expression) if r.expression else '*none*'}, from {_how(r)}")
    lines.append(f"- Pinned version: {f'<{p.url}>' if p.url else '*no link*'} ({p.source or 'unknown source'})")
    lines += [f"- Warning: {w}" for w in r.warnings]
    lines += ["", *_flag_lines(r, texts)]
    for text in texts.printed:
        lines += ["", f"### {text.title}", "", *_text_or_reference(text, shared)]
    return lines


def _flag_lines(r: Resolved, texts: Texts) -> list[str]:
    if _license_files(r):
        return [f"Texts shipped in the package: {len(texts.own)}."]
    if r.expression is None:
        return [f"**{NO_TEXT_MARKER}**: the package ships no license text and no license could be determined."]
    flags = [f"**{NO_TEXT_MARKER}** for {_code(lic)}: the package ships no license text and no canonical text is "
             "known." for lic in texts.missing]
    if texts.fallback:
        ids = ", ".join(_code(t.license_id or "") for t in texts.fallback)
        flags.insert(0, f"**{FALLBACK_MARKER}**: the package ships no license text. What follows is the canonical "
                        f"text of {ids}, not a copy from the package.")
    return [line for flag in flags for line in ("", flag)][1:]


def _license_files(r: Resolved) -> list[LicenseFile]:
    return [f for f in r.package.files if f.kind == "license"]


def _license_ids(expression: str) -> list[str]:
    """The license and exception ids an expression names, in order, each once."""
    words = re.findall(r"[^\s()]+", expression)
    return list(dict.fromkeys(w for w in words if w.upper() not in ("AND", "OR", "WITH")))


def _shared(texts: dict[str, Texts]) -> set[str]:
    """The digests of texts that more than one package has: printed once, referenced from each package."""
    users = Counter(sha for package_texts in texts.values() for sha in {t.sha256 for t in package_texts.printed})
    return {sha for sha, n in users.items() if n > 1}


def _text_or_reference(text: Text, shared: set[str]) -> list[str]:
    if text.sha256 in shared:
        return [f"Same text as [shared text {text.sha256[:12]}](#text-{text.sha256[:12]}) (SHA-256 {text.sha256})."]
    return _fenced(text.text)


def _shared_section(packages: list[Resolved], texts: dict[str, Texts], shared: set[str]) -> list[str]:
    """Each shared text once, in order of first use, with the packages that ship it."""
    users: dict[str, list[str]] = {}
    first: dict[str, Text] = {}
    for r in packages:
        for text in texts[r.package.purl].printed:
            if text.sha256 in shared:
                first.setdefault(text.sha256, text)
                users.setdefault(text.sha256, []).append(f"{r.package.name} {r.package.version}: {text.title}")
    lines: list[str] = []
    for sha, text in first.items():
        lines += [f'<a id="text-{sha[:12]}"></a>', "", f"### Shared text {sha[:12]}", ""]
        lines += [f"SHA-256 {sha}, used by:", ""]
        lines += [f"- {user}" for user in users[sha]]
        lines += ["", *_fenced(text.text), ""]
    return lines[:-1]


# --- Markdown helpers ----------------------------------------------------------------------------------------------


def _how(r: Resolved) -> str:
    how = _HOW.get(r.how, r.how)
    return f"{how} (confidence {r.confidence:.2f})" if r.confidence is not None else how


def _fenced(text: str) -> list[str]:
    """A fence longer than any backtick run inside, so that no text can close it early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", text.rstrip("\n"), fence]


def _code(value: str) -> str:
    if "`" not in value:
        return f"`{value}`"
    return f"`` {value} ``"


def _cell(value: str) -> str:
    """A table cell: a `|` would end the cell, a newline the row."""
    return value.replace("|", "\\|").replace("\n", " ")


def _anchor(r: Resolved) -> str:
    readable = re.sub(r"[^a-z0-9]+", "-", f"{r.package.name}-{r.package.version}".lower()).strip("-")
    return f"pkg-{readable}-{_sha256(r.package.purl)[:8]}"


def _natural(version: str) -> tuple[tuple[int, int | str], ...]:
    """Versions in human order: 1.9 before 1.10."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|[^\d]+", version))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
