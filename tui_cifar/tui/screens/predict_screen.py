"""Predict screen: classify your own pictures with a run's model.

The model loads in a thread worker (TensorFlow is imported there, and only
there). A file that is not a usable image gets a message beside the preview
and a notification; the app carries on. Beside the photo: the 32x32 picture
the model really gets, and Grad-CAM's heatmap of where it looked for its top
class (a worker too). A folder is searched with its subfolders; when they are
named after CIFAR-10 classes, the screen scores the run on those photos.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import (
    Button,
    DirectoryTree,
    Footer,
    Header,
    Label,
    LoadingIndicator,
    Select,
    Static,
)
from textual.worker import get_current_worker

from ...formatting import format_pct
from ...runs import reader, store
from .. import remembered
from ..messages import ClassifyFolder, ShowRun
from ..widgets.bars import topk_table
from ..widgets.confusion import ConfusionMatrix
from ..widgets.halfblock import HalfBlockImage
from ..widgets.image_tree import ImageTree
from ..widgets.photo_score import photo_score_text
from .base import CifarScreen, in_thread

TOP_K = 5


class ModelsFound(Message):
    def __init__(self, options: list[tuple[str, str]], wanted: Path | None, asked: bool,
                 refused: str | None = None) -> None:
        super().__init__()
        self.options, self.wanted, self.asked = options, wanted, asked
        self.refused = refused  # why the wanted run has no model to predict with (a RunLogger run)


class ModelLoaded(Message):
    def __init__(self, run_dir: Path, classifier: Any, error: str | None) -> None:
        super().__init__()
        self.run_dir, self.classifier, self.error = run_dir, classifier, error


class PreviewLoaded(Message):
    def __init__(self, path: Path, image: Any, model_input: Any, error: str | None) -> None:
        super().__init__()
        self.path, self.image, self.model_input, self.error = path, image, model_input, error


class Classified(Message):
    def __init__(self, path: Path, result: Any, error: str | None) -> None:
        super().__init__()
        self.path, self.result, self.error = path, result, error


@dataclass
class Explained(Message):
    """Grad-CAM of a picture's 32x32 input for its top class (overlay: uint8 RGB), or why there is none."""

    path: Path
    class_name: str
    overlay: Any
    error: str | None


@dataclass
class FolderDone(Message):
    """A folder classified: what was found, where the CSV went, and the photos' scores when folders name classes."""

    folder: Path
    summary: str | None
    csv_path: Path
    score: dict[str, Any] | None  # folder_labels.score_photos, when a folder names a CIFAR-10 class
    test: dict[str, Any] | None  # folder_labels.test_set_scores of the run
    error: str | None


class PredictScreen(CifarScreen):
    """Pick a model (run), pick an image: preview and top-5 classes."""

    BINDINGS = [
        Binding("o", "open_file", "Open image"),
        Binding("f", "classify_folder", "Folder → CSV"),
        Binding("m", "focus_model", "Model", show=False),
    ]

    def __init__(self, start_dir: Path | None = None) -> None:
        super().__init__()
        last_folder = remembered.load_photo_folder()  # the tree opens where the photos were last time
        self.start_dir = Path(start_dir or (last_folder if last_folder is not None and last_folder.is_dir() else Path.cwd()))
        self.run_dir: Path | None = None
        self.classifier: Any = None
        self.model_error: str | None = None
        self.current_file: Path | None = None
        self.pending_file: Path | None = None
        self.result: Any = None  # the last FilePrediction
        self.error: str | None = None
        self.explanation: Explained | None = None  # the Grad-CAM of the current file, once computed
        self.folder_score: dict[str, Any] | None = None  # the last labelled folder's score_photos
        self._notified: set[tuple[Path, str]] = set()


    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="predict-toolbar", classes="toolbar"):
            yield Label("Model:", classes="toolbar-label")
            yield Select([], prompt="looking for trained runs…", id="model-select", compact=True)
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
                with Horizontal(id="seen-row"):
                    with Vertical(classes="seen-box"):
                        yield Label("model input 32×32", classes="seen-label")
                        yield HalfBlockImage(id="model-input")
                    with Vertical(classes="seen-box"):
                        yield Label("Grad-CAM", id="heatmap-label", classes="seen-label")
                        yield HalfBlockImage(id="heatmap")
                with VerticalScroll(id="folder-score"):
                    yield Static("", id="photo-score")
                    yield ConfusionMatrix(id="photo-confusion")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#model-loading").display = False
        self._show_folder_score(False)
        tree = self.query_one("#image-tree")
        tree.border_title = str(self.start_dir)
        tree.focus()
        self._find_models(self.cifar.runs_dir, self.cifar.current_run, asked=False)

    def on_show_run(self, message: ShowRun) -> None:
        """Use this run's model (e.g. p on the runs screen); the list is read again, it may be new."""
        self._find_models(self.cifar.runs_dir, message.run_dir, asked=True)

    # ------------------------------------------------------------ models
    @in_thread("find-models")
    def _find_models(self, runs_dir: Path, wanted: Path | None, asked: bool) -> None:
        options = []
        refused = None
        if asked and wanted is not None:
            refused = reader.no_model_reason(wanted)
        try:
            summaries = reader.list_runs(runs_dir)
        except OSError:
            summaries = []
        summaries.sort(key=lambda s: (s.state == "finished", s.started_at or "", s.name), reverse=True)
        for s in summaries:
            if (s.path / store.MODEL_FILE).exists():
                label = f"{s.name} ({s.state}"
                if s.test_accuracy is not None:
                    label += f", test {format_pct(s.test_accuracy)}"
                options.append((label + ")", str(s.path)))
        self.post_message(ModelsFound(options, wanted, asked, refused))

    @on(ModelsFound)
    def _models_found(self, message: ModelsFound) -> None:
        options = message.options
        select = self.query_one("#model-select", Select)
        select.set_options(options)
        if message.refused and message.wanted is not None:
            self.notify(f"{message.wanted.name}: {message.refused}", title="Nothing to predict with",
                        severity="warning", timeout=10)
        if not options:
            select.prompt = "no trained model yet"
            self._status(f"No run with a model in {self.cifar.runs_dir}: train one first (c).", bad=True)
            return
        values = [v for _l, v in options]
        wanted = message.wanted
        if wanted is not None and str(wanted) in values:
            select.value = str(wanted)  # -> Select.Changed -> load
            return
        fallback = str(self.run_dir) if self.run_dir is not None and str(self.run_dir) in values else values[0]
        if message.asked and wanted is not None and not message.refused:
            self.notify(f"{wanted.name} has no trained model; using {Path(fallback).name}", severity="warning",
                        timeout=6)
        select.value = fallback

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

    @in_thread("load-model")
    def _load_model(self, run_dir: Path) -> None:
        try:
            classifier = self.cifar.load_classifier(run_dir)
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
        """The picker, in the folder of the last picture or photo folder (remembered across sessions)."""
        from ..widgets.image_picker import ImageOpen

        start = self.current_file.parent if self.current_file else self.photo_folder()

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

    # ------------------------------------------------------------ classifying one file
    def classify(self, path: Path) -> None:
        """Preview the file and, once the model is ready, show its top classes."""
        self.current_file = path
        self.result = None
        self._set_error(None)
        self.query_one("#file-name", Static).update(Text(str(path), style="bold"))
        self.query_one("#topk", Static).update("")
        self.explanation = None
        self.query_one("#model-input", HalfBlockImage).image = None
        self.query_one("#heatmap", HalfBlockImage).image = None
        self.query_one("#heatmap-label", Label).update("Grad-CAM")
        self._show_folder_score(False)
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

    @in_thread("preview")
    def _load_preview(self, path: Path) -> None:
        try:
            from ...engine.images import load_preview, model_input

            image, seen, error = load_preview(path, max_side=256), model_input(path), None
        except Exception as exc:  # ImageLoadError is one line naming the file; others are unexpected
            image, seen, error = None, None, str(exc) or exc.__class__.__name__
        if not get_current_worker().is_cancelled:
            self.post_message(PreviewLoaded(path, image, seen, error))

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
        self.query_one("#model-input", HalfBlockImage).image = message.model_input
        if self.cifar.image_backend == "textual-image":
            try:
                from textual_image.widget import Image as TIImage

                box.mount(TIImage(image, id="preview", classes="terminal-graphics"))
                return
            except Exception:  # fall back to half-blocks
                pass
        box.mount(HalfBlockImage(image, id="preview"))

    @in_thread("classify")
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
        if self.classifier is not None:
            self.query_one("#heatmap-label", Label).update(f"Grad-CAM: {result.top[0][0]}…")
            self._explain(path, self.classifier, result.top[0][0])

    @in_thread("explain")
    def _explain(self, path: Path, classifier: Any, class_name: str) -> None:
        """Grad-CAM for the class shown on top (the Keras model: a LiteRT runtime has no gradients)."""
        try:
            from ...engine.data import CLASS_NAMES
            from ...engine.explain import explain
            from ...engine.images import model_input

            explanation = explain(classifier.keras_model, model_input(path)[None],
                                  [CLASS_NAMES.index(class_name)])[0]
            overlay, error = explanation.overlay(), None
        except Exception as exc:  # ExplainError (a model without a backbone model), a file gone since
            overlay, error = None, str(exc) or exc.__class__.__name__
        if not get_current_worker().is_cancelled:
            self.post_message(Explained(path, class_name, overlay, error))

    @on(Explained)
    def _explained(self, message: Explained) -> None:
        if message.path != self.current_file:
            return
        self.explanation = message
        label = self.query_one("#heatmap-label", Label)
        if message.error:
            label.update(Text(f"no Grad-CAM: {message.error}", style="yellow"))
            return
        label.update(f"Grad-CAM: {message.class_name}")
        self.query_one("#heatmap", HalfBlockImage).image = message.overlay

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
        """Ask for a folder (typed, the last one offered); its predictions go beside the run's model, not into it."""
        from .dialogs import PathPromptScreen

        if self.run_dir is None:
            self.notify("Choose a run with a trained model first", severity="warning")
            return
        run_dir = self.run_dir

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

            csv_path = default_csv_path(run_dir, [folder])
            self._status(f"Classifying the images in {folder} and its subfolders…")
            self.query_one("#model-loading").display = True
            self._classify_folder(run_dir, folder, csv_path)

        last = self.photo_folder()
        self.app.push_screen(
            PathPromptScreen("Folder of images to classify, subfolders included (type or paste a path). "
                             "Subfolders named after CIFAR-10 classes are scored.", str(last),
                             title="Classify a folder"),
            folder_chosen,
        )

    @in_thread("classify-folder")
    def _classify_folder(self, run_dir: Path, folder: Path, csv_path: Path) -> None:
        from ...engine.folder_labels import score_photos, test_set_scores
        from ...engine.prediction import write_csv

        summary = score = test = error = None
        try:
            classifier = self.cifar.load_classifier(run_dir)
            done = classifier.classify_folder(folder)
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
        self.post_message(FolderDone(folder, summary, csv_path, score, test, error))

    @on(FolderDone)
    def _folder_done(self, done: FolderDone) -> None:
        self.query_one("#model-loading").display = False
        if done.error:
            self._status(f"Folder not classified: {done.error}", bad=True)
            self.notify(done.error, title="Folder not classified", severity="error", timeout=8)
            return
        text = f"{done.folder}: {done.summary} → {done.csv_path}"
        self._status(text)
        tree = self.query_one("#image-tree", ImageTree)  # the tree and the picker show the folder just classified
        tree.path = done.folder
        tree.border_title = str(done.folder)
        self.current_file = None
        self.notify(text, title="Predictions written", timeout=8)
        self.folder_score = done.score
        self._show_folder_score(done.score is not None)
        if done.score is not None:
            report = done.score["report"]
            self.query_one("#file-name", Static).update(
                Text(f"{done.folder}: scored by its class subfolders (choose a picture to see it again)", style="bold"))
            self.query_one("#photo-score", Static).update(photo_score_text(done.score, done.test))
            self.query_one("#photo-confusion", ConfusionMatrix).set_data(report["confusion_matrix"], report["classes"])

    @on(ConfusionMatrix.ScrollBeside, "#photo-confusion")
    def _scroll_score(self, event: ConfusionMatrix.ScrollBeside) -> None:
        area = self.query_one("#folder-score")
        {"page_up": area.scroll_page_up, "page_down": area.scroll_page_down,
         "home": area.scroll_home, "end": area.scroll_end}[event.how](animate=False)

    def _show_folder_score(self, shown: bool) -> None:
        """The labelled folder's score takes the place of the single picture's panes (a picture chosen brings them back)."""
        self.query_one("#folder-score").display = shown
        for pane in ("#predict-panes", "#seen-row"):
            self.query_one(pane).display = not shown
