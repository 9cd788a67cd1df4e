"""The shell completion scripts, generated from the `polybuild` parser: commands, options, the values an option
takes (its choices, files or directories) and positional arguments, for bash, zsh and fish.

Run when the wheel is built (`python -m polybuild.cli.completion_scripts DIR`, from hatch_build.py); at run time
`polybuild completion SHELL` reads what this wrote.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from polybuild.cli.completion import SCRIPTS
from polybuild.cli.main import _parser
from polybuild.support.platforms import PLATFORMS

HEADER = "# {shell} completion for polybuild, generated from its command line when the package was built.\n" \
         "# Install it with `polybuild completion {shell}` (see `polybuild completion --help`).\n"


@dataclass(frozen=True)
class Argument:
    """An option or a positional argument, and what completes its value."""

    names: tuple[str, ...]  # an option's flags; a positional's metavar
    help: str
    value: str | None  # None (a flag), "choices", "files", "dirs" or "" (a value nothing completes)
    choices: tuple[str, ...] = ()
    repeatable: bool = False  # an option given several times; a positional taking several words
    optional: bool = False  # a positional that may be left out
    metavar: str | None = None

    @property
    def what(self) -> str:
        """What the value is, as help shows it: its metavar (N, OS/ARCH), else the option's name."""
        return self.metavar or self.names[-1].lstrip("-")


@dataclass
class Command:
    path: tuple[str, ...]
    help: str
    options: list[Argument] = field(default_factory=list)
    positionals: list[Argument] = field(default_factory=list)
    commands: dict[str, Command] = field(default_factory=dict)

    def walk(self) -> Iterator[Command]:
        """This command, then every command below it, depth first."""
        yield self
        for command in self.commands.values():
            yield from command.walk()

    @property
    def name(self) -> str:
        """The command as a shell function name: _polybuild_cache_gc."""
        return "_" + "_".join(re.sub(r"\W", "_", word) for word in self.path)


def command(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("polybuild",), help: str = "") -> Command:
    """The parser as completion sees it."""
    found = Command(path, help)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for listed in action._choices_actions:
                found.commands[listed.dest] = command(action.choices[listed.dest], (*path, listed.dest),
                                                      _oneline(listed.help))
        elif action.option_strings:
            found.options.append(_argument(action, tuple(action.option_strings)))
        else:
            found.positionals.append(_argument(action, (action.metavar or action.dest,)))
    return found


def _argument(action: argparse.Action, names: tuple[str, ...]) -> Argument:
    many = action.nargs in ("*", "+") or isinstance(action, (argparse._AppendAction, argparse._ExtendAction))
    optional_value = action.nargs == "?" and action.option_strings
    platforms = PLATFORMS if action.metavar == "OS/ARCH" else ()  # every platform polybuild builds for
    choices = tuple(map(str, action.choices or platforms))
    if action.nargs == 0 or (optional_value and not choices):  # `--affected [REF]` is a flag to complete
        value = None
    elif choices:
        value = "choices"
    elif action.metavar in ("DIR", "TARGET"):  # a target is named by its directory too (listing ids is too slow)
        value = "dirs"
    elif action.metavar == "FILE" or action.type is Path:
        value = "files"
    else:
        value = ""
    return Argument(names, _oneline(action.help), value, choices, many,
                    action.nargs in ("?", "*"), action.metavar if isinstance(action.metavar, str) else None)


def _oneline(text: str | None) -> str:
    return " ".join((text or "").split()) if text != argparse.SUPPRESS else ""


def script(shell: str) -> str:
    root = command(_parser())
    first = "#compdef polybuild\n" if shell == "zsh" else ""  # how compinit finds the function in $fpath
    return first + HEADER.format(shell=shell) + {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](root)


# bash: one function walks the words typed so far to the command they name, skipping option values; the table of
# each command (_polybuild_spec) and the values of each option or positional (_polybuild_values) are generated.
_BASH = r"""
_polybuild() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local path=polybuild word skip= npos=0 i commands options valued positionals
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if [[ $word == = ]]; then skip=1; continue; fi  # --opt=value: readline splits at the =
        if [[ -n $skip ]]; then skip=; continue; fi
        _polybuild_spec "$path"
        if [[ " $valued " == *" $word "* ]]; then skip=1
        elif [[ $word == -* ]]; then :
        elif [[ " $commands " == *" $word "* ]]; then path+=" $word"; npos=0
        else ((npos++))
        fi
    done
    if [[ $cur == = ]]; then cur=; elif [[ $prev == = ]]; then prev=${COMP_WORDS[COMP_CWORD-2]}; fi
    if [[ $cur == -*=* ]]; then prev=${cur%%=*}; cur=${cur#*=}; fi
    _polybuild_spec "$path"
    if [[ " $valued " == *" $prev "* ]]; then
        _polybuild_values "$path $prev"
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$options" -- "$cur"))
    elif [[ -n $commands ]]; then
        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
    else
        local -a slots=($positionals)
        local slot=${slots[npos]:-}
        if [[ -z $slot && ${slots[${#slots[@]}-1]} == *... ]]; then slot=${slots[${#slots[@]}-1]}; fi
        [[ -n $slot ]] && _polybuild_values "$path $slot"
    fi
    return 0
}
"""

_BASH_VALUES = {
    "files": 'compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur"))',
    "dirs": 'compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur"))',
}


def _bash(root: Command) -> str:
    specs, values = [], {}
    for cmd in root.walk():
        valued = [name for option in cmd.options if option.value is not None for name in option.names]
        options = [name for option in cmd.options for name in option.names]
        slots = [p.names[0] + ("..." if p.repeatable else "") for p in cmd.positionals if p.value is not None]
        specs.append(f'    "{" ".join(cmd.path)}") commands="{" ".join(cmd.commands)}" options="{" ".join(options)}" '
                     f'valued="{" ".join(valued)}" positionals="{" ".join(slots)}";;')
        for arg in [*cmd.options, *cmd.positionals]:
            if arg.value == "choices":
                action = f'COMPREPLY=($(compgen -W "{" ".join(arg.choices)}" -- "$cur"))'
            else:
                action = _BASH_VALUES.get(arg.value or "")
            if action:
                keys = [f"{name}..." if arg.repeatable and not arg.names[0].startswith("-") else name
                        for name in arg.names]
                values.setdefault(action, []).extend(f'"{" ".join(cmd.path)} {key}"' for key in keys)
    cases = "\n".join(f"    {'|'.join(keys)})\n        {action};;" for action, keys in values.items())
    return (_BASH + "\n_polybuild_spec() {  # what the command $1 takes\n    case $1 in\n" + "\n".join(specs)
            + "\n    esac\n}\n\n_polybuild_values() {  # the values of the option or argument $1\n    case $1 in\n"
            + cases + "\n    esac\n}\n\ncomplete -F _polybuild polybuild\n")


def _zsh(root: Command) -> str:
    functions = []
    joined = " \\\n        "
    for cmd in root.walk():
        specs = [_zsh_option(option, name) for option in cmd.options for name in option.names]
        if cmd.commands:
            listed = "\n".join(f"        {_zsh_quote(name + ':' + sub.help)}" for name, sub in cmd.commands.items())
            specs += ["': :_polybuild_commands'", "'*:: :->command'"]
            dispatch = "\n".join(f"            {name}) {sub.name} && ret=0 ;;" for name, sub in cmd.commands.items())
            body = (f"    local -a commands=(\n{listed}\n    )\n"
                    "    _polybuild_commands() { _describe -t commands command commands }\n"
                    f"    _arguments -C -s -S \\\n        {joined.join(specs)} && ret=0\n"
                    "    if [[ $state == command ]]; then\n"
                    f"        curcontext=${{curcontext%:*:*}}:{'-'.join(cmd.path)}-$words[1]:\n"
                    f"        case $words[1] in\n{dispatch}\n        esac\n    fi\n")
        else:
            specs += [_zsh_positional(p) for p in cmd.positionals]
            body = f"    _arguments -s -S \\\n        {joined.join(specs)} && ret=0\n"
        functions.append(f"{cmd.name}() {{\n    local curcontext=$curcontext state state_descr line ret=1\n"
                         f"    typeset -A opt_args\n{body}    return ret\n}}\n")
    return ("\n".join(functions) + f'\nif [[ $funcstack[1] == {root.name} ]]; then\n    {root.name} "$@"\n'
            f"else  # sourced, not autoloaded from $fpath\n    compdef {root.name} polybuild\nfi\n")


def _zsh_option(option: Argument, name: str) -> str:
    exclusive = "" if option.repeatable or len(option.names) == 1 else f"({' '.join(option.names)})"
    spec = ("*" if option.repeatable else "") + exclusive + name
    if option.value is not None:
        spec += "=" if name.startswith("--") else "+"
    spec += "[" + option.help.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]") + "]"
    if option.value is not None:
        spec += f":{option.what}:{_zsh_action(option)}"
    return _zsh_quote(spec)


def _zsh_positional(positional: Argument) -> str:
    lead = "*" if positional.repeatable else (":" if positional.optional else "")
    return _zsh_quote(f"{lead}:{positional.names[0]}:{_zsh_action(positional)}")


def _zsh_action(arg: Argument) -> str:
    if arg.value == "choices":
        return f"({' '.join(arg.choices)})"
    # A value nothing completes says what it is (an empty action would stop options completing in its place).
    return {"files": "_files", "dirs": "_files -/"}.get(
        arg.value or "", f"_message {arg.what}")


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# fish: __polybuild_at PATH is true when the words typed so far name that command (option values skipped).
_FISH = r"""
function __polybuild_path --description 'the polybuild command the words typed so far name'
    set -l path polybuild
    set -l skip
    for word in (commandline -opc)[2..-1]
        if set -q skip[1]
            set -e skip
        else if contains -- "$path $word" $__polybuild_valued
            set skip 1
        else if contains -- "$path $word" $__polybuild_commands
            set path "$path $word"
        end
    end
    echo $path
end

function __polybuild_at --description 'whether the words typed so far name this polybuild command'
    test (__polybuild_path) = "$argv"
end

complete -c polybuild -f
"""


def _fish(root: Command) -> str:
    commands = [" ".join(cmd.path) for cmd in root.walk()][1:]
    valued = [f"{' '.join(cmd.path)} {name}" for cmd in root.walk() for option in cmd.options
              if option.value is not None for name in option.names]
    lines = [_FISH, f"set -g __polybuild_commands {' '.join(map(_fish_quote, commands))}",
             f"set -g __polybuild_valued {' '.join(map(_fish_quote, valued))}", ""]
    for cmd in root.walk():
        at = _fish_quote(f"__polybuild_at {' '.join(cmd.path)}")
        lines += [f"complete -c polybuild -n {at} -a {_fish_quote(name)} -d {_fish_quote(sub.help)}"
                  for name, sub in cmd.commands.items()]
        for option in cmd.options:
            flags = " ".join(f"-l {_fish_quote(n[2:])}" if n.startswith("--") else f"-s {_fish_quote(n[1:])}"
                             for n in option.names)
            lines.append(f"complete -c polybuild -n {at} {flags}{_fish_value(option)} -d {_fish_quote(option.help)}")
        lines += [f"complete -c polybuild -n {at}{_fish_value(p)}" for p in cmd.positionals
                  if p.value and not cmd.commands]
    return "\n".join(lines) + "\n"


def _fish_value(arg: Argument) -> str:
    if arg.value is None:
        return ""
    required = " -r" if arg.names[0].startswith("-") else ""
    if arg.value == "choices":
        return f"{required} -f -a {_fish_quote(' '.join(arg.choices))}"
    if arg.value == "files":
        return f"{required} -F"
    if arg.value == "dirs":
        return f"{required} -f -a '(__fish_complete_directories (commandline -ct))'"
    return f"{required} -f"


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def write(directory: Path) -> None:
    """Write every shell's script into `directory` (the build hook ships them)."""
    from polybuild.support.fs import write_atomic

    directory.mkdir(parents=True, exist_ok=True)
    for shell, name in SCRIPTS.items():
        write_atomic(directory / name, script(shell), durable=False)


if __name__ == "__main__":
    write(Path(sys.argv[1]))
