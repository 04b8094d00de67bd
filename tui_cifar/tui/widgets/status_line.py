"""A one-line task status: what a screen is doing or has done, a spinner while it works, amber when it failed."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import LoadingIndicator, Static


@dataclass(frozen=True)
class TaskStatus:
    text: str = ""
    busy: bool = False
    bad: bool = False


class StatusLine(Horizontal):
    """Bound to a screen's ``TaskStatus``; the spinner and the text keep their ids for the stylesheet."""

    status: reactive[TaskStatus] = reactive(TaskStatus)

    def __init__(self, id: str | None = None, spinner_id: str = "status-busy", text_id: str = "status-text") -> None:
        super().__init__(id=id)
        self.spinner_id, self.text_id = spinner_id, text_id

    def compose(self) -> ComposeResult:
        yield LoadingIndicator(id=self.spinner_id)
        yield Static("", id=self.text_id)

    def on_mount(self) -> None:
        self.watch_status(self.status)

    def watch_status(self, status: TaskStatus) -> None:
        if not self.is_mounted:
            return
        self.query_one(LoadingIndicator).display = status.busy
        text = self.query_one(f"#{self.text_id}", Static)
        text.update(status.text)
        text.set_class(status.bad, "-bad")
