"""What a built wheel declares: its requirements per extra, console scripts, plugins and top-level modules.

Read from the wheel file itself (METADATA, entry_points.txt, the file list), never from pyproject.toml: the check is
about the exact, version-stamped wheel that ships.
"""

from __future__ import annotations

import configparser
import email.parser
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from polybuild.support.errors import UserError


@dataclass
class WheelInfo:
    path: Path
    name: str  # canonical distribution name
    version: str
    base: list[Requirement] = field(default_factory=list)
    extras: dict[str, list[Requirement]] = field(default_factory=dict)  # declared extra -> its own requirements
    scripts: list[str] = field(default_factory=list)  # console scripts
    plugins: list[tuple[str, str, str]] = field(default_factory=list)  # (group, name, value), other groups
    modules: list[str] = field(default_factory=list)  # top-level importable packages and modules

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"

    def extra_of(self, extras: tuple[str, ...]) -> str:
        """How an install of this wheel with `extras` is written: `name`, `name[server]`, `name[a,b]`."""
        return f"{self.name}[{','.join(extras)}]" if extras else self.name


def read_wheel(path: Path) -> WheelInfo:
    """The declarations of one wheel; a file that is not a readable wheel is a UserError naming it."""
    try:
        with zipfile.ZipFile(path) as whl:
            names = whl.namelist()
            dist_info = _dist_info_dir(path, names)
            metadata = email.parser.Parser().parsestr(whl.read(f"{dist_info}/METADATA").decode("utf-8"))
            entry_points = (whl.read(f"{dist_info}/entry_points.txt").decode("utf-8")
                            if f"{dist_info}/entry_points.txt" in names else "")
    except (OSError, zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable wheel ({exc})", hint="rebuild it with `polybuild build`") from exc
    info = WheelInfo(path, canonicalize_name(metadata["Name"] or ""), metadata["Version"] or "")
    declared = [canonicalize_name(e) for e in metadata.get_all("Provides-Extra") or []]
    info.extras = {e: [] for e in declared}
    for line in metadata.get_all("Requires-Dist") or []:
        _add_requirement(info, path, line)
    info.scripts, info.plugins = _entry_points(entry_points)
    info.modules = _top_level(names, dist_info)
    return info


def _dist_info_dir(path: Path, names: list[str]) -> str:
    found = sorted({n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")})
    if len(found) != 1:
        raise KeyError(f"{len(found)} .dist-info directories")
    return found[0]


def _add_requirement(info: WheelInfo, path: Path, line: str) -> None:
    """File a Requires-Dist line under the extra its marker names (`; extra == "server"`), else under the base."""
    try:
        req = Requirement(line)
    except InvalidRequirement as exc:
        raise UserError(f"{path}: bad Requires-Dist '{line}': {exc}") from exc
    named = _EXTRA_MARKER.search(str(req.marker or ""))
    if named is None:
        info.base.append(req)
    else:
        info.extras.setdefault(canonicalize_name(named[1]), []).append(req)


_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _entry_points(text: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # entry point names are case-sensitive
    parser.read_string(text)
    scripts = sorted(parser["console_scripts"]) if parser.has_section("console_scripts") else []
    plugins = sorted((group, name, value.strip()) for group in parser.sections()
                     if group not in ("console_scripts", "gui_scripts") for name, value in parser[group].items())
    return scripts, plugins


def _top_level(names: list[str], dist_info: str) -> list[str]:
    """Top-level packages (a directory with `__init__.py`) and modules (`.py`, extension modules)."""
    found = set()
    for name in names:
        if name.startswith((dist_info, dist_info.replace(".dist-info", ".data"))):
            continue
        first, _, rest = name.partition("/")
        if rest == "__init__.py" or (not rest and first.endswith(".py")):
            found.add(first.removesuffix(".py"))
        elif not rest and first.endswith((".so", ".pyd")):
            found.add(first.split(".", 1)[0])
    return sorted(m for m in found if m.isidentifier())
