"""Tests for polybuild.licenses.detect: license texts as packages ship them are detected on both backends, the
pure-Python fallback gives the native core's answers (built for real with maturin), and canonical texts."""

from __future__ import annotations

import sys
import textwrap
import tomllib
from collections.abc import Iterator
from types import ModuleType

import pytest

from polybuild.licenses import detect
from polybuild.licenses.detect import CONFIDENCE_THRESHOLD, Detection
from polybuild.support import fingerprint
from test_fingerprint import REPO, native  # noqa: F401  (the native core, built once per module)

MIT = """\
MIT License

Copyright (c) 2018-2024 Jane Doe <jane@example.com>

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

# A `license.md`: Markdown heading, bold, a link, curly quotes, lines joined into paragraphs.
MIT_MARKDOWN = """\
# The MIT License (MIT)

**Copyright © 2021 [Example Org](https://example.org)**

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated \
documentation files (the “Software”), to deal in the Software without restriction, including without limitation the \
rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to \
permit persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of \
the Software.

THE SOFTWARE IS PROVIDED “AS IS”, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE \
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR \
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR \
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""

BSD_3_CLAUSE = """\
BSD 3-Clause License

Copyright (c) 2005-2024, Example Developers.
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""

ISC = """\
ISC License

Copyright (c) 2004-2010 by Internet Systems Consortium, Inc. ("ISC")
Copyright (c) 1995-2003 by Internet Software Consortium

Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted, provided that the above
copyright notice and this permission notice appear in all copies.

THE SOFTWARE IS PROVIDED "AS IS" AND ISC DISCLAIMS ALL WARRANTIES
WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL ISC BE LIABLE FOR
ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT
OF OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
"""

UNLICENSE = """\
This is free and unencumbered software released into the public domain.

Anyone is free to copy, modify, publish, use, compile, sell, or
distribute this software, either in source code form or as a compiled
binary, for any purpose, commercial or non-commercial, and by any
means.

In jurisdictions that recognize copyright laws, the author or authors
of this software dedicate any and all copyright interest in the
software to the public domain. We make this dedication for the benefit
of the public at large and to the detriment of our heirs and
successors. We intend this dedication to be an overt act of
relinquishment in perpetuity of all present and future rights to this
software under copyright law.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND,
EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
IN NO EVENT SHALL THE AUTHORS BE LIABLE FOR ANY CLAIM, DAMAGES OR
OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE,
ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR
OTHER DEALINGS IN THE SOFTWARE.

For more information, please refer to <https://unlicense.org>
"""

PROPRIETARY = """\
Copyright (c) 2024 Example Corp. All rights reserved.

This software and associated documentation files (the "Software") are the confidential and proprietary
information of Example Corp. You may not use, copy, modify, merge, publish, distribute, sublicense, or sell
copies of the Software, except as expressly permitted in a written agreement with Example Corp.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.
"""

# The standard Apache-2.0 header (the appendix's notice), as gopkg.in/yaml.v3's LICENSE ends.
APACHE_HEADER = """\
Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
"""


def as_shipped(spdx_id: str, holder: str = "2024 Example Authors") -> str:
    """A long license as projects ship it: the canonical text rewrapped to 72 columns (as editors and
    `COPYING` files do), with the copyright line filled in."""
    text = detect.canonical_text(spdx_id)
    assert text is not None
    paragraphs = [textwrap.fill(" ".join(p.split()), 72) for p in text.split("\n\n")]
    return f"Copyright (c) {holder}\n\n" + "\n\n".join(paragraphs) + "\n"


SHIPPED = {
    "MIT": MIT,
    "license.md": MIT_MARKDOWN,
    "BSD-3-Clause": BSD_3_CLAUSE,
    "ISC": ISC,
    "Unlicense": UNLICENSE,
}
LONG = ("Apache-2.0", "MPL-2.0", "GPL-2.0-only")
EXPECTED = {"MIT": "MIT", "license.md": "MIT", "BSD-3-Clause": "BSD-3-Clause", "ISC": "ISC",
            "Unlicense": "Unlicense", **{spdx_id: spdx_id for spdx_id in LONG}}


def shipped_text(name: str) -> str:
    return SHIPPED[name] if name in SHIPPED else as_shipped(name)


ODD_TEXTS = [
    "",
    "MIT",
    "licensed under the MIT license",
    "// Copyright 2020 The Authors. All rights reserved.\n// Use of this source code is governed by a BSD-style\n"
    "// license that can be found in the LICENSE file.\n",
    "SPDX-License-Identifier: Apache-2.0 OR MIT\n",
    # Copyright sign, accents, dash, curly quotes, a symbol, the digit 4, a URL, CR, VT, \x1c (not White_Space).
    "Ⓒ 2024 Ünïcødé Äuthør — “quoted” \u2018words\u2019 ¶ 4\u00d74 https://x.y/z?q=1\r\nsecond\tline\x0bthird\x1cfourth\u2028",
    "copyright 2020 foo\ncopyright 2021 bar\ncopyright 2021 baz\nPermission to use, copy, modify",
    PROPRIETARY,
]


@pytest.fixture
def python_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The pure-Python fallback, whatever is installed."""
    monkeypatch.setenv("POLYBUILD_NO_NATIVE", "1")
    fingerprint._native.cache_clear()
    assert detect.backend() == "python"
    yield
    fingerprint._native.cache_clear()


def forget_native_core() -> None:
    """Drop every `polybuild_core` module: `native` restores only the package, and an extension submodule left
    from another test module's build would be imported instead of this module's."""
    for name in [name for name in sys.modules if name == "polybuild_core" or name.startswith("polybuild_core.")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def core(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """test_fingerprint's `native` (the core built by maturin), safe to use from a second test module."""
    forget_native_core()
    yield request.getfixturevalue("native")
    forget_native_core()


@pytest.fixture
def native_backend(core: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The native core built from this checkout."""
    monkeypatch.delenv("POLYBUILD_NO_NATIVE", raising=False)
    fingerprint._native.cache_clear()
    assert detect.backend() == "native"
    yield core
    fingerprint._native.cache_clear()


@pytest.fixture(params=["python", "native"])
def backend(request: pytest.FixtureRequest) -> str:
    request.getfixturevalue(f"{request.param}_backend")
    return request.param


# (a) detection on either backend


@pytest.mark.parametrize("name", list(EXPECTED))
def test_shipped_texts_are_detected(backend: str, name: str) -> None:
    found = detect.detect(shipped_text(name))
    assert found is not None
    assert found.license == EXPECTED[name]
    assert found.confidence > CONFIDENCE_THRESHOLD, found


def test_canonical_text_matches_itself(backend: str) -> None:
    for spdx_id in ("MIT", "Apache-2.0", "GPL-2.0-only", "MPL-2.0", "Zlib"):
        assert detect.detect(detect.canonical_text(spdx_id) or "") == Detection(spdx_id, 1.0)


@pytest.mark.parametrize("or_later", ["GPL-2.0-or-later", "GPL-3.0-or-later", "LGPL-2.1-or-later", "AGPL-3.0-or-later"])
def test_or_later_is_never_read_into_a_license_text(backend: str, or_later: str) -> None:
    """The GPL's text is the same for -only and -or-later; the grant of later versions is in a project's notice."""
    found = detect.detect(detect.canonical_text(or_later) or "")
    assert found == Detection(or_later.replace("-or-later", "-only"), 1.0)


def test_proprietary_text_is_not_a_license(backend: str) -> None:
    found = detect.detect(PROPRIETARY)
    assert found is None or found.confidence <= CONFIDENCE_THRESHOLD, found


def test_nothing_in_common_is_none(backend: str) -> None:
    assert detect.detect("") is None
    assert detect.detect("hello") is None
    assert detect.detect("zzqx vvkw") is None


def test_detect_many_is_detect_in_order(backend: str) -> None:
    texts = [MIT, "", ISC, PROPRIETARY, MIT]
    assert detect.detect_many(iter(texts)) == [detect.detect(t) for t in texts]
    assert detect.detect_many([]) == []


def test_canonical_texts(backend: str) -> None:
    assert "Permission is hereby granted" in (detect.canonical_text("MIT") or "")
    assert detect.canonical_text("GPL-2.0+") == detect.canonical_text("GPL-2.0")
    assert "LLVM Exceptions" in (detect.canonical_text("LLVM-exception") or "")
    assert detect.canonical_text("mit") is None
    assert detect.canonical_text("NOASSERTION") is None
    assert detect.canonical_text("LLVM-exception+") is None
    assert detect.canonical_text("Not-A-License") is None


def _apache_without_appendix() -> str:
    apache = detect.canonical_text("Apache-2.0") or ""
    return apache[:apache.index("APPENDIX")]


def test_apache_without_its_appendix_is_apache_not_pixar(backend: str) -> None:
    """Pixar's license is Apache-2.0 minus the appendix plus one sentence, so Apache-2.0 as spf13/cobra ships it
    scores a little higher as Pixar: the near tie goes to the text the words that tell them apart point at."""
    found = detect.detect(_apache_without_appendix())
    assert found is not None and (found.license, found.close) == ("Apache-2.0", ("Pixar",))
    assert found.confidence > CONFIDENCE_THRESHOLD
    pixar = detect.detect(detect.canonical_text("Pixar") or "")
    assert pixar == Detection("Pixar", 1.0)


def test_a_file_of_several_license_texts_is_their_and(backend: str) -> None:
    """As gopkg.in/yaml.v3 ships it: a preface, MIT, a sentence, the Apache-2.0 header; then the BSD text twice."""
    yaml_v3 = "This project is covered by two different licenses: MIT and Apache.\n\n#### MIT License ####\n\n" \
        "The following files were ported to Go from C files of libyaml:\n\n    apic.go emitterc.go\n\n" + MIT + \
        "\n### Apache License ###\n\nAll the remaining project files are covered by the Apache license:\n\n" \
        "Copyright (c) 2011-2019 Canonical Ltd\n\n" + APACHE_HEADER
    found = detect.detect(yaml_v3)
    assert found is not None and found.license == "Apache-2.0 AND MIT" and found.ids == ("Apache-2.0", "MIT")
    assert found.confidence > CONFIDENCE_THRESHOLD
    bsd = detect.canonical_text("BSD-3-Clause") or ""
    twice = detect.detect(f"gopsutil is distributed under BSD license reproduced below.\n\n{bsd}\n\n{bsd}")
    assert twice is not None and twice.license == "BSD-3-Clause" and twice.confidence > 0.95


NOTICES = ("MIT", "Apache-2.0", "BSD-3-Clause", "ISC", "MPL-2.0", "Zlib", "BSD-2-Clause", "GPL-3.0-only",
           "LGPL-2.1-only", "Unlicense")


def third_party_notices() -> str:
    """A THIRD_PARTY_NOTICES file: ten license texts, each after a line naming its component."""
    return "\n\n".join(f"Component {n} is under this license:\n\n{detect.canonical_text(spdx_id)}"
                       for n, spdx_id in enumerate(NOTICES))


def test_every_text_of_a_notices_file_is_found(backend: str) -> None:
    """Short texts among long ones too; ISC's first line mentions copyright ("provided that the above copyright
    notice ..."), which step 2 drops from the first line of a file but not of a license inside one."""
    found = detect.detect(third_party_notices())
    assert found is not None and found.ids == tuple(sorted(NOTICES)) and found.confidence > 0.99


def test_a_preface_does_not_lower_the_score(backend: str) -> None:
    """gogo/protobuf: copyright lines and a project description before the BSD text."""
    bsd = detect.canonical_text("BSD-3-Clause") or ""
    preface = "Copyright (c) 2013, The GoGo Authors. All rights reserved.\n\nProtocol Buffers for Go with Gadgets\n\n" \
        "Go support for Protocol Buffers - Google's data interchange format\n\n"
    found = detect.detect(preface + bsd)
    assert found is not None and found.license == "BSD-3-Clause" and found.confidence == 1.0


def test_a_license_inside_much_other_text_is_scored_as_a_whole(backend: str) -> None:
    """The parts must make up most of a file: a license beside long terms of another kind is not that license."""
    terms = " ".join(f"clause {n} the licensee shall pay the vendor fee {n} within thirty days." for n in range(60))
    found = detect.detect(MIT + "\n\n" + terms)
    assert found is not None and found.license == "MIT" and found.confidence < 0.5


# (b) the fallback gives the native core's answers


def fallback_answers(texts: list[str], monkeypatch: pytest.MonkeyPatch) -> list[Detection | None]:
    with monkeypatch.context() as patch:
        patch.setenv("POLYBUILD_NO_NATIVE", "1")
        fingerprint._native.cache_clear()
        found = detect.detect_many(texts)
    fingerprint._native.cache_clear()
    return found


def test_fallback_agrees_with_native(native_backend: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [shipped_text(name) for name in EXPECTED] + ODD_TEXTS + [_apache_without_appendix(), MIT + APACHE_HEADER,
                                                                      third_party_notices()]
    native_found = detect.detect_many(texts)
    python_found = fallback_answers(texts, monkeypatch)
    for text, n, p in zip(texts, native_found, python_found, strict=True):
        assert (n and n.license) == (p and p.license), text[:60]
        assert n is None or p is None or abs(n.confidence - p.confidence) <= 0.01, text[:60]
        assert n == p, text[:60]  # in fact the same float32 scores
        assert (n and n.close) == (p and p.close), text[:60]  # and the same near ties


def test_near_ties_are_reported(backend: str) -> None:
    """The Educational Community License 2.0 is Apache-2.0 with changes: Apache's text names it as a near tie."""
    found = detect.detect(detect.canonical_text("Apache-2.0") or "")
    assert found is not None and found.license == "Apache-2.0" and "ECL-2.0" in found.close


def test_fallback_agrees_with_native_on_canonical_texts(
    native_backend: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every 8th SPDX text (all of them take half a minute in Python)."""
    licenses, exceptions = detect._canonical_texts()
    texts = [licenses[i] for i in sorted(licenses)[::8]] + [exceptions[i] for i in sorted(exceptions)[::8]]
    answers, fallback = detect.detect_many(texts), fallback_answers(texts, monkeypatch)
    assert answers == fallback
    assert [d and d.close for d in answers] == [d and d.close for d in fallback]


def test_canonical_texts_agree(native_backend: ModuleType) -> None:
    licenses, exceptions = detect._canonical_texts()
    for spdx_id in [*licenses, *exceptions, "GPL-3.0+", "MIT++", "NOASSERTION", "unknown"]:
        found = licenses.get(spdx_id.rstrip("+"))
        assert native_backend.license_text(spdx_id) == (found if found is not None else exceptions.get(spdx_id))


# (c) backend choice and the fallback's data


def test_env_var_forces_fallback(native_backend: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYBUILD_NO_NATIVE", "1")
    fingerprint._native.cache_clear()
    assert detect.backend() == "python"
    found = detect.detect(MIT)
    assert found is not None
    assert found.license == "MIT"


def test_fallback_data_is_from_the_locked_crate() -> None:
    """Bumping `spdx` in Cargo.lock without running `_gen_texts.py` fails here."""
    lock = tomllib.loads((REPO / "Cargo.lock").read_text(encoding="utf-8"))
    (locked,) = {p["version"] for p in lock["package"] if p["name"] == "spdx"}
    assert detect._load(detect.DETECT_DATA)["spdx"] == locked
    assert detect._load(detect.CANONICAL_DATA)["spdx"] == locked
