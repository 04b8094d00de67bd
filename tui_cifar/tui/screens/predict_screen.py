"""Predict screen: classify your own pictures with a run's model.

Three widgets do the three jobs: the model picker (``ModelSelect``: the runs
with a model), one picture (``PicturePanel``: preview, top classes, the 32x32
input and Grad-CAM) and a folder (``FolderScore``: a CSV, and a score when its
subfolders are named after CIFAR-10 classes). The screen holds the model,
loaded in a thread worker (TensorFlow is imported there, and only there), and
hands it down; a status line below the toolbar says what is going on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, DirectoryTree, Footer, Header, Label, Select
from textual.worker import get_current_worker

from .. import remembered
from ..messages import ClassifyFolder, ShowRun
from ..widgets.folder_score import FolderScore
from ..widgets.image_tree import ImageTree
from ..widgets.model_select import ModelSelect, ModelState
from ..widgets.picture_panel import PicturePanel
from ..widgets.status_line import StatusLine, TaskStatus
from ..workers import in_thread
from .base import CifarScreen


class PredictScreen(CifarScreen):
    """Pick a model (run), pick an image: preview and top-5 classes; or a folder: a CSV and its score."""

    @dataclass
    class ModelLoaded(Message):
        """The chosen run's model, loaded in a thread, or why it could not be."""

        model: ModelState

    BINDINGS = [
        Binding("o", "open_file", "Open image"),
        Binding("f", "classify_folder", "Folder → CSV"),
        Binding("m", "focus_model", "Model", show=False),
    ]

    model: reactive[ModelState] = reactive(ModelState)
    status: reactive[TaskStatus] = reactive(TaskStatus)

    def __init__(self, start_dir: Path | None = None) -> None:
        super().__init__()
        last_folder = remembered.load_photo_folder()  # the tree opens where the photos were last time
        self.start_dir = Path(start_dir or (last_folder if last_folder is not None and last_folder.is_dir() else Path.cwd()))

    @property
    def run_dir(self) -> Path | None:
        return self.model.run_dir

    @property
    def classifier(self) -> Any:
        return self.model.classifier

    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="predict-toolbar", classes="toolbar"):
            yield Label("Model:", classes="toolbar-label")
            yield ModelSelect(id="model-select")
            yield Button("Open image… (o)", id="open-file")
            yield Button("Folder → CSV… (f)", id="classify-folder")
        yield StatusLine(id="model-status-row", spinner_id="model-loading", text_id="model-status").data_bind(
            PredictScreen.status)
        with Horizontal(id="predict-main"):
            yield ImageTree(self.start_dir, id="image-tree")
            with Vertical(id="predict-result"):
                yield PicturePanel(self.cifar.image_backend, id="picture").data_bind(PredictScreen.model)
                yield FolderScore(id="folder-score")
        yield Footer()

    def on_mount(self) -> None:
        self._show_folder_score(False)
        tree = self.query_one("#image-tree")
        tree.border_title = str(self.start_dir)
        tree.focus()
        self.query_one(ModelSelect).find(self.cifar.runs_dir, self.cifar.current_run, asked=False)

    def on_show_run(self, message: ShowRun) -> None:
        """Use this run's model (e.g. p on the runs screen); the list is read again, it may be new."""
        self.query_one(ModelSelect).find(self.cifar.runs_dir, message.run_dir, asked=True)

    # ------------------------------------------------------------ the model
    def on_model_select_found(self, message: ModelSelect.Found) -> None:
        if not message.options:
            self.status = TaskStatus(f"No run with a model in {self.cifar.runs_dir}: train one first (c).", bad=True)

    @on(Select.Changed, "#model-select")
    def _model_changed(self, event: Select.Changed) -> None:
        if event.value is not Select.NULL:
            self.select_model(Path(str(event.value)))

    def select_model(self, run_dir: Path) -> None:
        if run_dir == self.model.run_dir and (self.model.ready or self.model.error is None):
            return
        cached = self.cifar.classifiers.get(run_dir)
        if cached is not None:
            self._use_model(ModelState(run_dir, cached))
            return
        self.model = ModelState(run_dir)
        self.status = TaskStatus(f"Loading the model of {run_dir.name}… (TensorFlow starts once, this can take a while)",
                                 busy=True)
        self._load_model(run_dir)

    @in_thread("load-model")
    def _load_model(self, run_dir: Path) -> None:
        try:
            model = ModelState(run_dir, self.cifar.load_classifier(run_dir))
        except Exception as exc:  # ModelLoadError and friends: shown, not fatal
            model = ModelState(run_dir, error=str(exc) or exc.__class__.__name__)
        if not get_current_worker().is_cancelled:
            self.post_message(self.ModelLoaded(model))

    @on(ModelLoaded)
    def _model_loaded(self, message: ModelLoaded) -> None:
        if message.model.run_dir == self.model.run_dir:  # else another model was chosen since
            self._use_model(message.model)

    def _use_model(self, model: ModelState) -> None:
        """Predict with ``model`` from now on (the picture shown is classified again), or say why not."""
        assert model.run_dir is not None
        self.model = model
        if model.error:
            self.status = TaskStatus(f"Cannot load the model of {model.run_dir.name}: {model.error}", bad=True)
            self.notify(f"Cannot load the model: {model.error}", severity="error", timeout=8)
        else:
            self.status = TaskStatus(f"Model: {model.run_dir.name} — ready")

    def action_focus_model(self) -> None:
        self.query_one(ModelSelect).focus()

    # ------------------------------------------------------------ one picture
    def classify(self, path: Path) -> None:
        """Show the picture and what the model makes of it (in place of a folder's score)."""
        self._show_folder_score(False)
        self.query_one(PicturePanel).show(path)

    @on(DirectoryTree.FileSelected, "#image-tree")
    def _file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.classify(Path(event.path))

    def action_open_file(self) -> None:
        """The picker, in the folder of the last picture or photo folder (remembered across sessions)."""
        from ..widgets.image_picker import ImageOpen

        shown = self.query_one(PicturePanel).path
        start = shown.parent if shown else self.photo_folder()

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.classify(Path(path))

        self.app.push_screen(ImageOpen(start, title="Classify an image"), chosen)

    def photo_folder(self) -> Path:
        """The last folder of photos classified (remembered), if it is still there; else where the tree started."""
        folder = remembered.load_photo_folder()
        return folder if folder is not None and folder.is_dir() else self.start_dir

    @on(Button.Pressed, "#open-file")
    def _open_pressed(self) -> None:
        self.action_open_file()

    @on(Button.Pressed, "#classify-folder")
    def _folder_pressed(self) -> None:
        self.action_classify_folder()

    # ------------------------------------------------------------ a folder
    def on_classify_folder(self, _message: ClassifyFolder) -> None:
        self.action_classify_folder()

    def action_classify_folder(self) -> None:
        """Ask for a folder (typed, the last one offered); its predictions go beside the run's model, not into it."""
        from .dialogs import PathPromptScreen

        run_dir = self.model.run_dir
        if run_dir is None:
            self.notify("Choose a run with a trained model first", severity="warning")
            return

        def folder_chosen(answer: str | None) -> None:
            if not answer:
                return
            folder = Path(answer).expanduser()
            if not folder.is_dir():
                self.notify(f"{folder} is not a folder", title="Folder not classified", severity="error", timeout=8)
                return
            if problem := remembered.save_photo_folder(folder.resolve()):
                self.notify(problem, severity="warning")
            from ...engine.prediction import default_csv_path

            self.status = TaskStatus(f"Classifying the images in {folder} and its subfolders…", busy=True)
            self.query_one(FolderScore).classify(self.cifar.load_classifier, run_dir, folder,
                                                 default_csv_path(run_dir, [folder]))

        self.app.push_screen(
            PathPromptScreen("Folder of images to classify, subfolders included (type or paste a path). "
                             "Subfolders named after CIFAR-10 classes are scored.", str(self.photo_folder()),
                             title="Classify a folder"),
            folder_chosen,
        )

    def on_folder_score_done(self, done: FolderScore.Done) -> None:
        if done.error:
            self.status = TaskStatus(f"Folder not classified: {done.error}", bad=True)
            self.notify(done.error, title="Folder not classified", severity="error", timeout=8)
            return
        text = f"{done.folder}: {done.summary} → {done.csv_path}"
        self.status = TaskStatus(text)
        tree = self.query_one("#image-tree", ImageTree)  # the tree and the picker show the folder just classified
        tree.path = done.folder
        tree.border_title = str(done.folder)
        self.query_one(PicturePanel).forget()
        self.notify(text, title="Predictions written", timeout=8)
        self._show_folder_score(done.score is not None)

    def _show_folder_score(self, shown: bool) -> None:
        """A labelled folder's score takes the place of the picture (a picture chosen brings it back)."""
        self.query_one(FolderScore).display = shown
        self.query_one(PicturePanel).display = not shown
