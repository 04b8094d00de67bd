"""What every cifar-tui screen shares: typed access to the app, timers that pause while hidden, a compact
footer on a narrow terminal, and worker failures shown, not lost."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import events
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer

from ..workers import ShowsWorkerErrors

if TYPE_CHECKING:
    from ..app import CifarApp


NARROW_BELOW = 110  # columns; the app's "-narrow" breakpoint


class CifarScreen(ShowsWorkerErrors, Screen):
    """Base of the app's screens.

    Workers (``workers.in_thread``) run with ``exit_on_error=False``; what they raise
    ends up as a notification (``workers.ShowsWorkerErrors``).
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
