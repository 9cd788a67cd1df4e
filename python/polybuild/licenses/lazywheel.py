"""A few members of a remote wheel, read by HTTP Range requests instead of downloading the whole file (the way pip's
and uv's lazy wheels work): the zip's end-of-central-directory and central directory from the end of the file, then
only the members asked for (a wheel's `.dist-info` is written last, so one read of the tail usually holds it all).

Everything read is untrusted: every size and offset from the zip is bounded by the file's size and by fixed limits,
member names that could escape a directory are refused, and members are decompressed with a bound and checked
against their CRC-32. A server that ignores Range (a 200 answer) is `NoRanges`; a zip this reader does not handle is
`Unreadable`: the caller then downloads the whole file and verifies it against the lock's hash."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

TIMEOUT = 60.0
TAIL = 256 << 10  # the first read: the central directory and, usually, the whole .dist-info
MAX_CENTRAL_DIRECTORY = 64 << 20  # torch's 20,000 entries take 2 MB
MAX_ENTRIES = 500_000
MAX_MEMBER = 16 << 20  # compressed or not: a METADATA or license text is never near this
_SLACK = 4096  # a local header's extra field may be longer than the central directory's copy
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"


class NoRanges(Exception):
    """The server does not answer Range requests with partial content."""


class Unreadable(Exception):
    """The file is not a zip this reader handles within its bounds."""


@dataclass(frozen=True)
class Member:
    name: str
    method: int
    crc: int
    compressed: int
    size: int
    offset: int  # of the local header


@dataclass
class RemoteFile:
    """Byte ranges of one URL, each fetched once; `received` counts the bytes that came over the network."""

    url: str
    size: int
    spans: dict[int, bytes] = field(default_factory=dict)
    received: int = 0

    def read(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the file (one request when they are not already here)."""
        if not 0 <= start <= end <= self.size:
            raise Unreadable(f"a zip field points outside the file ({start}-{end} of {self.size} bytes)")
        for offset, data in self.spans.items():
            if offset <= start and end <= offset + len(data):
                return data[start - offset:end - offset]
        data = self._get(start, end)
        self.spans[start] = data
        return data

    def _get(self, start: int, end: int) -> bytes:
        import contextlib
        import urllib.error
        import urllib.request

        if start == end:
            return b""
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={start}-{end - 1}",
                                                            "Accept-Encoding": "identity"})
        try:
            opened = urllib.request.urlopen(request, timeout=TIMEOUT)
        except urllib.error.HTTPError as exc:  # e.g. 416: the whole download says what is wrong, if anything
            raise NoRanges(f"HTTP {exc.code} to a Range request") from None
        with contextlib.closing(opened) as response:
            if response.status != 206:
                raise NoRanges(f"HTTP {response.status} to a Range request")
            expected = f"bytes {start}-{end - 1}/{self.size}"
            if (response.headers.get("Content-Range") or "").strip() != expected:
                raise NoRanges(f"Content-Range {response.headers.get('Content-Range')!r}, expected {expected!r}")
            data = response.read(end - start + 1)
        self.received += len(data)
        if len(data) != end - start:
            raise Unreadable(f"{len(data)} bytes for a range of {end - start}")
        return data


def read_members(url: str, size: int, choose: Callable[[list[str], Callable[[str], bytes]], list[str]]
                 ) -> tuple[dict[str, bytes], RemoteFile]:
    """The members `choose(names, read)` picks (it may read members to decide), and the ranges read: when they
    cover the whole file, the caller can verify it as a whole."""
    remote = RemoteFile(url, size)
    remote.read(max(0, size - TAIL), size)
    members = {m.name: m for m in _central_directory(remote)}
    found: dict[str, bytes] = {}

    def read(name: str) -> bytes:
        if name not in found:
            found[name] = _member(remote, members[name])
        return found[name]

    for name in choose(sorted(members), read):
        read(name)
    return found, remote


def _central_directory(remote: RemoteFile) -> list[Member]:
    size = remote.size
    tail_start = max(0, size - (65535 + 22))
    tail = remote.read(tail_start, size)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise Unreadable("no end-of-central-directory record")
    _, _, _, _, entries, cd_size, cd_offset, _ = struct.unpack("<4sHHHHIIH", tail[at:at + 22])
    if 0xFFFFFFFF in (cd_size, cd_offset) or entries == 0xFFFF:
        entries, cd_size, cd_offset = _zip64_end(remote, tail_start + at)
    if entries > MAX_ENTRIES or cd_size > MAX_CENTRAL_DIRECTORY or cd_offset + cd_size > size:
        raise Unreadable(f"central directory out of bounds ({entries} entries, {cd_size} bytes at {cd_offset})")
    data = remote.read(cd_offset, cd_offset + cd_size)
    members, pos = [], 0
    for _ in range(entries):
        if data[pos:pos + 4] != _CENTRAL or pos + 46 > len(data):
            raise Unreadable("a malformed central directory entry")
        (_, _, _, flags, method, _, _, crc, compressed, plain, name_len, extra_len, comment_len, _, _, _,
         offset) = struct.unpack("<4sHHHHHHIIIHHHHHII", data[pos:pos + 46])
        raw_name = data[pos + 46:pos + 46 + name_len]
        extra = data[pos + 46 + name_len:pos + 46 + name_len + extra_len]
        pos += 46 + name_len + extra_len + comment_len
        if pos > len(data):
            raise Unreadable("a central directory entry runs past its end")
        plain, compressed, offset = _zip64_sizes(extra, plain, compressed, offset)
        try:
            name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
        except UnicodeDecodeError:
            raise Unreadable(f"a member name that is not UTF-8: {raw_name!r}") from None
        if name.endswith("/"):
            continue
        _check_name(name)
        if flags & 0x1:
            raise Unreadable(f"{name} is encrypted")
        members.append(Member(name, method, crc, compressed, plain, offset))
    return members


def _zip64_end(remote: RemoteFile, eocd: int) -> tuple[int, int, int]:
    locator = remote.read(eocd - 20, eocd) if eocd >= 20 else b""
    if locator[:4] != _EOCD64_LOCATOR:
        raise Unreadable("a zip64 archive without its locator")
    (offset,) = struct.unpack("<Q", locator[8:16])
    record = remote.read(offset, offset + 56) if offset + 56 <= remote.size else b""
    if record[:4] != _EOCD64:
        raise Unreadable("no zip64 end-of-central-directory record")
    entries, cd_size, cd_offset = struct.unpack("<QQQ", record[32:56])
    return entries, cd_size, cd_offset


def _zip64_sizes(extra: bytes, plain: int, compressed: int, offset: int) -> tuple[int, int, int]:
    """The real sizes and offset from a zip64 extra field, for the fields the entry marks as 0xFFFFFFFF."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack("<HH", extra[pos:pos + 4])
        body = extra[pos + 4:pos + 4 + length]
        if tag == 0x0001:
            values = [v[0] for v in struct.iter_unpack("<Q", body[:len(body) // 8 * 8])]
            fields = [plain, compressed, offset]
            for i, current in enumerate(fields):
                if current == 0xFFFFFFFF:
                    if not values:
                        raise Unreadable("a truncated zip64 extra field")
                    fields[i] = values.pop(0)
            return fields[0], fields[1], fields[2]
        pos += 4 + length
    return plain, compressed, offset


def _check_name(name: str) -> None:
    """A member name that could escape a directory (absolute, `..`, a drive or a backslash) is refused."""
    parts = name.split("/")
    if (name.startswith("/") or "\\" in name or "\0" in name or ".." in parts
            or re.match(r"[A-Za-z]:", name)):
        raise Unreadable(f"unsafe member name {name!r}")


def _member(remote: RemoteFile, member: Member) -> bytes:
    if member.compressed > MAX_MEMBER or member.size > MAX_MEMBER:
        raise Unreadable(f"{member.name} is too large to be metadata ({member.size} bytes)")
    start = member.offset
    guess = min(remote.size, start + 30 + len(member.name.encode()) + _SLACK + member.compressed)
    head = remote.read(start, min(guess, remote.size))
    if head[:4] != _LOCAL or len(head) < 30:
        raise Unreadable(f"{member.name}: no local header at {start}")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    data_start = start + 30 + name_len + extra_len
    data = remote.read(data_start, data_start + member.compressed)
    if member.method == 0:
        plain = data
    elif member.method == 8:
        inflater = zlib.decompressobj(-15)
        try:
            plain = inflater.decompress(data, member.size + 1)
        except zlib.error as exc:
            raise Unreadable(f"{member.name}: {exc}") from None
    else:
        raise Unreadable(f"{member.name}: compression method {member.method}")
    if len(plain) != member.size or zlib.crc32(plain) != member.crc:
        raise Unreadable(f"{member.name}: its size or CRC-32 does not match the central directory")
    return plain
