"""`--fetch` reads a locked wheel's METADATA and license files by HTTP Range instead of downloading it whole: against
PyPI itself (real wheels), and against nginx on loopback with Range and with Range disabled (the fallback to the
whole file, verified against the lock), with PEP 658 METADATA hashes, and with zips that must not be trusted."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zipfile
from pathlib import Path

import pytest

from polybuild.licenses import distributions, lazywheel
from polybuild.licenses.distributions import FULL, evidence, location, requirements, stored
from polybuild.support.errors import UserError
from polybuild.workspace.pythonlock import Artifact
from servers import Nginx

# Real wheels as PyPI serves them (what a uv.lock names: URL, sha256, size); both larger than one tail read.
PIP = Artifact("pip-25.1.1-py3-none-any.whl", "https://files.pythonhosted.org/packages/29/a2/"
               "d40fb2460e883eca5199c62cfc2463fd261f760556ae6290f88488c362c0/pip-25.1.1-py3-none-any.whl",
               "2913a38a2abf4ea6b64ab507bd9e967f3b53dc1ede74b01b0931e1ce548751af", 1825227)
SETUPTOOLS = Artifact("setuptools-80.9.0-py3-none-any.whl", "https://files.pythonhosted.org/packages/a3/dc/"
                      "17031897dae0efacfea57dfd3a82fdd2a2aeb58e0ff71b77b87e44edc772/"
                      "setuptools-80.9.0-py3-none-any.whl",
                      "062d34222ad13e0cc312a4c02d73f059e86a4acbfbdea8f8f76b28c99f306922", 1201486)


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding both wheels downloaded whole from PyPI (`--fetch=full`), once for the module."""
    cache = tmp_path_factory.mktemp("whole")
    fetched = distributions.fetch(cache, [PIP, SETUPTOOLS], mode=FULL)
    assert (fetched.whole, fetched.ranged, fetched.received) == (2, 0, PIP.size + SETUPTOOLS.size)
    return cache


def test_a_ranged_read_from_pypi_gives_the_evidence_of_the_whole_wheel(whole: Path, tmp_path: Path):
    fetched = distributions.fetch(tmp_path, [PIP, SETUPTOOLS])
    assert (fetched.ranged, fetched.whole) == (2, 0)
    assert fetched.received < (PIP.size + SETUPTOOLS.size) / 4, fetched
    for artifact in (PIP, SETUPTOOLS):
        ranged, full = stored(tmp_path, artifact), stored(whole, artifact)
        assert ranged is not None and ranged.parent.name == "members" and not location(tmp_path, artifact).exists()
        assert evidence(ranged) == evidence(full)
        assert requirements(ranged) == requirements(full)
    pip = evidence(stored(tmp_path, PIP))  # the texts under .dist-info/licenses/ (PEP 639)
    assert (pip.legacy, [f.path for f in pip.files]) == ("MIT", ["pip-25.1.1.dist-info/licenses/AUTHORS.txt",
                                                                 "pip-25.1.1.dist-info/licenses/LICENSE.txt"])
    assert distributions.fetch(tmp_path, [PIP, SETUPTOOLS]).received == 0  # kept: nothing to fetch again


@pytest.fixture(scope="module")
def pip_wheel(whole: Path) -> bytes:
    return location(whole, PIP).read_bytes()


def _served(tmp_path: Path, files: dict[str, bytes], directives: str = "") -> Nginx:
    server = Nginx(tmp_path / "nginx", directives)
    for name, data in files.items():
        (server.data / name).parent.mkdir(parents=True, exist_ok=True)
        (server.data / name).write_bytes(data)
    return server


def _artifact(server: Nginx, name: str, data: bytes, sha256: str | None = None) -> Artifact:
    return Artifact(name, f"{server.url}/{name}", sha256 or hashlib.sha256(data).hexdigest(), len(data))


def test_nginx_with_range_serves_only_the_members(tmp_path: Path, pip_wheel: bytes, whole: Path):
    server = _served(tmp_path, {PIP.filename: pip_wheel})
    try:
        artifact = _artifact(server, PIP.filename, pip_wheel)
        fetched = distributions.fetch(tmp_path / "cache", [artifact])
        assert (fetched.ranged, fetched.whole) == (1, 0) and fetched.received < len(pip_wheel) / 4
        statuses = {line.split()[-1] for line in server.requests()}
        assert statuses == {"206"}, server.requests()
        assert evidence(stored(tmp_path / "cache", artifact)) == evidence(location(whole, PIP))
    finally:
        server.stop()


def test_nginx_without_range_falls_back_to_the_whole_verified_file(tmp_path: Path, pip_wheel: bytes):
    server = _served(tmp_path, {PIP.filename: pip_wheel}, "max_ranges 0;")
    try:
        artifact = _artifact(server, PIP.filename, pip_wheel)
        fetched = distributions.fetch(tmp_path / "cache", [artifact])
        assert (fetched.ranged, fetched.whole) == (0, 1)
        assert stored(tmp_path / "cache", artifact) == location(tmp_path / "cache", artifact)
        assert location(tmp_path / "cache", artifact).read_bytes() == pip_wheel
        assert {line.split()[-1] for line in server.requests()} == {"200"}
        wrong = _artifact(server, PIP.filename, pip_wheel, "0" * 64)  # the lock's hash still decides
        with pytest.raises(UserError, match=f"{PIP.filename}: sha256 .* does not match the lock's 0000"):
            distributions.fetch(tmp_path / "other", [wrong])
        assert stored(tmp_path / "other", wrong) is None
    finally:
        server.stop()


def _metadata(wheel: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        return archive.read("pip-25.1.1.dist-info/METADATA")


def _page(name: str, digest: str) -> bytes:
    """A PEP 691 JSON simple page that offers the file's METADATA hash (PEP 714's `core-metadata`)."""
    return json.dumps({"meta": {"api-version": "1.1"}, "name": "pip", "files": [
        {"filename": name, "url": f"../../{name}", "hashes": {}, "core-metadata": {"sha256": digest}}]}).encode()


def test_metadata_is_checked_against_the_pep_658_hash_the_index_offers(tmp_path: Path, pip_wheel: bytes):
    good = hashlib.sha256(_metadata(pip_wheel)).hexdigest()
    server = _served(tmp_path, {PIP.filename: pip_wheel, "good/pip/index.html": _page(PIP.filename, good),
                                "bad/pip/index.html": _page(PIP.filename, "1" * 64)})
    try:
        artifact = _artifact(server, PIP.filename, pip_wheel)
        fetched = distributions.fetch(tmp_path / "cache", [artifact], pages={artifact: f"{server.url}/good/pip/"})
        assert (fetched.ranged, fetched.checked) == (1, 1)
        with pytest.raises(UserError, match=f"METADATA sha256 {good} does not match the index's PEP 658 hash 1111"):
            distributions.fetch(tmp_path / "other", [artifact], pages={artifact: f"{server.url}/bad/pip/"})
        assert stored(tmp_path / "other", artifact) is None
    finally:
        server.stop()


def _wheel(extra_members: dict[str, bytes]) -> bytes:
    """A wheel larger than one tail read (a stored random payload first), so its members are read by range."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("demo/payload.bin", os.urandom(600_000))
        archive.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.4\nName: demo\nVersion: 1.0\n"
                         "License-Expression: MIT\n", zipfile.ZIP_DEFLATED)
        archive.writestr("demo-1.0.dist-info/licenses/LICENSE", "MIT License\n", zipfile.ZIP_DEFLATED)
        for name, data in extra_members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _patched_central_directory(wheel: bytes, member: str, **fields: int) -> bytes:
    """The wheel with one central directory entry's sizes changed (what a hostile index could serve)."""
    at = next(i for i in _all(wheel, b"PK\x01\x02") if wheel[i + 46:i + 46 + len(member)] == member.encode())
    data = bytearray(wheel)
    offsets = {"compressed": 20, "size": 24}
    for name, value in fields.items():
        struct.pack_into("<I", data, at + offsets[name], value)
    return bytes(data)


def _all(data: bytes, needle: bytes) -> list[int]:
    found, at = [], data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


def test_untrusted_zips_are_refused_or_read_whole(tmp_path: Path):
    traversal = _wheel({"demo-1.0.dist-info/../../escape": b"x"})
    huge = _patched_central_directory(_wheel({}), "demo-1.0.dist-info/METADATA", size=1 << 30)
    good = _wheel({})
    eocd = good.rindex(b"PK\x05\x06")
    far = bytearray(good)
    struct.pack_into("<I", far, eocd + 12, 100 << 20)  # a central directory of 100 MB
    garbled = bytearray(_wheel({"demo-1.0.dist-info/zz": b"x"}))  # flagged UTF-8, but it is not
    entry = garbled.rindex(b"PK\x01\x02")
    struct.pack_into("<H", garbled, entry + 8, 0x800)
    at = entry + 46 + len("demo-1.0.dist-info/")
    garbled[at:at + 2] = b"\xff\xfe"
    server = _served(tmp_path, {"traversal.whl": traversal, "huge.whl": huge, "far.whl": bytes(far),
                                "garbled.whl": bytes(garbled)})
    try:
        for name, data, problem in [("traversal.whl", traversal, "unsafe member name"),
                                    ("huge.whl", huge, "too large to be metadata"),
                                    ("far.whl", bytes(far), "central directory out of bounds"),
                                    ("garbled.whl", bytes(garbled), "not UTF-8")]:
            with pytest.raises(lazywheel.Unreadable, match=problem):
                lazywheel.read_members(f"{server.url}/{name}", len(data), lambda names, read: names)
        artifact = _artifact(server, "traversal.whl", traversal)  # read whole instead, verified by the lock's hash
        fetched = distributions.fetch(tmp_path / "cache", [artifact])
        assert (fetched.ranged, fetched.whole) == (0, 1)
        assert not (location(tmp_path / "cache", artifact).parent / "members").exists()
    finally:
        server.stop()
