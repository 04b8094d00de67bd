"""Predict screen: classify your own pictures with a run's model.

The model loads in a thread worker (TensorFlow is imported there, and only
there). A file that is not a usable image gets a message beside the preview
and a notification; the app carries on.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import (
    Button, DirectoryTree, Footer, Header, Label, LoadingIndicator, Select, Static,
)
from textual.worker import get_current_worker

from ... import runreader, runstore
from ...formatting import format_pct
from ...images import is_image_name
from ..messages import ClassifyFolder
from .base import CifarScreen
from ..widgets.bars import topk_table
from ..widgets.halfblock import HalfBlockImage
from ..widgets.image_tree import ImageTree

if TYPE_CHECKING:
    from ..app import CifarApp

TOP_K = 5
_model_lock = threading.Lock()


class ModelsFound(Message):
    def __init__(self, options: list[tuple[str, str]]) -> None:
        super().__init__()
        self.options = options


class ModelLoaded(Message):
    def __init__(self, run_dir: Path, classifier: Any, error: str | None) -> None:
        super().__init__()
        self.run_dir, self.classifier, self.error = run_dir, classifier, error


class PreviewLoaded(Message):
    def __init__(self, path: Path, image: Any, error: str | None) -> None:
        super().__init__()
        self.path, self.image, self.error = path, image, error


class Classified(Message):
    def __init__(self, path: Path, result: Any, error: str | None) -> None:
        super().__init__()
        self.path, self.result, self.error = path, result, error


class FolderDone(Message):
    def __init__(self, message: str | None, error: str | None) -> None:
        super().__init__()
        self.text, self.error = message, error


def load_classifier_cached(app: "CifarApp", run_dir: Path):
    """The run's Classifier, loaded once per app (call from a thread worker)."""
    with _model_lock:
        classifier = app.classifiers.get(run_dir)
        if classifier is None:
            from ... import hardware, prediction

            note = hardware.configure_for_app(app.runs_dir)
            if note:
                app.call_from_thread(app.notify, note)
            classifier = prediction.load_classifier(run_dir)
            app.classifiers[run_dir] = classifier
        return classifier


class PredictScreen(CifarScreen):
    """Pick a model (run), pick an image: preview and top-5 classes."""

    BINDINGS = [
        Binding("o", "open_file", "Open image"),
        Binding("f", "classify_folder", "Folder → CSV"),
        Binding("m", "focus_model", "Model", show=False),
    ]

    def __init__(self, start_dir: Path | None = None) -> None:
        super().__init__()
        self.start_dir = Path(start_dir or Path.cwd())
        self.run_dir: Path | None = None
        self.classifier: Any = None
        self.model_error: str | None = None
        self.current_file: Path | None = None
        self.pending_file: Path | None = None
        self.result: Any = None  # the last FilePrediction
        self.error: str | None = None
        self._notified: set[tuple[Path, str]] = set()


    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="predict-toolbar", classes="toolbar"):
            yield Label("Model:", classes="toolbar-label")
            yield Select([], prompt="looking for trained runs…", id="model-select")
            yield Button("Open image… (o)", id="open-file")
            yield Button("Folder → CSV… (f)", id="classify-folder")
        with Horizontal(id="model-status-row"):
            yield LoadingIndicator(id="model-loading")
            yield Static("", id="model-status")
        with Horizontal(id="predict-main"):
            yield ImageTree(self.start_dir, id="image-tree")
            with Vertical(id="predict-result"):
                yield Static("Choose an image in the tree (Enter) or with o.", id="file-name")
                with Horizontal(id="predict-panes"):
                    yield Vertical(id="preview-box")
                    with Vertical(id="topk-box"):
                        yield Static("", id="topk")
                        yield Static("", id="predict-error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#model-loading").display = False
        tree = self.query_one("#image-tree")
        tree.border_title = str(self.start_dir)
        tree.focus()
        self._find_models(self.cifar.runs_dir)

    # ------------------------------------------------------------ models
    @work(thread=True, exclusive=True, exit_on_error=False, group="find-models")
    def _find_models(self, runs_dir: Path) -> None:
        options = []
        try:
            summaries = runreader.list_runs(runs_dir)
        except OSError:
            summaries = []
        summaries.sort(key=lambda s: (s.state == "finished", s.started_at or "", s.name), reverse=True)
        for s in summaries:
            if (s.path / runstore.MODEL_FILE).exists():
                label = f"{s.name} ({s.state}"
                if s.test_accuracy is not None:
                    label += f", test {format_pct(s.test_accuracy)}"
                options.append((label + ")", str(s.path)))
        self.post_message(ModelsFound(options))

    @on(ModelsFound)
    def _models_found(self, message: ModelsFound) -> None:
        options = message.options
        select = self.query_one("#model-select", Select)
        select.set_options(options)
        if not options:
            select.prompt = "no trained model yet"
            self._status(f"No run with a model in {self.cifar.runs_dir}: train one first (c).", bad=True)
            return
        current = self.cifar.current_run
        values = [v for _l, v in options]
        wanted = str(current) if current is not None and str(current) in values else values[0]
        select.value = wanted  # -> Select.Changed -> load

    @on(Select.Changed, "#model-select")
    def _model_changed(self, event: Select.Changed) -> None:
        if event.value is Select.NULL:
            return
        self.select_model(Path(str(event.value)))

    def select_model(self, run_dir: Path) -> None:
        if run_dir == self.run_dir and (self.classifier is not None or self.model_error is None):
            return
        self.run_dir = run_dir
        self.classifier = None
        self.model_error = None
        cached = self.cifar.classifiers.get(run_dir)
        if cached is not None:
            self._model_loaded(ModelLoaded(run_dir, cached, None))
            return
        self.query_one("#model-loading").display = True
        self._status(f"Loading the model of {run_dir.name}… (TensorFlow starts once, this can take a while)")
        self._load_model(run_dir)

    @work(thread=True, exclusive=True, exit_on_error=False, group="load-model")
    def _load_model(self, run_dir: Path) -> None:
        try:
            classifier = load_classifier_cached(self.cifar, run_dir)
            error = None
        except Exception as exc:  # ModelLoadError and friends: shown, not fatal
            classifier, error = None, str(exc) or exc.__class__.__name__
        if not get_current_worker().is_cancelled:
            self.post_message(ModelLoaded(run_dir, classifier, error))

    @on(ModelLoaded)
    def _model_loaded(self, message: ModelLoaded) -> None:
        run_dir, classifier, error = message.run_dir, message.classifier, message.error
        if run_dir != self.run_dir:
            return
        self.query_one("#model-loading").display = False
        self.classifier = classifier
        self.model_error = error
        if error:
            self._status(f"Cannot load the model of {run_dir.name}: {error}", bad=True)
            self.notify(f"Cannot load the model: {error}", severity="error", timeout=8)
            return
        self._status(f"Model: {run_dir.name} — ready")
        target = self.pending_file or self.current_file
        self.pending_file = None
        if target is not None:
            self.classify(target)

    def _status(self, text: str, bad: bool = False) -> None:
        status = self.query_one("#model-status", Static)
        status.update(text)
        status.set_class(bad, "-bad")

    def action_focus_model(self) -> None:
        self.query_one("#model-select", Select).focus()

    # ------------------------------------------------------------ choosing files
    @on(DirectoryTree.FileSelected, "#image-tree")
    def _file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.classify(Path(event.path))

    def action_open_file(self) -> None:
        from textual_fspicker import FileOpen, Filters

        filters = Filters(("Images", lambda p: is_image_name(p.name)), ("All files", lambda _p: True))
        start = self.current_file.parent if self.current_file else self.start_dir

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.classify(Path(path))

        self.app.push_screen(FileOpen(start, title="Classify an image", filters=filters), chosen)

    @on(Button.Pressed, "#open-file")
    def _open_pressed(self) -> None:
        self.action_open_file()

    @on(Button.Pressed, "#classify-folder")
    def _folder_pressed(self) -> None:
        self.action_classify_folder()

    # ------------------------------------------------------------ classifying one file
    def classify(self, path: Path) -> None:
        """Preview the file and, once the model is ready, show its top classes."""
        self.current_file = path
        self.result = None
        self._set_error(None)
        self.query_one("#file-name", Static).update(Text(str(path), style="bold"))
        self.query_one("#topk", Static).update("")
        self._load_preview(path)
        if self.classifier is not None:
            self.query_one("#topk", Static).update("classifying…")
            self._classify(path, self.classifier)
        elif self.model_error is not None or self.run_dir is None:
            self.query_one("#topk", Static).update("no model loaded: choose a run with a trained model")
            self.pending_file = path
        else:
            self.pending_file = path
            self.query_one("#topk", Static).update("waiting for the model…")

    @work(thread=True, exclusive=True, exit_on_error=False, group="preview")
    def _load_preview(self, path: Path) -> None:
        try:
            from ...images import load_preview

            image, error = load_preview(path, max_side=256), None
        except Exception as exc:  # ImageLoadError is one line naming the file; others are unexpected
            image, error = None, str(exc) or exc.__class__.__name__
        if not get_current_worker().is_cancelled:
            self.post_message(PreviewLoaded(path, image, error))

    @on(PreviewLoaded)
    async def _preview_loaded(self, message: PreviewLoaded) -> None:
        path, image, error = message.path, message.image, message.error
        if path != self.current_file:
            return
        box = self.query_one("#preview-box", Vertical)
        await box.remove_children()  # finish removing the old preview before mounting its successor
        if error:
            self._set_error(error)
            return
        if self.cifar.image_backend == "textual-image":
            try:
                from textual_image.widget import Image as TIImage

                box.mount(TIImage(image, id="preview", classes="terminal-graphics"))
                return
            except Exception:  # fall back to half-blocks
                pass
        box.mount(HalfBlockImage(image, id="preview"))

    @work(thread=True, exclusive=True, exit_on_error=False, group="classify")
    def _classify(self, path: Path, classifier: Any) -> None:
        try:
            result = classifier.classify_files([path], top_k=TOP_K)[0]
            error = None
        except Exception as exc:  # the classifier itself failed: say so, keep going
            result, error = None, f"classification failed: {exc}"
        if not get_current_worker().is_cancelled:
            self.post_message(Classified(path, result, error))

    @on(Classified)
    def _classified(self, message: Classified) -> None:
        path, result, error = message.path, message.result, message.error
        if path != self.current_file:
            return
        self.result = result
        topk = self.query_one("#topk", Static)
        if error is None and result is not None and result.error:
            error = result.error
        if error is not None or result is None or not result.top:
            topk.update("")
            self._set_error(error or "no prediction")
            return
        topk.update(topk_table(list(result.top)))

    def _set_error(self, error: str | None) -> None:
        self.error = error
        widget = self.query_one("#predict-error", Static)
        if not error:
            widget.update("")
            widget.remove_class("-shown")
            return
        widget.update(Text(f"⚠ {error}"))
        widget.add_class("-shown")
        key = (self.current_file or Path(), error)
        if key not in self._notified:
            self._notified.add(key)
            self.notify(error, title="Cannot classify this file", severity="error", timeout=6)

    # ------------------------------------------------------------ folders
    def on_classify_folder(self, _message: ClassifyFolder) -> None:
        self.action_classify_folder()

    def action_classify_folder(self) -> None:
        from textual_fspicker import SelectDirectory

        from .dialogs import PathPromptScreen

        if self.run_dir is None:
            self.notify("Choose a run with a trained model first", severity="warning")
            return
        run_dir = self.run_dir

        def csv_chosen(folder: Path, csv_path: str | None) -> None:
            if csv_path:
                self._status(f"Classifying the images in {folder}…")
                self.query_one("#model-loading").display = True
                self._classify_folder(run_dir, folder, Path(csv_path).expanduser())

        def folder_chosen(folder: Path | None) -> None:
            if folder is None:
                return
            default = Path(folder) / f"predictions-{run_dir.name}.csv"
            self.app.push_screen(
                PathPromptScreen(f"Write the predictions for the images in {folder} to:", str(default),
                                 title="Classify folder to CSV"),
                lambda answer: csv_chosen(Path(folder), answer),
            )

        self.app.push_screen(SelectDirectory(self.start_dir, title="Folder of images to classify"), folder_chosen)

    @work(thread=True, exclusive=True, exit_on_error=False, group="classify-folder")
    def _classify_folder(self, run_dir: Path, folder: Path, csv_path: Path) -> None:
        try:
            classifier = load_classifier_cached(self.cifar, run_dir)
            n_ok, n_failed = classifier.classify_folder_to_csv(folder, csv_path)
            message, error = f"{n_ok} images classified, {n_failed} failed → {csv_path}", None
        except Exception as exc:  # an unreadable folder, an unwritable CSV, no model
            message, error = None, str(exc) or exc.__class__.__name__
        self.post_message(FolderDone(message, error))

    @on(FolderDone)
    def _folder_done(self, done: FolderDone) -> None:
        message, error = done.text, done.error
        self.query_one("#model-loading").display = False
        if error:
            self._status(f"Folder not classified: {error}", bad=True)
            self.notify(error, title="Folder not classified", severity="error", timeout=8)
        else:
            self._status(message or "")
            self.notify(message or "", title="Predictions written", timeout=8)
