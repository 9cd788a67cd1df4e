"""Every command's --help: a description, every option explained, and examples that the real parser accepts."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator

import pytest

from conftest import polybuild_env, run_polybuild
from polybuild.cli.examples import EXAMPLES
from polybuild.cli.main import _parser


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("polybuild",)
              ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                yield from _commands(command, (*path, name))


COMMANDS = dict(_commands(_parser()))
IDS = [" ".join(path) for path in COMMANDS]


@pytest.mark.parametrize("path", COMMANDS, ids=IDS)
def test_every_command_has_a_description(path):
    description = COMMANDS[path].description
    assert description and description.strip()[0].isupper(), f"`{' '.join(path)} --help` has no description"


@pytest.mark.parametrize("path", COMMANDS, ids=IDS)
def test_every_argument_is_explained(path):
    unexplained = [action.option_strings or [action.metavar or action.dest] for action in COMMANDS[path]._actions
                   if not isinstance(action, argparse._SubParsersAction)
                   and (not action.help or action.help == argparse.SUPPRESS)]
    assert not unexplained, f"`{' '.join(path)}`: no help= for {unexplained}"


def _examples(parser: argparse.ArgumentParser) -> list[list[str]]:
    epilog = parser.epilog or ""
    _, found, block = epilog.partition("Examples:\n")
    examples = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()] if found else []
    return [argv[:next((i for i, word in enumerate(argv) if word in ("|", ">")), len(argv))] for argv in examples]


@pytest.mark.parametrize("path", COMMANDS, ids=IDS)
def test_every_command_has_examples_that_parse(path):
    examples = _examples(COMMANDS[path])
    assert examples, (f"`{' '.join(path)} --help` has no `Examples:`: add some to python/polybuild/cli/examples.py, "
                      f"as \"{' '.join(path)}\": [\"{' '.join(path)} ...  # what it does\"]")
    for argv in examples:
        assert argv[0] == "polybuild"
        words = iter(argv[1:])
        assert all(word in words for word in path[1:]), f"{shlex.join(argv)} is not an example of {path}"
        try:
            _parser().parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"the example `{shlex.join(argv)}` of `{' '.join(path)} --help` does not parse")


def test_every_example_is_of_a_command():
    assert set(EXAMPLES) <= set(IDS), f"examples of commands that do not exist: {set(EXAMPLES) - set(IDS)}"


def test_help_shows_the_description_and_the_examples_as_written(tmp_path):
    out = run_polybuild("build", "--help", cwd=tmp_path, env=polybuild_env(COLUMNS="80")).stdout
    assert "\nBuild targets and their dependencies into dist/.\n" in out
    examples = out.split("Examples:\n", 1)[1].splitlines()
    assert examples[0].startswith("  polybuild build ") and all(line.startswith("  polybuild") for line in examples)
