"""Thread workers for screens and widgets: one decorator, and what a worker raises shown instead of lost."""

from __future__ import annotations

from textual import work
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from ..errors import CifarTuiError


def in_thread(group: str = "default", exclusive: bool = True):
    """A worker in a thread (file reads, TensorFlow), the newest call of its group only (a ``group`` per job),
    and what it raises shown by :func:`show_error` instead of ending the app (with :class:`ShowsWorkerErrors`)."""
    return work(thread=True, exclusive=exclusive, exit_on_error=False, group=group)


def show_error(node: Widget, error: BaseException, where: str = "") -> None:
    """The one way the app shows a failure: a CifarTuiError's message under its title, else the bug's text."""
    if isinstance(error, CifarTuiError):
        node.notify(error.message, title=error.title, severity="error", timeout=10)
    else:
        node.notify(f"{where}: {error}" if where else str(error), title=CifarTuiError.title, severity="error",
                    timeout=10)


class ShowsWorkerErrors:
    """For a screen or widget with ``in_thread`` workers: a worker's failure ends up as a notification (an
    expected CifarTuiError under its own title, anything else as a bug with the worker's name), neither
    taking the app down nor vanishing. A worker's state messages do not bubble, so each owner needs this."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            show_error(self, event.worker.error, event.worker.name)  # type: ignore[arg-type]
