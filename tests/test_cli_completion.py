"""Shell completion: scripts generated from the parser by the wheel's build hook, shipped in the wheel, printed by
`polybuild completion SHELL` from the file, and completing in a real bash, zsh and fish."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, polybuild_env, run_polybuild
from polybuild.cli.completion import SCRIPTS
from polybuild.cli.completion_scripts import script

SHARED = {"polybuild": "share/bash-completion/completions/polybuild",
          "_polybuild": "share/zsh/site-functions/_polybuild",
          "polybuild.fish": "share/fish/vendor_completions.d/polybuild.fish"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """polybuild's wheel, built from this tree by hatchling (with the build hook), unpacked."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)],
                   check=True, capture_output=True, text=True)
    unpacked = out / "unpacked"
    with zipfile.ZipFile(next(out.glob("polybuild-*.whl"))) as archive:
        archive.extractall(unpacked)
    return unpacked


@pytest.fixture(scope="module")
def scripts(wheel) -> Path:
    return wheel / "polybuild" / "cli" / "completions"


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A directory to complete in: target directories among other files."""
    for name in ("lib", "python", "pyproject.toml"):
        (tmp_path / name).mkdir() if "." not in name else (tmp_path / name).write_text("")
    return tmp_path


def test_the_wheel_ships_the_scripts_generated_from_the_parser(wheel, scripts):
    for shell, name in SCRIPTS.items():
        shipped = (scripts / name).read_text(encoding="utf-8")
        assert shipped == script(shell), f"{name} in the wheel is not what the parser gives now"
        data = next(wheel.glob("polybuild-*.data")) / "data" / SHARED[name]
        assert data.read_text(encoding="utf-8") == shipped  # where a --user or system install puts it on the path


def test_completion_prints_the_shipped_file(wheel, scripts, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(wheel, site)
    marker = "# read from the shipped file\n"
    with (site / "polybuild" / "cli" / "completions" / "polybuild").open("a") as f:
        f.write(marker)
    out = run_polybuild("completion", "bash", cwd=tmp_path, env=polybuild_env(PYTHONPATH=str(site)))
    assert out.returncode == 0, out.stderr
    assert out.stdout == (scripts / "polybuild").read_text(encoding="utf-8") + marker


def test_completion_in_a_source_tree_generates_the_script(tmp_path):
    for shell in SCRIPTS:
        out = run_polybuild("completion", shell, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout == script(shell)
    bad = run_polybuild("completion", "tcsh", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice: 'tcsh'" in bad.stderr


BASH_DRIVER = """
source "$1"
complete -p polybuild
c() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _polybuild; echo "${COMPREPLY[*]}"; }
"""

# words typed (the last one is being completed) -> what completion offers
CASES = {
    ("polybuild", "bu"): "build",
    ("polybuild", ""): "build affected run graph explain cache container version completion ...",  # and more
    ("polybuild", "build", "--d"): "--dependents --dry-run",
    ("polybuild", "cache", ""): "stats gc",
    ("polybuild", "-C", "lib", "ca"): "cache",  # an option's value is not a command
    ("polybuild", "build", "-j", "4", "--color", "al"): "always",
    ("polybuild", "build", "--color", "=", "n"): "never",  # --color=n, as readline splits it
    ("polybuild", "completion", ""): "bash zsh fish",
    ("polybuild", "build", "py"): "python",  # a target directory
    ("polybuild", "run", "test", "l"): "lib",  # TASK, then targets
    ("polybuild", "run", ""): "",  # a task name: nothing to offer
    ("polybuild", "container", "build", "app", "--platform", "linux/arm64", "--pu"): "--push",
    ("polybuild", "config-reference", "--json-schema", ""): "polybuild.toml pyproject.toml",
    ("polybuild", "build", "--config", "py"): "python pyproject.toml",
    ("polybuild", "build", "--platform", "linux/a"): "linux/amd64 linux/arm64",  # the platforms polybuild knows
}


def test_bash_completes_commands_options_and_their_values(scripts, workdir):
    if not shutil.which("bash"):
        pytest.skip("bash is not installed")
    calls = "\n".join("c " + " ".join(f"'{word}'" for word in words) for words in CASES)
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", BASH_DRIVER + calls, "bash",
                          str(scripts / "polybuild")], cwd=workdir, capture_output=True, text=True, check=True)
    registered, *offered = out.stdout.splitlines()
    assert registered == "complete -F _polybuild polybuild"
    for (words, expected), got in zip(CASES.items(), offered, strict=True):
        wanted, offered_words = set(expected.split()), set(got.split())
        if "..." in wanted:
            assert wanted - {"..."} < offered_words, f"{' '.join(words)}<TAB>: {got!r}"
        else:
            assert wanted == offered_words, f"{' '.join(words)}<TAB>: {got!r}"
    options = subprocess.run(["bash", "--norc", "--noprofile", "-c", BASH_DRIVER + "c polybuild build --",
                              "bash", str(scripts / "polybuild")], cwd=workdir, capture_output=True, text=True,
                             check=True).stdout.splitlines()[1].split()
    assert {"--jobs", "--keep-going", "--variant", "--platform", "--dry-run", "--affected", "--config"} <= set(options)


ZSH_DRIVER = r"""
zmodload zsh/zpty
dir=$1 out=$2; shift 2
zpty z zsh -f -i
zpty -w z "fpath=($dir \$fpath); autoload -Uz compinit; compinit -u -d $out.dump"
zpty -w z "dump() { print -r -- \"\$BUFFER\" >> $out; zle kill-whole-line }; zle -N dump; bindkey '^X' dump"
for line in "$@"; do
  zpty -w -n z "$line"$'\t\x18'
done
for i in {1..200}; do
  [[ -f $out && $(wc -l < $out) -ge $# ]] && break
  sleep 0.1
done
zpty -d z
"""

# a line typed, then TAB -> the line completion leaves
LINES = {
    "polybuild bu": "polybuild build ",
    "polybuild build --dry": "polybuild build --dry-run ",
    "polybuild --color al": "polybuild --color always ",
    "polybuild build --color=ne": "polybuild build --color=never ",
    "polybuild -C lib ca": "polybuild -C lib cache ",
    "polybuild cache g": "polybuild cache gc ",
    "polybuild container build app --pu": "polybuild container build app --push ",
    "polybuild completion fi": "polybuild completion fish ",
    "polybuild build -j 4 pyt": "polybuild build -j 4 python/",
    "polybuild version set --fr": "polybuild version set --from-git ",  # an option where VERSION could be
    "polybuild lock upgrade --a": "polybuild lock upgrade --all ",
    "polybuild build --platform darwin/arm": "polybuild build --platform darwin/arm64 ",
}


def test_zsh_completes_commands_options_and_their_values(scripts, workdir):
    """Typed into an interactive zsh (in a pseudo-terminal), the script autoloaded from $fpath by compinit."""
    if not shutil.which("zsh"):
        pytest.skip("zsh is not installed (apt-get install zsh)")
    out = workdir / "buffers"
    subprocess.run(["zsh", "-f", "-c", ZSH_DRIVER, "zsh", str(scripts), str(out), *LINES], cwd=workdir,
                   check=True, timeout=60, env=polybuild_env(HOME=str(workdir)))
    assert out.read_text().splitlines() == [line.rstrip("\n") for line in LINES.values()]


FISH_CASES = {
    "polybuild bu": ["build"],
    "polybuild build --d": ["--dependents", "--dry-run"],
    "polybuild --color ": ["always", "auto", "never"],
    "polybuild -C lib ca": ["cache"],
    "polybuild cache ": ["gc", "stats"],
    "polybuild completion ": ["bash", "fish", "zsh"],
    "polybuild run test l": ["lib/"],
    "polybuild lock check --platform windows/": ["windows/amd64", "windows/arm64"],
}


def test_fish_completes_commands_options_and_their_values(scripts, workdir):
    if not shutil.which("fish"):
        pytest.skip("fish is not installed (apt-get install fish)")
    calls = "; ".join(f"complete -C '{line}'; echo ==" for line in FISH_CASES)
    out = subprocess.run(["fish", "--no-config", "-c", f"source {scripts / 'polybuild.fish'}; {calls}"],
                         cwd=workdir, capture_output=True, text=True, check=True, env=polybuild_env(HOME=str(workdir)))
    assert not out.stderr
    offered = out.stdout.split("==\n")[:-1]
    for (line, expected), got in zip(FISH_CASES.items(), offered, strict=True):
        assert [entry.split("\t")[0] for entry in got.splitlines()] == expected, f"{line}<TAB>: {got!r}"
    assert "\tparallel tasks" in subprocess.run(
        ["fish", "--no-config", "-c", f"source {scripts / 'polybuild.fish'}; complete -C 'polybuild build --jo'"],
        capture_output=True, text=True, check=True).stdout  # with each option's help
