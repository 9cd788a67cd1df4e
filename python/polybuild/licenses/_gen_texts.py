"""Regenerate the pure-Python license detection's data files from the `spdx` crate the native core is locked to.

Run from the repository root after changing the crate's version (a test fails until the files match Cargo.lock):

    python python/polybuild/licenses/_gen_texts.py

It runs `rust/polybuild-core/examples/detect_texts.rs` (cargo), which dumps the crate's detection store as the
native core sees it and the canonical SPDX texts, and writes, next to this file, `_texts_detect.json.xz` (every
store text with the id it reports) and `_texts_canonical.json.xz` (every license and exception text, each distinct
text once). Both are all of the crate's data, not a subset, so that the fallback gives the native core's answers
for every license; compressed, they are about 0.8 MB. The output is deterministic.
"""

from __future__ import annotations

import json
import lzma
import subprocess
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def locked_spdx_version() -> str:
    """The version of the `spdx` crate in the workspace's Cargo.lock."""
    lock = tomllib.loads((REPO / "Cargo.lock").read_text(encoding="utf-8"))
    (version,) = {p["version"] for p in lock["package"] if p["name"] == "spdx"}
    return version


def dump_store() -> dict:
    """The example's JSON: {"candidates": [[id, lines]], "licenses": {id: text}, "exceptions": {id: text}}."""
    cmd = ["cargo", "run", "--quiet", "--release", "--locked", "-p", "polybuild-core", "--example", "detect_texts"]
    return json.loads(subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True).stdout)


def canonical_data(licenses: dict[str, str], exceptions: dict[str, str]) -> dict:
    """Each distinct text once, and each id's index into them."""
    texts: list[str] = []
    position: dict[str, int] = {}

    def indices(by_id: dict[str, str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for spdx_id in sorted(by_id):
            text = by_id[spdx_id]
            if text not in position:
                position[text] = len(texts)
                texts.append(text)
            out[spdx_id] = position[text]
        return out

    return {"licenses": indices(licenses), "exceptions": indices(exceptions), "texts": texts}


def write_xz_json(path: Path, data: dict) -> None:
    raw = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    path.write_bytes(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))
    print(f"{path.relative_to(REPO)}: {path.stat().st_size} bytes")


def main() -> None:
    version = locked_spdx_version()
    dump = dump_store()
    write_xz_json(HERE / "_texts_detect.json.xz", {"spdx": version, "candidates": dump["candidates"]})
    canonical = canonical_data(dump["licenses"], dump["exceptions"])
    write_xz_json(HERE / "_texts_canonical.json.xz", {"spdx": version, **canonical})


if __name__ == "__main__":
    main()
