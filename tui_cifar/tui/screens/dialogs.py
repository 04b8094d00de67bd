"""A yes/no question in a modal dialog."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True (y / the confirm button) or False (n / escape)."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, *, yes: str = "Yes", no: str = "Cancel", title: str = "Please confirm"):
        super().__init__(classes="dialog-screen")
        self.question = question
        self.yes = yes
        self.no = no
        self.dialog_title = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.dialog_title, classes="dialog-title")
            yield Static(self.question, classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button(f"{self.no} (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class PathPromptScreen(ModalScreen[str | None]):
    """Asks for a path (or any line of text), pre-filled; Enter confirms, Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", *, title: str = "Choose a path"):
        super().__init__(classes="dialog-screen")
        self.question = question
        self.value = value
        self.dialog_title = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.dialog_title, classes="dialog-title")
            yield Static(self.question, classes="dialog-text")
            yield Input(self.value, id="answer")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", variant="primary", id="ok")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self.dismiss(self.query_one(Input).value.strip() or None)
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class DataFolderScreen(ModalScreen[str | None]):
    """CIFAR-10 is nowhere to be found: asks for its folder (typed, or b to browse), checked before it is accepted.

    Dismisses with the folder, DOWNLOAD (start anyway: Keras downloads it), or None (cancel).
    """

    DOWNLOAD = "download"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, looked_in: str, value: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.looked_in = looked_in
        self.value = value

    def compose(self) -> ComposeResult:
        from ...engine.data import DATA_DIR_ENV

        with Vertical(classes="dialog", id="data-folder-dialog"):
            yield Label("CIFAR-10 not found", classes="dialog-title")
            yield Static(f"The run needs CIFAR-10 (a folder holding cifar-10-batches-py/, or cifar-10-python.tar.gz) "
                         f"and found none in {self.looked_in}. Type or browse to its folder: it is remembered for "
                         f"next time (${DATA_DIR_ENV} sets it too). Or let Keras download it (170 MB, needs the "
                         "internet).", classes="dialog-text")
            yield Input(self.value, placeholder="folder holding CIFAR-10", id="answer")
            yield Static("", id="data-folder-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Use folder", variant="primary", id="ok", compact=True)
                yield Button("Browse…", id="browse", compact=True)
                yield Button("Download", id="download", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._use(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self._use(self.query_one(Input).value)
        elif event.button.id == "browse":
            self._browse()
        elif event.button.id == "download":
            self.dismiss(self.DOWNLOAD)
        else:
            self.dismiss(None)

    def _browse(self) -> None:
        from pathlib import Path

        from textual_fspicker import SelectDirectory

        typed = Path(self.query_one(Input).value.strip() or "~").expanduser()
        start = typed if typed.is_dir() else Path.home()

        def chosen(folder) -> None:
            if folder is not None:
                self.query_one(Input).value = str(folder)
                self._use(str(folder))

        self.app.push_screen(SelectDirectory(start, title="The folder holding CIFAR-10"), chosen)

    def _use(self, text: str) -> None:
        from ...engine.data import find_cifar10

        text = text.strip()
        error = self.query_one("#data-folder-error", Static)
        if not text:
            error.update("Type a folder, or Browse.")
        elif find_cifar10(text) is None:
            error.update(f"No CIFAR-10 in {text} (nor in its cifar-10-batches-py/ or cifar-10-python.tar.gz).")
        else:
            self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
