"""Rendering Dockerfile templates: Jinja in a sandbox with StrictUndefined, so a typo is an error, not an empty
string. Every template's output is framed by marker comments naming it, and errors point at template and line."""

from __future__ import annotations

import difflib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from polybuild.support.errors import UserError

BEGIN, END = "# >>> ", "# <<< "
_MARKER_LINES = 1  # lines the begin marker adds before a template's first line


@dataclass
class Rendered:
    text: str
    template: str  # the top template, relative to the workspace root

    def origin(self, line: int) -> str:
        """The template that produced 1-based `line` of the rendered text."""
        stack = [self.template]
        for text in self.text.splitlines()[:line]:
            if text.startswith(BEGIN):
                stack.append(text[len(BEGIN):].strip())
            elif text.startswith(END) and len(stack) > 1:
                stack.pop()
        return stack[-1]


def variables(name: str, spec: dict[str, Any], chosen: dict[str, str], builtins: dict[str, str]) -> dict[str, Any]:
    """The template context: choices (defaults first), config vars, built-ins, then `--var` values; the
    combination is checked against `choices` and `exclude` before anything renders."""
    choices: dict[str, list[str]] = spec["choices"]
    context: dict[str, Any] = {var: values[0] for var, values in choices.items()}
    context.update(spec["vars"])
    context.update(builtins)
    for var, value in chosen.items():
        if var in choices and value not in choices[var]:
            close = difflib.get_close_matches(value, choices[var], n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(f"image '{name}': '{value}' is not a valid {var}",
                            hint=f"{hint}valid values of {var}: {', '.join(choices[var])}")
        context[var] = value
    combo = excluded(spec["exclude"], context)
    if combo:
        raise UserError(f"image '{name}': {describe(combo)} is not an allowed combination",
                        hint=f"allowed: {_allowed(spec, context)}")
    return context


def excluded(exclude: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any] | None:
    """The first `exclude` combination that `values` match, if any."""
    return next((c for c in exclude if all(str(values.get(k)) == str(v) for k, v in c.items())), None)


def describe(combo: dict[str, Any]) -> str:
    return " with ".join(f"{k}={v}" for k, v in combo.items())


def _allowed(spec: dict[str, Any], context: dict[str, Any]) -> str:
    """The valid combinations of the choices, given the other values chosen."""
    choices = spec["choices"]
    names = sorted(choices)
    valid = []
    for values in product(*(choices[n] for n in names)):
        trial = {**context, **dict(zip(names, values, strict=True))}
        if not excluded(spec["exclude"], trial):
            valid.append(", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True)))
    return "; ".join(valid) if valid else "none for this platform and target"


def render(root: Path, template: str, context: dict[str, Any]) -> Rendered:
    """Render `template` (relative to `root`); includes resolve against the template's directory."""
    path = root / template
    if not path.is_file():
        raise UserError(f"template not found: {template}", hint="check `template` in [images.<name>]")
    _inside_workspace(root, path, template)
    env = ImmutableSandboxedEnvironment(
        loader=_MarkedLoader(root, str(path.parent)), undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        autoescape=False)
    try:
        text = _bounded(env.get_template(path.name).generate(context), template)
    except OverflowError as exc:  # the sandbox's MAX_RANGE: `range(10000000)`
        raise UserError(f"{_runtime_where(root, path.parent, exc)}: {exc}") from None
    except jinja2.TemplateSyntaxError as exc:
        where = _where(root, path.parent, exc.filename, exc.lineno)
        raise UserError(f"{where}: template syntax error: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise UserError(f"{_runtime_where(root, path.parent, exc)}: unknown template '{exc.name}'",
                        hint=f"templates are looked up in {_rel(root, path.parent)}/") from None
    except jinja2.UndefinedError as exc:
        raise UserError(f"{_runtime_where(root, path.parent, exc)}: undefined variable: {exc.message}",
                        hint="define it in [images.<name>].vars or pass --var NAME=VALUE") from None
    except jinja2.TemplateError as exc:  # including the sandbox's SecurityError
        raise UserError(f"{_runtime_where(root, path.parent, exc)}: {exc}") from None
    return Rendered(text, template)


MAX_RENDERED = 16 << 20  # bytes: a Dockerfile is a few kilobytes; a runaway loop must not fill the memory


def _bounded(chunks: Iterator[str], template: str) -> str:
    """The rendered text, refused once it grows past MAX_RENDERED."""
    parts, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_RENDERED:
            raise UserError(f"{template}: the rendered Dockerfile exceeds {MAX_RENDERED >> 20} MiB",
                            hint="check the template's loops")
        parts.append(chunk)
    return "".join(parts)


def _inside_workspace(root: Path, path: Path, shown: str) -> None:
    """Templates are read only from inside the workspace, whatever symlinks say."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise UserError(f"template {shown} leads outside the workspace (to {path.resolve()})",
                        hint="templates and the templates they include must be files of the workspace")


class _MarkedLoader(jinja2.FileSystemLoader):
    """A file loader that frames each template's output with begin/end marker comments, and reads only files of
    the workspace (Jinja refuses `..` in names, but follows symlinks)."""

    def __init__(self, root: Path, searchpath: str) -> None:
        super().__init__(searchpath)
        self.root = root

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
        source, filename, uptodate = super().get_source(environment, template)
        _inside_workspace(self.root, Path(filename), template)
        body = source if source.endswith("\n") else source + "\n"
        return f"{BEGIN}{template}\n{body}{END}{template}\n", filename, uptodate


def _rel(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _where(root: Path, directory: Path, filename: str | None, lineno: int | None) -> str:
    name = _rel(root, Path(filename)) if filename else _rel(root, directory)
    return f"{name}:{max(1, lineno - _MARKER_LINES)}" if lineno else name


def _runtime_where(root: Path, directory: Path, exc: BaseException) -> str:
    """The innermost template frame of a rendering error (Jinja maps its frames to template lines)."""
    base = str(directory.resolve())
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename and str(Path(frame.filename).resolve()).startswith(base):
            return _where(root, directory, frame.filename, frame.lineno)
    return _rel(root, directory)
