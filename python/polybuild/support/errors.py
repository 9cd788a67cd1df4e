"""Errors that end a run with a message instead of a traceback.

`UserError` covers everything the user can fix (bad config, bad arguments, missing toolchains): exit 2.
`BuildFailed` means a builder ran and failed: exit 1.
"""

from __future__ import annotations

EXIT_BUILD_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `cat` when its reader left


class PolybuildError(Exception):
    """Base class: carries the process exit code and a message that is already user-facing."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UserError(PolybuildError):
    """A mistake in config, arguments or environment; nothing was built."""


class ConfigError(UserError):
    """A config or manifest problem, located as `file:line`."""

    def __init__(self, message: str, *, file: str, line: int | None = None, hint: str | None = None) -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}", hint=hint)


class BuildFailed(PolybuildError):
    """One or more tasks failed; the summary was already printed."""

    exit_code = EXIT_BUILD_FAILED
