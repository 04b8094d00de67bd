"""What every cifar-tui screen shares: typed access to the app, and worker failures shown, not lost."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import events, work
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from ...errors import CifarTuiError

if TYPE_CHECKING:
    from ..app import CifarApp


NARROW_BELOW = 110  # columns; the app's "-narrow" breakpoint


def in_thread(group: str = "default", exclusive: bool = True):
    """A screen's worker: in a thread (file reads, TensorFlow), the newest call of its group only (a
    ``group`` per job), and what it raises shown by CifarScreen.show_error instead of ending the app."""
    return work(thread=True, exclusive=exclusive, exit_on_error=False, group=group)


class CifarScreen(Screen):
    """Base of the app's screens.

    Workers run with ``exit_on_error=False``; what they raise ends up here, as a
    notification, instead of taking the app down or vanishing: an expected failure
    (errors.CifarTuiError: a bad file, no model) under its own title, anything else
    as "Something went wrong" with the worker's name.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._polls: list[tuple[Timer, Callable[[], object], Callable[[], bool]]] = []

    @property
    def cifar(self) -> CifarApp:
        return self.app  # type: ignore[return-value]

    def poll_every(self, interval: float, callback: Callable[[], object], active: Callable[[], bool] = lambda: True,
                   on_resume: Callable[[], object] | None = None) -> Timer:
        """Call ``callback`` every ``interval`` seconds while this screen shows and ``active()`` holds; when the
        screen shows again, ``on_resume`` (default: ``callback``) is called at once. A hidden screen reads
        nothing (an idle app stays idle)."""
        timer = self.set_interval(interval, callback, pause=not active())
        self._polls.append((timer, on_resume or callback, active))
        return timer

    def on_screen_suspend(self) -> None:
        for timer, _callback, _active in self._polls:
            timer.pause()

    def on_screen_resume(self) -> None:
        for timer, callback, active in self._polls:
            if active():
                timer.resume()
                callback()

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
