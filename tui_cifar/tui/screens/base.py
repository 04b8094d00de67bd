"""What every cifar-tui screen shares: typed access to the app, and worker failures shown, not lost."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from ..app import CifarApp


NARROW_BELOW = 110  # columns; the app's "-narrow" breakpoint


class CifarScreen(Screen):
    """Base of the app's screens.

    Workers run with ``exit_on_error=False`` and catch the errors they expect
    (a bad file, no model); anything else ends up here, as a notification,
    instead of taking the app down or vanishing.
    """

    @property
    def cifar(self) -> "CifarApp":
        return self.app  # type: ignore[return-value]

    def on_resize(self, event: events.Resize) -> None:
        """A compact footer below the wide breakpoint, so every key fits in 80 columns."""
        for footer in self.query(Footer):
            footer.compact = event.size.width < NARROW_BELOW

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{event.worker.name}: {error}", title="Something went wrong", severity="error",
                        timeout=10)
