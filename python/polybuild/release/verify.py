"""Checks of a built wheel before it ships: what pip will read (file name, METADATA, WHEEL, RECORD) agrees with
itself and with the release, and the wheel holds what its target promises (the extension, the packages).

Each check guards a failure seen in real releases: a wheel tagged for the wrong platform or ABI after Cargo feature
unification, a version that does not match the tag, a pure wheel that picked up a compiled file, a RECORD that no
longer matches a rewritten file."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from polybuild.builders.wheels import record_hash
from polybuild.support.platforms import Platform

_EXTENSION = re.compile(r"\.(so|pyd|dylib)$")
# Platform tags by polybuild platform: manylinux/musllinux (or plain linux) per machine, macOS, Windows.
_PLATFORM_TAGS = {
    ("linux", "amd64"): re.compile(r"^(manylinux_\d+_\d+|manylinux\d+|musllinux_\d+_\d+|linux)_x86_64$"),
    ("linux", "arm64"): re.compile(r"^(manylinux_\d+_\d+|manylinux\d+|musllinux_\d+_\d+|linux)_aarch64$"),
    ("darwin", "amd64"): re.compile(r"^macosx_\d+_\d+_(x86_64|universal2)$"),
    ("darwin", "arm64"): re.compile(r"^macosx_\d+_\d+_(arm64|universal2)$"),
    ("windows", "amd64"): re.compile(r"^win_amd64$"),
    ("windows", "arm64"): re.compile(r"^win_arm64$"),
}


@dataclass(frozen=True)
class Expected:
    """What a wheel must be, from the release and its target."""

    version: str  # PEP 440
    extension: bool  # a PyO3 (maturin) wheel: one compiled module, platform tags
    abi3: bool
    platform: Platform | None
    modules: tuple[str, ...]  # top-level import names the wheel must hold


def verify_wheel(path: Path, expected: Expected) -> list[str]:
    """Every problem found, each a sentence naming the wheel; empty when it is fit to ship."""
    try:
        name, version, _, tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        return [f"{path.name}: not a valid wheel file name ({exc})"]
    try:
        with zipfile.ZipFile(path) as zf:
            files = {info.filename: zf.read(info) for info in zf.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, OSError) as exc:
        return [f"{path.name}: cannot be read as a zip archive ({exc})"]
    problems = []
    if version != Version(expected.version):
        problems.append(f"{path.name}: version {version} is not the release's {expected.version}")
    dist_info = f"{str(name).replace('-', '_')}-{version}.dist-info"
    problems += _check_metadata(path.name, files.get(f"{dist_info}/METADATA"), str(name), version)
    problems += _check_wheel_file(path.name, files.get(f"{dist_info}/WHEEL"), {str(t) for t in tags},
                                  expected.extension)
    problems += _check_record(path.name, files, f"{dist_info}/RECORD")
    problems += _check_contents(path.name, files, tags, expected)
    return problems


def _check_metadata(wheel: str, data: bytes | None, name: str, version: Version) -> list[str]:
    from packaging.metadata import Metadata

    if data is None:
        return [f"{wheel}: no METADATA in its .dist-info directory"]
    try:
        meta = Metadata.from_email(data, validate=True)
    except Exception as group:  # packaging raises an ExceptionGroup of InvalidMetadata
        errors = getattr(group, "exceptions", [group])
        return [f"{wheel}: invalid METADATA: {e}" for e in errors]
    problems = []
    if canonicalize_name(meta.name) != name:
        problems.append(f"{wheel}: METADATA names '{meta.name}', the file name '{name}'")
    if meta.version != version:
        problems.append(f"{wheel}: METADATA says version {meta.version}, the file name {version}")
    return problems


def _check_wheel_file(wheel: str, data: bytes | None, tags: set[str], extension: bool) -> list[str]:
    if data is None:
        return [f"{wheel}: no WHEEL file in its .dist-info directory"]
    fields = [line.partition(":") for line in data.decode(errors="replace").splitlines()]
    declared = {value.strip() for key, _, value in fields if key.strip() == "Tag"}
    purelib = next((value.strip().lower() for key, _, value in fields if key.strip() == "Root-Is-Purelib"), "")
    problems = []
    if declared != tags:
        problems.append(f"{wheel}: WHEEL declares tags {', '.join(sorted(declared))}, the file name "
                        f"{', '.join(sorted(tags))}")
    if purelib == ("true" if extension else "false"):
        problems.append(f"{wheel}: WHEEL says Root-Is-Purelib: {purelib} for a "
                        f"{'compiled' if extension else 'pure'} wheel")
    return problems


def _check_record(wheel: str, files: dict[str, bytes], record_name: str) -> list[str]:
    if record_name not in files:
        return [f"{wheel}: no RECORD in its .dist-info directory"]
    listed = {}
    for row in csv.reader(io.StringIO(files[record_name].decode(errors="replace"))):
        if row:
            listed[row[0]] = row[1] if len(row) > 1 else ""
    problems = []
    for path, data in sorted(files.items()):
        if path == record_name or path.endswith((".dist-info/RECORD.jws", ".dist-info/RECORD.p7s")):
            continue
        if path not in listed:
            problems.append(f"{wheel}: {path} is not listed in RECORD")
        elif listed[path] != record_hash(data):
            problems.append(f"{wheel}: {path} does not match its RECORD hash")
    problems += [f"{wheel}: RECORD lists {path}, which is not in the wheel"
                 for path in sorted(set(listed) - set(files))]
    return problems


def _check_contents(wheel: str, files: dict[str, bytes], tags: frozenset[Tag], expected: Expected) -> list[str]:
    compiled = sorted(p for p in files if _EXTENSION.search(p) and ".dist-info/" not in p)
    problems = []
    if expected.extension and not compiled:
        problems.append(f"{wheel}: holds no compiled extension module (.so/.pyd)")
    if not expected.extension and compiled:
        problems.append(f"{wheel}: a pure wheel holds compiled files: {', '.join(compiled)}")
    for tag in sorted(tags, key=str):
        if expected.extension:
            problems += _check_extension_tag(wheel, tag, expected)
        elif tag.platform != "any" or tag.abi != "none":
            problems.append(f"{wheel}: a pure wheel is tagged {tag} (expected py3-none-any)")
    top = {p.split("/", 1)[0].split(".", 1)[0] for p in files if ".dist-info/" not in p and ".data/" not in p}
    problems += [f"{wheel}: does not hold the module '{m}'" for m in expected.modules if m not in top]
    return problems


def _check_extension_tag(wheel: str, tag: Tag, expected: Expected) -> list[str]:
    problems = []
    if expected.abi3 and tag.abi != "abi3":
        problems.append(f"{wheel}: tagged {tag}, but the crate declares pyo3's abi3 (expected an abi3 tag)")
    if not expected.abi3 and not tag.abi.startswith("cp"):
        problems.append(f"{wheel}: tagged {tag}, expected a CPython ABI tag (the crate is not abi3)")
    if expected.platform is not None:
        pattern = _PLATFORM_TAGS.get((expected.platform.os, expected.platform.arch))
        if pattern is not None and not pattern.match(tag.platform):
            problems.append(f"{wheel}: platform tag {tag.platform} does not fit {expected.platform.name}")
    return problems
