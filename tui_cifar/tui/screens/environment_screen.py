"""About / environment: the facts of `cifar-tui doctor` in a panel (command palette).

TensorFlow takes seconds to import and list its devices, so the facts are
gathered in a thread worker when the panel opens, never at the app's start.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Label, LoadingIndicator, Static


class EnvironmentScreen(ModalScreen[None]):
    """Versions, TensorFlow's build and devices, GPUs, where data, weights and the feature cache are."""

    @dataclass
    class FactsGathered(Message):
        """doctor.doctor()'s facts, or why they could not be gathered."""

        facts: dict | None
        error: str | None

    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, data_dir: str | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.data_dir = data_dir
        self.facts: dict | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="environment"):
            yield Label("About cifar-tui / environment", classes="dialog-title")
            yield LoadingIndicator(id="environment-loading")
            with VerticalScroll(id="environment-scroll"):
                yield Static("Asking TensorFlow which devices it sees… (it starts once, this can take a while)",
                             id="environment-facts", classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close (esc)", id="close")

    def on_mount(self) -> None:
        self._gather(self.data_dir)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _gather(self, data_dir: str | None) -> None:
        from ...engine.doctor import doctor

        try:
            facts, error = doctor(data_dir=data_dir), None
        except Exception as exc:  # an unexpected environment: say so in the panel
            facts, error = None, str(exc) or exc.__class__.__name__
        self.post_message(self.FactsGathered(facts, error))

    @on(FactsGathered)
    def _gathered(self, message: FactsGathered) -> None:
        from ...engine.doctor import doctor_lines

        self.query_one("#environment-loading").display = False
        shown = self.query_one("#environment-facts", Static)
        if message.error or message.facts is None:
            shown.update(Text(f"Cannot gather the facts: {message.error}", style="bold yellow"))
            return
        self.facts = message.facts
        table = Table(box=None, show_header=False, padding=(0, 1))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for label, value in doctor_lines(message.facts):
            table.add_row(label, value)
        for warning in message.facts["warnings"]:
            table.add_row(Text("warning", style="bold yellow"), Text(warning, style="yellow"))
        shown.update(table)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
