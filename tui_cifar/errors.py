"""The errors cifar-tui expects, under one root: each carries its one-line message, the exit code the CLI
returns for it and the title the app shows it under.

cli.commands.main prints ``cifar-tui: MESSAGE`` and returns ``exit_code`` for every one of them; the app's
screens show them through CifarScreen. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_USAGE = 2
# A run stopped before its end (Ctrl-C, SIGTERM, the app's stop): the shell's "interrupted" code.
# Its best model so far is kept and `--resume` continues it.
EXIT_STOPPED = 130


class CifarTuiError(Exception):
    """An expected failure: bad input, a missing file, an unusable run. ``str()`` is the one-line message."""

    exit_code: int = EXIT_FAILED
    title: str = "Something went wrong"

    def __init__(self, message: str, exit_code: int | None = None, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code
        if title is not None:
            self.title = title
