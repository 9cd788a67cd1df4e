"""Extras isolation: the built wheel installs and works with each extras set, and only with what it declares.

`check_extras(loaded, wheelhouse, packages)` is what `polybuild check-extras` and the release command call; see
docs/extras.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from polybuild.extras.check import ExtrasReport, check_extras

__all__ = ["ExtrasReport", "check_extras"]


def __getattr__(name: str):
    """Lazy: the CLI imports `polybuild.extras.command` at start-up without paying for packaging or subprocess."""
    if name in __all__:
        from polybuild.extras import check

        return getattr(check, name)
    raise AttributeError(f"module 'polybuild.extras' has no attribute {name!r}")
