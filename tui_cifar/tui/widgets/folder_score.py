"""The predict screen's folder job: classify a folder of photos (subfolders included) into a CSV beside the run's
model and, when subfolders are named after CIFAR-10 classes, score the run on them beside its test set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Static

from ..workers import ShowsWorkerErrors, in_thread
from .confusion import ConfusionMatrix
from .photo_score import photo_score_text


class FolderScore(ShowsWorkerErrors, Vertical):
    """``classify`` runs the job in a thread and posts :class:`FolderScore.Done`; a labelled folder's accuracy,
    recall per class and confusion matrix are then shown here (the screen decides when this panel shows)."""

    @dataclass
    class Done(Message):
        """A folder classified: what was found, where the CSV went, and the photos' scores when folders name classes."""

        folder: Path
        summary: str | None
        csv_path: Path
        score: dict[str, Any] | None  # folder_labels.score_photos, when a folder names a CIFAR-10 class
        test: dict[str, Any] | None  # folder_labels.test_set_scores of the run
        error: str | None

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.score: dict[str, Any] | None = None  # the last labelled folder's score_photos

    def compose(self) -> ComposeResult:
        yield Static("", id="folder-name")
        with VerticalScroll(id="folder-score-scroll"):
            yield Static("", id="photo-score")
            yield ConfusionMatrix(id="photo-confusion")

    @in_thread("classify-folder")
    def classify(self, load_classifier: Callable[[Path], Any], run_dir: Path, folder: Path, csv_path: Path) -> None:
        """Classify ``folder`` with the run's model into ``csv_path``; score it when its subfolders name classes."""
        from ...engine.folder_labels import score_photos, test_set_scores
        from ...engine.prediction import write_csv

        summary = score = test = error = None
        try:
            done = load_classifier(run_dir).classify_folder(folder)
            summary = done.summary()
            write_csv(done.results, csv_path)
            score = score_photos(done.results)
            if score["report"] is None:
                score = None
            else:
                test = test_set_scores(run_dir)
        except Exception as exc:  # an unreadable folder, an unwritable CSV, no model
            error = str(exc) or exc.__class__.__name__
            if summary is not None:
                error = f"{summary}, but {error}"
        self.post_message(self.Done(folder, summary, csv_path, score, test, error))

    def on_folder_score_done(self, done: Done) -> None:
        """Lay out a labelled folder's score (the message goes on to the screen)."""
        self.score = done.score
        if done.error or done.score is None:
            return
        report = done.score["report"]
        self.query_one("#folder-name", Static).update(
            Text(f"{done.folder}: scored by its class subfolders (choose a picture to see it again)", style="bold"))
        self.query_one("#photo-score", Static).update(photo_score_text(done.score, done.test))
        self.query_one("#photo-confusion", ConfusionMatrix).set_data(report["confusion_matrix"], report["classes"])

    @on(ConfusionMatrix.ScrollBeside, "#photo-confusion")
    def _scroll_score(self, event: ConfusionMatrix.ScrollBeside) -> None:
        area = self.query_one("#folder-score-scroll")
        {"page_up": area.scroll_page_up, "page_down": area.scroll_page_down,
         "home": area.scroll_home, "end": area.scroll_end}[event.how](animate=False)
