"""Checks of a rendered Dockerfile: every stage it refers to exists, no floating `latest` base images, and no
secrets passed as ARG or ENV (they end up in the image history; secret mounts don't)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from polybuild.container.templates import Rendered

_SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_?KEY)", re.I)
_SECRET_VALUE = re.compile(r"(ghp_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|hf_[A-Za-z0-9]{20,}"
                           r"|xox[abp]-[A-Za-z0-9-]{10,}|-----BEGIN [A-Z ]*PRIVATE KEY)")


@dataclass(frozen=True)
class Instruction:
    line: int  # 1-based line of the rendered Dockerfile where it starts
    keyword: str
    args: str


@dataclass(frozen=True)
class Problem:
    line: int
    origin: str  # the template that produced the line
    message: str

    def __str__(self) -> str:
        return f"Dockerfile:{self.line} (from {self.origin}): {self.message}"


def instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, continuation lines joined, comments dropped."""
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continuation are dropped by docker too
        if not pending:
            start = number
        continues = line.endswith("\\")
        pending.append(line[:-1] if continues else line)
        if not continues:
            keyword, _, args = " ".join(pending).partition(" ")
            found.append(Instruction(start, keyword.upper(), args.strip()))
            pending = []
    return found


def stages(text: str) -> list[str]:
    """The names of the stages, in order (an unnamed stage is known by its index)."""
    names = []
    for i, ins in enumerate(ins for ins in instructions(text) if ins.keyword == "FROM"):
        words = _words(ins.args)
        names.append(words[2] if len(words) >= 3 and words[1].lower() == "as" else str(i))
    return names


def base_images(text: str) -> list[str]:
    """The images a Dockerfile pulls: FROM and --from references that are not its own stages (nor scratch)."""
    found: list[str] = []
    known: list[str] = []
    for ins in instructions(text):
        refs = _words(ins.args)[:1] if ins.keyword == "FROM" else _stage_refs(ins.args)
        for ref in refs:
            if ref not in known and ref != "scratch" and "$" not in ref and not ref.isdigit() and ref not in found:
                found.append(ref)
        if ins.keyword == "FROM":
            words = _words(ins.args)
            known.append(words[2] if len(words) >= 3 and words[1].lower() == "as" else str(len(known)))
    return found


def check(rendered: Rendered, allow_latest: bool = False) -> list[Problem]:
    """Every problem found, in order."""
    problems: list[Problem] = []
    known: list[str] = []

    def report(ins: Instruction, message: str) -> None:
        problems.append(Problem(ins.line, rendered.origin(ins.line), message))

    for ins in instructions(rendered.text):
        if ins.keyword == "FROM":
            words = _words(ins.args)
            if not words:
                report(ins, "FROM without an image")
                continue
            if words[0] not in known:
                _check_image(words[0], allow_latest, lambda m, ins=ins: report(ins, m))
            known.append(words[2] if len(words) >= 3 and words[1].lower() == "as" else str(len(known)))
        elif ins.keyword in ("COPY", "RUN", "ADD"):
            for ref in _stage_refs(ins.args):
                if ref not in known and not _is_image(ref):
                    report(ins, f"stage '{ref}' is not defined before this line"
                                f" (stages so far: {', '.join(known) or 'none'})")
                elif ref not in known:
                    _check_image(ref, allow_latest, lambda m, ins=ins: report(ins, m))
        elif ins.keyword in ("ARG", "ENV"):
            for name, value in _assignments(ins.keyword, ins.args):
                if _SECRET_NAME.search(name) or (value and _SECRET_VALUE.search(value)):
                    report(ins, f"{ins.keyword} {name} looks like a secret; it would be stored in the image: use a "
                                f"secret mount (`RUN --mount=type=secret,id=...`) and [images.<name>].secrets")
    return problems


def _words(args: str) -> list[str]:
    return [w for w in args.split() if not w.startswith("--")]


def _stage_refs(args: str) -> list[str]:
    refs = re.findall(r"--from=(\S+)", args)
    refs += re.findall(r"--mount=\S*?\bfrom=([^,\s]+)", args)
    return [r for r in refs if "$" not in r]


def _is_image(ref: str) -> bool:
    return any(c in ref for c in ":/@.")


def _check_image(ref: str, allow_latest: bool, report: Callable[[str], None]) -> None:
    if ref == "scratch" or "$" in ref or "@sha256:" in ref or allow_latest:
        return
    name = ref.rsplit("/", 1)[-1]
    if ":" not in name:
        report(f"image '{ref}' has no tag, so it floats with `latest`: pin a tag or digest "
               f"(or set allow-latest = true)")
    elif name.endswith(":latest"):
        report(f"image '{ref}' uses the `latest` tag: pin a version or digest (or set allow-latest = true)")


def _assignments(keyword: str, args: str) -> list[tuple[str, str]]:
    """NAME=value pairs of ARG/ENV (also the legacy `ENV NAME value` form)."""
    if keyword == "ENV" and "=" not in args.split(" ", 1)[0]:
        name, _, value = args.partition(" ")
        return [(name, value.strip())]
    pairs = []
    for word in re.findall(r'(?:[^\s"\']+|"[^"]*"|\'[^\']*\')+', args):
        name, _, value = word.partition("=")
        pairs.append((name, value.strip("\"'")))
    return pairs
