"""The predict screen's model picker: the runs that have a model, newest finished first, and the one asked for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.message import Message
from textual.widgets import Select

from ...formatting import format_pct
from ...runs import reader, store
from ..workers import ShowsWorkerErrors, in_thread


@dataclass(frozen=True)
class ModelState:
    """The model a screen predicts with: the run chosen, its classifier once loaded, or why it could not be."""

    run_dir: Path | None = None
    classifier: Any = None
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.classifier is not None


def model_options(runs_dir: Path) -> list[tuple[str, str]]:
    """(label, run folder) of each run with a model: finished runs first, newest first, with its test accuracy."""
    try:
        summaries = reader.list_runs(runs_dir)
    except OSError:
        return []
    summaries.sort(key=lambda s: (s.state == "finished", s.started_at or "", s.name), reverse=True)
    options = []
    for s in summaries:
        if (s.path / store.MODEL_FILE).exists():
            label = f"{s.name} ({s.state}"
            if s.test_accuracy is not None:
                label += f", test {format_pct(s.test_accuracy)}"
            options.append((label + ")", str(s.path)))
    return options


class ModelSelect(ShowsWorkerErrors, Select[str]):
    """Runs with a model, read in a thread. ``find`` selects the run wanted when it has a model, else keeps the
    one chosen (or the first) and says why; the choice is Select.Changed, as for any Select."""

    @dataclass
    class Found(Message):
        """The runs with a model, read afresh; ``refused``: why the run asked for has no model to predict with."""

        select: ModelSelect
        options: list[tuple[str, str]]
        wanted: Path | None
        asked: bool
        refused: str | None

    def __init__(self, id: str | None = None) -> None:
        super().__init__([], prompt="looking for trained runs…", id=id, compact=True)

    @in_thread("find-models")
    def find(self, runs_dir: Path, wanted: Path | None, asked: bool) -> None:
        """Read the runs with a model; ``asked``: the user asked for ``wanted`` (p on the runs screen)."""
        refused = reader.no_model_reason(wanted) if asked and wanted is not None else None
        self.post_message(self.Found(self, model_options(runs_dir), wanted, asked, refused))

    def on_model_select_found(self, message: Found) -> None:
        options, wanted, before = message.options, message.wanted, self.value
        self.set_options(options)  # clears the choice
        if message.refused and wanted is not None:
            self.notify(f"{wanted.name}: {message.refused}", title="Nothing to predict with", severity="warning",
                        timeout=10)
        if not options:
            self.prompt = "no trained model yet"
            return
        values = [value for _label, value in options]
        if wanted is not None and str(wanted) in values:
            self.value = str(wanted)
            return
        chosen = before if before in values else values[0]
        if message.asked and wanted is not None and not message.refused:
            self.notify(f"{wanted.name} has no trained model; using {Path(chosen).name}", severity="warning",
                        timeout=6)
        self.value = chosen
