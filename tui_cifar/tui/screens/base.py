"""What every cifar-tui screen shares: typed access to the app, and worker failures shown, not lost."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from ...errors import CifarTuiError

if TYPE_CHECKING:
    from ..app import CifarApp


NARROW_BELOW = 110  # columns; the app's "-narrow" breakpoint


class CifarScreen(Screen):
    """Base of the app's screens.

    Workers run with ``exit_on_error=False``; what they raise ends up here, as a
    notification, instead of taking the app down or vanishing: an expected failure
    (errors.CifarTuiError: a bad file, no model) under its own title, anything else
    as "Something went wrong" with the worker's name.
    """

    @property
    def cifar(self) -> CifarApp:
        return self.app  # type: ignore[return-value]

    def on_resize(self, event: events.Resize) -> None:
        """A compact footer below the wide breakpoint, so every key fits in 80 columns."""
        for footer in self.query(Footer):
            footer.compact = event.size.width < NARROW_BELOW

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.show_error(event.worker.error, event.worker.name)

    def show_error(self, error: BaseException, where: str = "") -> None:
        """The one way the app shows a failure: a CifarTuiError's message under its title, else the bug's text."""
        if isinstance(error, CifarTuiError):
            self.notify(error.message, title=error.title, severity="error", timeout=10)
        else:
            self.notify(f"{where}: {error}" if where else str(error), title=CifarTuiError.title, severity="error",
                        timeout=10)
