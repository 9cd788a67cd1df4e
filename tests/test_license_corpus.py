"""A regression corpus for license resolution: real crates, wheels and Go modules, fetched once from the registries
(crates.io's download endpoint, `pip download`, `go mod download` into a private module cache), then resolved offline
through polybuild's own path (each ecosystem's evidence reader, then `resolve_all` with detection), each asserting
the exact SPDX expression. The precision and recall over the corpus are printed (`-s`), with metadata and from the
license texts alone."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from polybuild.licenses import cargo, detect, go
from polybuild.licenses.attributions import summary_markdown
from polybuild.licenses.detect import detect_many
from polybuild.licenses.distributions import evidence
from polybuild.licenses.expression import licenses, parse
from polybuild.licenses.model import LicenseFile, Package, Resolved
from polybuild.licenses.policy import load_policy
from polybuild.licenses.resolve import resolve_all
from polybuild.licenses.sbom import Subject
from test_fingerprint import native  # noqa: F401  (the native core, built by maturin)
from test_license_detect import core, fallback_answers, native_backend  # noqa: F401  (its fixtures)

# (name, version) -> the SPDX expression the package is under.
CRATES = {
    ("anyhow", "1.0.89"): "MIT OR Apache-2.0",
    ("bytes", "1.7.2"): "MIT",
    ("hashbrown", "0.15.0"): "MIT OR Apache-2.0",
    ("libc", "0.2.159"): "MIT OR Apache-2.0",
    ("memchr", "2.7.4"): "Unlicense OR MIT",
    ("once_cell", "1.20.2"): "MIT OR Apache-2.0",
    ("openssl", "0.10.66"): "Apache-2.0",
    ("rand", "0.8.5"): "MIT OR Apache-2.0",
    ("regex", "1.11.0"): "MIT OR Apache-2.0",
    ("ring", "0.17.8"): "ISC AND MIT AND OpenSSL",  # no `license`, only `license-file`: read from the text
    ("rustls", "0.23.14"): "Apache-2.0 OR ISC OR MIT",
    ("serde", "1.0.210"): "MIT OR Apache-2.0",
    ("subtle", "2.6.1"): "BSD-3-Clause",
    ("syn", "2.0.79"): "MIT OR Apache-2.0",
    ("tokio", "1.40.0"): "MIT",
    ("unicode-ident", "1.0.13"): "(MIT OR Apache-2.0) AND Unicode-DFS-2016",
    ("webpki-roots", "0.26.6"): "MPL-2.0",
    ("zerocopy", "0.8.5"): "BSD-2-Clause OR Apache-2.0 OR MIT",
}
WHEELS = {
    ("attrs", "24.2.0"): "MIT",
    ("blake3", "1.0.11"): "CC0-1.0 OR Apache-2.0",  # an SPDX expression in the legacy License field (dynamo)
    ("certifi", "2024.8.30"): "MPL-2.0",
    ("charset-normalizer", "3.4.0"): "MIT",
    ("click", "8.1.7"): "BSD-3-Clause",
    ("filelock", "3.16.1"): "Unlicense",
    ("idna", "3.10"): "BSD-3-Clause",  # only the unspecific BSD classifier: read from LICENSE.md
    ("jinja2", "3.1.4"): "BSD-3-Clause",
    ("kiwisolver", "1.4.8"): "BSD-3-Clause",  # an account of the project after the BSD text (read as none)
    ("markupsafe", "3.0.2"): "BSD-3-Clause",  # the whole text pasted into the legacy License field
    # numpy.libs bundles OpenBLAS (LAPACK's text is BSD-3-Clause-Open-MPI's) and libgfortran: the GPL-3.0 text, the
    # GCC Runtime Library Exception's and a notice granting "version 3, or (at your option) any later version"
    ("numpy", "2.2.6"): "BSD-3-Clause AND BSD-3-Clause-Open-MPI AND GPL-3.0-or-later WITH GCC-exception-3.1",
    ("packaging", "24.2"): "Apache-2.0 OR BSD-2-Clause",
    ("pydantic", "2.9.2"): "MIT",
    ("pyyaml", "6.0.2"): "MIT",
    ("requests", "2.32.3"): "Apache-2.0",
    ("scipy", "1.15.3"): "BSD-3-Clause AND BSD-3-Clause-Open-MPI AND GPL-3.0-or-later WITH GCC-exception-3.1",
    ("six", "1.16.0"): "MIT",
    ("typing-extensions", "4.12.2"): "PSF-2.0",
    ("urllib3", "2.2.3"): "MIT",
    ("uvloop", "0.21.0"): "Apache-2.0 OR MIT",  # LICENSE-APACHE, LICENSE-MIT; "dual-licensed" in its description
}
# Go modules declare nothing: every answer comes from the license texts.
GO = {
    ("github.com/aws/smithy-go", "v1.22.1"): "Apache-2.0",  # Apache-2.0 without the appendix (read as Pixar)
    ("github.com/beorn7/perks", "v1.0.1"): "MIT",
    ("github.com/cespare/xxhash/v2", "v2.3.0"): "MIT",
    ("github.com/davecgh/go-spew", "v1.1.1"): "ISC",
    ("github.com/gogo/protobuf", "v1.3.2"): "BSD-3-Clause",  # a preface before the license
    ("github.com/golang/protobuf", "v1.5.4"): "BSD-3-Clause",
    ("github.com/google/uuid", "v1.6.0"): "BSD-3-Clause",
    ("github.com/gorilla/websocket", "v1.5.3"): "BSD-2-Clause",
    ("github.com/hashicorp/golang-lru", "v1.0.2"): "MPL-2.0",
    ("github.com/json-iterator/go", "v1.1.12"): "MIT",
    ("github.com/klauspost/compress", "v1.17.11"): "Apache-2.0 AND BSD-3-Clause AND MIT",  # three texts in one file
    ("github.com/mattn/go-isatty", "v0.0.20"): "MIT",
    ("github.com/opencontainers/go-digest", "v1.0.0"): "Apache-2.0",  # and LICENSE.docs: CC-BY-SA-4.0 for the docs
    ("github.com/pkg/errors", "v0.9.1"): "BSD-2-Clause",
    ("github.com/pmezard/go-difflib", "v1.0.0"): "BSD-3-Clause",
    ("github.com/prometheus/client_golang", "v1.20.5"): "Apache-2.0",
    ("github.com/shirou/gopsutil/v3", "v3.24.5"): "BSD-3-Clause",  # BSD-3-Clause twice, after a preface
    ("github.com/sirupsen/logrus", "v1.9.3"): "MIT",
    ("github.com/spf13/cobra", "v1.8.1"): "Apache-2.0",  # Apache-2.0 without the appendix (read as Pixar)
    ("github.com/spf13/pflag", "v1.0.5"): "BSD-3-Clause",
    ("github.com/stretchr/testify", "v1.9.0"): "MIT",
    ("go.uber.org/zap", "v1.27.0"): "MIT",
    ("go.yaml.in/yaml/v3", "v3.0.4"): "Apache-2.0 AND MIT",  # MIT and an Apache-2.0 header in one file
    ("golang.org/x/net", "v0.30.0"): "BSD-3-Clause",
    ("golang.org/x/sys", "v0.26.0"): "BSD-3-Clause",
    ("google.golang.org/grpc", "v1.67.1"): "Apache-2.0",
    ("google.golang.org/protobuf", "v1.35.1"): "BSD-3-Clause",
    ("gopkg.in/yaml.v2", "v2.4.0"): "Apache-2.0 AND MIT",  # LICENSE and LICENSE.libyaml
    ("gopkg.in/yaml.v3", "v3.0.1"): "Apache-2.0 AND MIT",
    ("sigs.k8s.io/yaml", "v1.4.0"): "Apache-2.0 AND BSD-3-Clause AND MIT",
}
# What the license texts alone hold, where that differs from the licenses of the expression above: the text of a
# newer license version than declared, third-party texts shipped beside the package's own.
TEXTS = {
    ("cargo", "unicode-ident"): {"Apache-2.0", "MIT", "Unicode-3.0"},  # declares Unicode-DFS-2016
    # CPython's license stack (PSF, BeOpen, CNRI, CWI: SPDX's Python-2.0.1) and 0BSD for the documentation's code
    ("pypi", "typing-extensions"): {"0BSD", "Python-2.0.1"},
}

CRATES_DL = "https://static.crates.io/crates/{name}/{name}-{version}.crate"  # cargo's download endpoint


def _fetch_crate(name: str, version: str, into: Path) -> Package:
    """A crate as cargo unpacks it, read as `polybuild deny` reads a dependency (`cargo metadata`'s package)."""
    with urllib.request.urlopen(CRATES_DL.format(name=name, version=version), timeout=120) as response:
        data = response.read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(into, filter="data")
    manifest = into / f"{name}-{version}" / "Cargo.toml"
    meta = subprocess.run(["cargo", "metadata", "--no-deps", "--offline", "--format-version", "1",
                           "--manifest-path", str(manifest)], capture_output=True, text=True, check=True, timeout=120)
    (pkg,) = json.loads(meta.stdout)["packages"]
    pkg["source"] = "registry+https://github.com/rust-lang/crates.io-index"
    return cargo._package(pkg, member=False, dependents=[])


def _fetch_wheels(into: Path) -> list[Package]:
    specs = [f"{name}=={version}" for name, version in WHEELS]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.11", "--platform", "manylinux2014_x86_64", "--dest", str(into), *specs],
                   check=True, timeout=600)
    return [evidence(wheel) for wheel in sorted(into.glob("*.whl"))]


def _fetch_go_modules(into: Path) -> list[Package]:
    into.mkdir()
    env = {**os.environ, "GOMODCACHE": str(into), "GOFLAGS": "-modcacherw", "GOTOOLCHAIN": "local"}
    listed = subprocess.run(["go", "mod", "download", "-json", *(f"{m}@{v}" for m, v in GO)], cwd=into, env=env,
                            capture_output=True, text=True, check=True, timeout=600)
    decoder, text, pos, found = json.JSONDecoder(), listed.stdout, 0, []
    while pos < len(text.rstrip()):
        info, pos = decoder.raw_decode(text, pos)
        pos += len(text[pos:]) - len(text[pos:].lstrip())
        found.append(go._package(go.Module(info["Path"], info["Version"], "proxy.golang.org", info["Dir"])))
    return found


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], Package]:
    """Every package of the corpus, fetched once per module, by (ecosystem, name, version)."""
    root = tmp_path_factory.mktemp("license-corpus")
    with ThreadPoolExecutor(max_workers=8) as pool:
        crates = [pool.submit(_fetch_crate, name, version, root / "crates") for name, version in CRATES]
        wheels = pool.submit(_fetch_wheels, root / "wheels")
        modules = pool.submit(_fetch_go_modules, root / "gomodcache")
        packages = [c.result() for c in crates] + wheels.result() + modules.result()
    return {p.key: p for p in packages}


def _expected() -> Iterator[tuple[str, str, str, str]]:
    for ecosystem, table in (("cargo", CRATES), ("pypi", WHEELS), ("golang", GO)):
        for (name, version), expression in table.items():
            yield ecosystem, name, version, expression


EXPECTED = {(e, n, v): x for e, n, v, x in _expected()}


def _resolve(packages: list[Package]) -> dict[tuple[str, str, str], Resolved]:
    policy = load_policy(Path(__file__).with_name("no-such-deny.toml"), display="deny.toml")  # cargo-deny's defaults
    return {r.package.key: r for r in resolve_all(packages, policy, detect_many)}


@pytest.fixture(scope="module")
def resolved(corpus: dict[tuple[str, str, str], Package]) -> dict[tuple[str, str, str], Resolved]:
    return _resolve(list(corpus.values()))


@pytest.fixture(scope="module")
def from_texts(corpus: dict[tuple[str, str, str], Package]) -> dict[tuple[str, str, str], Resolved]:
    """The corpus resolved from its license texts alone: no declared, legacy or classifier metadata."""
    bare = [dataclasses.replace(p, declared=None, legacy=None, classifiers=()) for p in corpus.values()]
    return _resolve(bare)


def test_the_corpus_is_fetched_whole(corpus: dict[tuple[str, str, str], Package]) -> None:
    assert set(corpus) == set(EXPECTED)
    assert len(corpus) >= 40


@pytest.mark.parametrize(("ecosystem", "name", "version"), [pytest.param(*k, id=f"{k[1]}@{k[2]}") for k in EXPECTED])
def test_license_resolves_exactly(resolved: dict[tuple[str, str, str], Resolved], ecosystem: str, name: str,
                                  version: str) -> None:
    found = resolved[(ecosystem, name, version)]
    assert found.expression == EXPECTED[(ecosystem, name, version)], (found.how, found.warnings)


def _ids(expression: str | None) -> set[str]:
    return {lic.id for lic in licenses(parse(expression))} if expression else set()


def _precision_recall(answers: dict[tuple[str, str, str], str | None], truth: dict) -> tuple[float, float]:
    """Precision: right answers among the answered; recall: right answers among all."""
    answered = [key for key, answer in answers.items() if answer is not None]
    right = [key for key in answered if answers[key] == truth[key]]
    return len(right) / max(len(answered), 1), len(right) / len(truth)


def test_precision_and_recall(resolved: dict[tuple[str, str, str], Resolved],
                              from_texts: dict[tuple[str, str, str], Resolved]) -> None:
    """Printed for the record: resolution with metadata (exact expressions), and detection from the texts alone
    (the set of license ids: a text says which licenses, never whether they are a choice)."""
    exact = _precision_recall({k: r.expression for k, r in resolved.items()}, EXPECTED)
    text_truth = {k: frozenset(TEXTS.get(k[:2], _ids(x))) for k, x in EXPECTED.items()}
    texts = {k: frozenset(_ids(r.expression)) or None for k, r in from_texts.items()}
    detected = _precision_recall(texts, text_truth)
    go_modules = [k for k in EXPECTED if k[0] == "golang"]
    go_texts = _precision_recall({k: texts[k] for k in go_modules}, {k: text_truth[k] for k in go_modules})
    print(f"\nlicense corpus: {len(EXPECTED)} packages ({len(go_modules)} Go modules)")
    print(f"  resolved (metadata, then texts): precision {exact[0]:.3f}  recall {exact[1]:.3f}")
    print(f"  license texts alone:             precision {detected[0]:.3f}  recall {detected[1]:.3f}")
    print(f"  Go modules (texts only):         precision {go_texts[0]:.3f}  recall {go_texts[1]:.3f}")
    misses = sorted(k for k in EXPECTED if texts[k] != text_truth[k])
    for key in misses:
        print(f"  from texts alone, {key[1]}@{key[2]}: {from_texts[key].expression} (expected {set(text_truth[key])})")
    assert exact == (1.0, 1.0)
    assert go_texts == (1.0, 1.0)


@pytest.mark.parametrize("gnu", ["GPL-2.0-only", "GPL-3.0-only", "LGPL-2.0-only", "LGPL-2.1-only", "LGPL-3.0-only",
                                 "AGPL-3.0-only"])
def test_a_gnu_text_alone_is_never_or_later(gnu: str) -> None:
    """numpy's "either version 3, or (at your option) any later version" makes its GPL-3.0 `-or-later`; the sample
    notice in the "How to apply" section of every GNU text says the same words, and is not a grant."""
    text = detect.canonical_text(gnu)
    assert text is not None
    package = Package("golang", "example.com/gnu", "v1.0.0", "pkg:golang/example.com/gnu@v1.0.0",
                      files=[LicenseFile("COPYING", "license", text)])
    (found,) = _resolve([package]).values()
    assert found.expression == gnu


def test_equivalent_expressions_share_one_row_of_the_summary(resolved: dict[tuple[str, str, str], Resolved]) -> None:
    """anyhow and the other crates declare `MIT OR Apache-2.0`, uvloop's texts read as `Apache-2.0 OR MIT`: one
    license, counted in one row of ATTRIBUTIONS.md."""
    summary = summary_markdown(Subject("corpus", "1"), resolved.values(), [])
    dual = sum(x in ("MIT OR Apache-2.0", "Apache-2.0 OR MIT") for x in EXPECTED.values())
    assert dual >= 2
    assert f"| `Apache-2.0 OR MIT` | {dual} |" in summary
    assert "`MIT OR Apache-2.0`" not in summary


@pytest.mark.usefixtures("native_backend")
def test_the_native_core_agrees_on_every_text(corpus: dict[tuple[str, str, str], Package],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The native core and the pure-Python fallback give the same answers (ids, float32 scores, near ties) on every
    license text of the corpus."""
    texts = list(dict.fromkeys(f.text for p in corpus.values() for f in p.files if f.kind == "license"))
    native_found = detect.detect_many(texts)
    fallback = fallback_answers(texts, monkeypatch)
    assert native_found == fallback
    assert [d and d.close for d in native_found] == [d and d.close for d in fallback]
