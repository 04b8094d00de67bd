"""The predict screen's one picture: its preview, the model's top classes, the 32x32 input the model really gets
and Grad-CAM's heatmap of where it looked for its top class.

Each of the three jobs (preview, classify, explain) is a thread worker posting its result back here; a result
for a picture no longer shown is dropped. A file that is not a usable image gets a message beside the preview
and a notification, and the app carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Label, Static
from textual.worker import get_current_worker

from ..workers import ShowsWorkerErrors, in_thread
from .bars import topk_table
from .halfblock import HalfBlockImage
from .model_select import ModelState

TOP_K = 5
PROMPT = "Choose an image in the tree (Enter) or with o."


class PicturePanel(ShowsWorkerErrors, Vertical):
    """One picture and what the model (``model``, bound to the screen's) makes of it; a new model ready
    classifies the picture shown again."""

    model: reactive[ModelState] = reactive(ModelState, init=False)

    @dataclass
    class PreviewLoaded(Message, bubble=False):
        path: Path
        image: Any
        model_input: Any
        error: str | None

    @dataclass
    class Classified(Message, bubble=False):
        path: Path
        result: Any  # a prediction.FilePrediction
        error: str | None

    @dataclass
    class Explained(Message, bubble=False):
        """Grad-CAM of a picture's 32x32 input for its top class (overlay: uint8 RGB), or why there is none."""

        path: Path
        class_name: str
        overlay: Any
        error: str | None

    def __init__(self, image_backend: str = "halfblock", id: str | None = None) -> None:
        super().__init__(id=id)
        self.image_backend = image_backend  # "textual-image": terminal graphics for the preview
        self.path: Path | None = None
        self.result: Any = None  # the picture's FilePrediction, once classified
        self.error: str | None = None
        self.explanation: PicturePanel.Explained | None = None
        self._notified: set[tuple[Path, str]] = set()

    def compose(self) -> ComposeResult:
        yield Static(PROMPT, id="file-name")
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

    def watch_model(self, model: ModelState) -> None:
        if self.path is None:
            return
        if model.ready:
            self.show(self.path)
        elif self.result is None:
            self.query_one("#topk", Static).update(self._waiting(model))

    @staticmethod
    def _waiting(model: ModelState) -> str:
        if model.error is not None or model.run_dir is None:
            return "no model loaded: choose a run with a trained model"
        return "waiting for the model…"

    def forget(self) -> None:
        """No picture is shown (a folder's score took the panel's place): a new model classifies nothing."""
        self.path = None

    def show(self, path: Path) -> None:
        """Preview the file and, once the model is ready, show its top classes."""
        self.path = path
        self.result = None
        self.explanation = None
        self._set_error(None)
        self.query_one("#file-name", Static).update(Text(str(path), style="bold"))
        self.query_one("#model-input", HalfBlockImage).image = None
        self.query_one("#heatmap", HalfBlockImage).image = None
        self.query_one("#heatmap-label", Label).update("Grad-CAM")
        self._load_preview(path)
        model = self.model
        self.query_one("#topk", Static).update("classifying…" if model.ready else self._waiting(model))
        if model.ready:
            self._classify(path, model.classifier)

    # ------------------------------------------------------------ preview
    @in_thread("preview")
    def _load_preview(self, path: Path) -> None:
        try:
            from ...engine.images import load_preview, model_input

            image, seen, error = load_preview(path, max_side=256), model_input(path), None
        except Exception as exc:  # ImageLoadError is one line naming the file; others are unexpected
            image, seen, error = None, None, str(exc) or exc.__class__.__name__
        if not get_current_worker().is_cancelled:
            self.post_message(self.PreviewLoaded(path, image, seen, error))

    async def on_picture_panel_preview_loaded(self, message: PreviewLoaded) -> None:
        if message.path != self.path:
            return
        box = self.query_one("#preview-box", Vertical)
        await box.remove_children()  # finish removing the old preview before mounting its successor
        if message.error:
            self._set_error(message.error)
            return
        self.query_one("#model-input", HalfBlockImage).image = message.model_input
        if self.image_backend == "textual-image":
            try:
                from textual_image.widget import Image as TIImage

                box.mount(TIImage(message.image, id="preview", classes="terminal-graphics"))
                return
            except Exception:  # fall back to half-blocks
                pass
        box.mount(HalfBlockImage(message.image, id="preview"))

    # ------------------------------------------------------------ top classes
    @in_thread("classify")
    def _classify(self, path: Path, classifier: Any) -> None:
        try:
            result, error = classifier.classify_files([path], top_k=TOP_K)[0], None
        except Exception as exc:  # the classifier itself failed: say so, keep going
            result, error = None, f"classification failed: {exc}"
        if not get_current_worker().is_cancelled:
            self.post_message(self.Classified(path, result, error))

    def on_picture_panel_classified(self, message: Classified) -> None:
        result, error = message.result, message.error
        if message.path != self.path:
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
        if self.model.ready:
            self.query_one("#heatmap-label", Label).update(f"Grad-CAM: {result.top[0][0]}…")
            self._explain(message.path, self.model.classifier, result.top[0][0])

    # ------------------------------------------------------------ Grad-CAM
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
            self.post_message(self.Explained(path, class_name, overlay, error))

    def on_picture_panel_explained(self, message: Explained) -> None:
        if message.path != self.path:
            return
        self.explanation = message
        label = self.query_one("#heatmap-label", Label)
        if message.error:
            label.update(Text(f"no Grad-CAM: {message.error}", style="yellow"))
            return
        label.update(f"Grad-CAM: {message.class_name}")
        self.query_one("#heatmap", HalfBlockImage).image = message.overlay

    def _set_error(self, error: str | None) -> None:
        """The picture's problem beside it, and notified once per file and problem."""
        self.error = error
        widget = self.query_one("#predict-error", Static)
        widget.update(Text(f"⚠ {error}") if error else "")
        widget.set_class(bool(error), "-shown")
        key = (self.path or Path(), error or "")
        if error and key not in self._notified:
            self._notified.add(key)
            self.notify(error, title="Cannot classify this file", severity="error", timeout=6)
