"""A tiny declarative schema: validates TOML tables with precise errors and documents itself.

Each key has a type, a default and one line of documentation; `docs/config.md` is generated from it, so every
key that is accepted is documented and vice versa.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from polybuild.support.errors import ConfigError
from polybuild.support.tomlfile import TomlFile

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a decimal number", bool: "a boolean", list: "an array",
               dict: "a table"}


@dataclass(frozen=True)
class Key:
    """A scalar or list key."""

    type: type | tuple[type, ...]
    doc: str
    default: Any = None
    item: type | None = None  # element type for lists
    choices: tuple[Any, ...] = ()
    minimum: int | None = None
    maximum: int | None = None  # a bound on what is sane (a huge `jobs` would start that many threads)
    rule: Callable[[Any], str | None] | None = None  # what is wrong with a well-typed value, or None

    def describe(self) -> str:
        if self.type is list:
            return f"an array of {_TYPE_NAMES[self.item].split(' ', 1)[1]}s" if self.item else "an array"
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        return " or ".join(_TYPE_NAMES[t] for t in types)


@dataclass(frozen=True)
class Table:
    """A table with a fixed set of keys."""

    keys: dict[str, Key | Table | Map | FreeTable | TableArray]
    doc: str = ""
    composable: bool = False  # its documentation says how each section merges across `include`d files


@dataclass(frozen=True)
class Map:
    """A table whose keys are user-chosen names (variants, targets, tasks), each validated by `value`."""

    value: Key | Table | Map | FreeTable
    doc: str = ""
    placeholder: str = "<name>"


@dataclass(frozen=True)
class TableArray:
    """An array of tables with a fixed set of keys (`include = [{ path = "..." }, ...]`)."""

    table: Table
    doc: str = ""


@dataclass(frozen=True)
class FreeTable:
    """A table of user data passed through (template variables, environment)."""

    doc: str = ""
    value_types: tuple[type, ...] = (str, int, float, bool, list, dict)


Node = Key | Table | Map | FreeTable | TableArray


@dataclass
class Validator:
    """Validates one document against a schema, collecting the first error with its location."""

    file: TomlFile
    prefix: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)

    def error(self, path: tuple[str, ...], message: str, hint: str | None = None) -> ConfigError:
        return self.file.error(self.prefix + path, message, hint)

    def check(self, node: Node, value: Any, path: tuple[str, ...]) -> Any:
        """Return `value` with defaults filled in, or raise a located ConfigError."""
        name = ".".join(self.prefix + path)
        if isinstance(node, Table):
            if not isinstance(value, dict):
                raise self.error(path, f"'{name}' must be a table, not {_kind(value)}")
            return self._table(node, value, path)
        if isinstance(node, Map):
            if not isinstance(value, dict):
                raise self.error(path, f"'{name}' must be a table, not {_kind(value)}")
            return {k: self.check(node.value, v, (*path, k)) for k, v in value.items()}
        if isinstance(node, FreeTable):
            if not isinstance(value, dict):
                raise self.error(path, f"'{name}' must be a table, not {_kind(value)}")
            for k, v in value.items():
                if not isinstance(v, node.value_types):
                    allowed = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in node.value_types)
                    raise self.error((*path, k), f"'{name}.{k}' must be {allowed}, not {_kind(v)}")
                self._no_nul([k, v], (*path, k), f"{name}.{k}")
            return value
        if isinstance(node, TableArray):
            if not isinstance(value, list):
                raise self.error(path, f"'{name}' must be an array of tables, not {_kind(value)}")
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    raise self.error(path, f"'{name}[{i}]' must be a table, not {_kind(item)}")
            return [self._table(node.table, item, path) for item in value]
        return self._key(node, value, path, name)

    def _table(self, node: Table, value: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k not in node.keys:
                close = difflib.get_close_matches(k, node.keys, n=1, cutoff=0.6)
                where = ".".join(self.prefix + path) or "the top level"
                hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(sorted(node.keys))}"
                raise self.error((*path, k), f"unknown key '{k}' in [{where}]", hint)
            out[k] = self.check(node.keys[k], v, (*path, k))
        for k, sub in node.keys.items():
            if k not in out:
                out[k] = defaults(sub)
        return out

    def _key(self, node: Key, value: Any, path: tuple[str, ...], name: str) -> Any:
        types = node.type if isinstance(node.type, tuple) else (node.type,)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self.error(path, f"'{name}' must be {node.describe()}, not {_kind(value)}")
        if node.item is not None and isinstance(value, list):
            for i, item in enumerate(value):
                if not isinstance(item, node.item):
                    raise self.error(path, f"'{name}[{i}]' must be {_TYPE_NAMES[node.item]}, not {_kind(item)}")
        if node.choices and value not in node.choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in node.choices], n=1)
            hint = f"did you mean {close[0]!r}?" if close else None
            choices = ", ".join(repr(c) for c in node.choices)
            raise self.error(path, f"'{name}' is {value!r}; expected one of {choices}", hint)
        if node.minimum is not None and isinstance(value, int) and value < node.minimum:
            raise self.error(path, f"'{name}' is {value}; it must be at least {node.minimum}")
        if node.maximum is not None and isinstance(value, int) and value > node.maximum:
            raise self.error(path, f"'{name}' is {value}; it must be at most {node.maximum}")
        self._no_nul(value, path, name)
        problem = node.rule(value) if node.rule else None
        if problem:  # a rule on an array names the bad item itself
            raise self.error(path, f"'{name}': {problem}" if isinstance(value, list) else
                             f"'{name}' is {value!r}: {problem}")
        return value

    def _no_nul(self, value: Any, path: tuple[str, ...], name: str) -> None:
        """A NUL byte cannot be in a path, an argument or an environment value: refused wherever it is."""
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and "\0" in text:
                raise self.error(path, f"'{name}' contains a NUL byte")


def defaults(node: Node) -> Any:
    """The value a missing key takes."""
    if isinstance(node, Table):
        return {k: defaults(v) for k, v in node.keys.items()}
    if isinstance(node, (Map, FreeTable)):
        return {}
    if isinstance(node, TableArray):
        return []
    return list(node.default) if isinstance(node.default, (list, tuple)) else node.default


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def document(node: Node, title: str) -> str:
    """Markdown reference for every key of the schema (and, for a composable one, how each section merges)."""
    lines: list[str] = []
    _document(node, [title], lines, isinstance(node, Table) and node.composable)
    return "\n".join(lines) + "\n"


# How `polybuild.config.compose` merges each kind of section, for the reference.
_MERGE = {
    Table: "merged key by key across included files (the later file wins per key; an array is replaced whole, "
           "never unioned).",
    Map: "the entries of every included file are kept; an entry defined in several files is merged key by key.",
    FreeTable: "merged key by key across included files (the later file wins per key).",
    TableArray: "not merged: each file's includes are its own, resolved relative to it.",
}


def _document(node: Node, path: list[str], lines: list[str], merge: bool = False) -> None:
    header = ".".join(path)
    note = [f"*Composition:* {_MERGE[type(node)]}"] if merge else []
    if isinstance(node, Table):
        lines.append(f"\n## `[{header}]`\n")
        if node.doc:
            lines.append(node.doc + "\n")
        lines.extend(n + "\n" for n in note)
        _document_keys(node, lines)
        for k, v in node.keys.items():
            if not isinstance(v, Key):
                _document(v, [*path, k], lines, merge)
    elif isinstance(node, Map):
        if node.doc or note:
            lines.append(f"\n## `[{header}]`\n")
            lines.extend([node.doc] if node.doc else [])
            lines.extend(["", *note] if node.doc and note else note)
        _document(node.value, [*path, node.placeholder], lines, merge)
    elif isinstance(node, FreeTable):
        lines.append(f"\n## `[{header}]`\n\n{node.doc}")
        lines.extend(["", *note] if note else [])
    elif isinstance(node, TableArray):
        lines.append(f"\n## `[[{header}]]`\n\n{node.doc}\n")
        lines.extend(n + "\n" for n in note)
        _document_keys(node.table, lines)


def _document_keys(node: Table, lines: list[str]) -> None:
    scalars = [(k, v) for k, v in node.keys.items() if isinstance(v, Key)]
    if scalars:
        lines.append("| key | type | default | meaning |")
        lines.append("|---|---|---|---|")
        for k, v in scalars:
            default = "—" if v.default is None else f"`{_toml_literal(v.default)}`"
            doc = v.doc + (f" One of: {', '.join(_toml_literal(c) for c in v.choices)}." if v.choices else "")
            lines.append(f"| `{k}` | {v.describe()} | {default} | {doc} |")


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    return str(value)


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}
JSON_SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"  # the newest draft Taplo (Even Better TOML) reads


def json_schema(node: Node, title: str, prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON Schema document of the schema, for editors (completion, hover docs, errors as you type).

    The same keys, types, choices, bounds, defaults and docs as the validator and the reference; a key's `rule`
    (paths inside the workspace, version syntax, ...) is the validator's alone. With a `prefix` such as
    ("tool", "polybuild"), the schema is of a file that holds the config at that key and anything else beside it.
    """
    schema = _json_node(node)
    for key in reversed(prefix):
        schema = {"type": "object", "properties": {key: schema}}
    return {"$schema": JSON_SCHEMA_DIALECT, "title": title, **schema}


def _json_node(node: Node) -> dict[str, Any]:
    if isinstance(node, Table):
        return {**_description(node.doc), "type": "object", "additionalProperties": False,
                "properties": {k: _json_node(v) for k, v in node.keys.items()}}
    if isinstance(node, Map):
        return {**_description(node.doc), "type": "object", "additionalProperties": _json_node(node.value)}
    if isinstance(node, FreeTable):
        return {**_description(node.doc), "type": "object",
                "additionalProperties": {"type": _json_types(node.value_types)}}
    if isinstance(node, TableArray):
        return {**_description(node.doc), "type": "array", "items": _json_node(node.table)}
    out = {**_description(node.doc), "type": _json_types(node.type if isinstance(node.type, tuple) else (node.type,))}
    if node.item is not None:
        out["items"] = {"type": _JSON_TYPES[node.item]}
    if node.choices:
        out["enum"] = list(node.choices)
    if node.minimum is not None:
        out["minimum"] = node.minimum
    if node.maximum is not None:
        out["maximum"] = node.maximum
    if node.default is not None:
        out["default"] = list(node.default) if isinstance(node.default, tuple) else node.default
    return out


def _json_types(types: tuple[type, ...]) -> str | list[str]:
    names = [_JSON_TYPES[t] for t in types]
    return names[0] if len(names) == 1 else names


def _description(doc: str) -> dict[str, str]:
    return {"description": doc} if doc else {}
