"""Evaluate screen: the test report of a finished run.

Confusion matrix (Enter on a cell lists those test images), per-class scores,
one-vs-rest ROC curves and the most confused pairs. Reads report.json and
predictions.npz; the CIFAR-10 test images are loaded (once) in a thread worker
only when a cell's images are asked for. g lays Grad-CAM's heatmap for the
predicted class over those images (the run's model, in a worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Label, Select, Static, TabbedContent, TabPane

from ...formatting import DASH, format_duration, format_pct
from ...runs import reader, store
from ..messages import OpenRun, ScreenEntered, ShowRun
from ..widgets.class_report import ClassReport
from ..widgets.confusion import ConfusionMatrix
from ..widgets.gallery import MisclassifiedGallery
from ..widgets.roc_panel import RocPanel
from ..workers import in_thread
from .base import NARROW_BELOW, CifarScreen

MAX_IMAGES = 40
# Keys of the confusion tab only (its matrix and images): the other tabs do not offer them.
CONFUSION_ACTIONS = ("toggle_percent", "zoom", "toggle_heatmaps")
# What gets the focus when a tab is shown.
TAB_FOCUS = {"tab-confusion": "#confusion", "tab-classes": "#per-class", "tab-roc": "#roc-class",
             "tab-confused": "#confused"}


class EvaluateScreen(CifarScreen):
    """Test-set report of one run."""

    @dataclass
    class HeatmapsReady(Message):
        """Grad-CAM overlays of a cell's shown images, in their order, or why there are none."""

        cell: tuple[int, int]
        overlays: list
        error: str | None

    @dataclass
    class ImagesLoaded(Message):
        cell: tuple[int, int]
        items: list
        error: str | None

    @dataclass
    class PredictionsLoaded(Message):
        run_dir: Path
        predictions: dict[str, Any] | None
        problem: str | None

    BINDINGS = [
        Binding("n", "toggle_percent", "Counts/%"),
        Binding("z", "zoom", "Zoom images", show=False),
        Binding("g", "toggle_heatmaps", "Grad-CAM"),
        Binding("1", "tab('tab-confusion')", "Confusion", show=False),
        Binding("2", "tab('tab-classes')", "Per class", show=False),
        Binding("3", "tab('tab-roc')", "ROC", show=False),
        Binding("4", "tab('tab-confused')", "Confused pairs", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.run_dir: Path | None = None
        self.report: dict[str, Any] | None = None
        self.problem: str | None = None
        self.predictions: dict[str, Any] | None = None
        self.predictions_problem: str | None = None
        self.class_names: list[str] = []
        self.selected_cell: tuple[int, int] | None = None
        self.shown_indices: list[int] = []
        self.gallery_items: list[tuple[Any, str]] = []  # the shown cell's (image, caption) pairs
        self.heatmaps_shown = False


    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="eval-top"):
            yield Select([], prompt="pick a run with a test report", id="eval-run", compact=True)
            yield Static("", id="eval-title")
        with TabbedContent(id="eval-tabs", initial="tab-confusion"):
            with TabPane("Confusion (1)", id="tab-confusion"):
                with Horizontal(id="confusion-area"):
                    with Vertical(id="matrix-box"):
                        yield Label("rows: true class · columns: predicted · Enter: show images · n: counts/%",
                                    id="matrix-help", classes="dim")
                        yield ConfusionMatrix(id="confusion")
                        yield Static("", id="cell-info")
                    yield MisclassifiedGallery(id="mistakes-box")
            with TabPane("Per class (2)", id="tab-classes"):
                yield ClassReport(id="per-class")
            with TabPane("ROC (3)", id="tab-roc"):
                yield RocPanel(id="roc-panel")
            with TabPane("Most confused (4)", id="tab-confused"):
                yield DataTable(id="confused", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        confused = self.query_one("#confused", DataTable)
        for key, label in (("true", "True class"), ("predicted", "Predicted as"), ("count", "Count"),
                           ("share", "Share of true class")):
            confused.add_column(label, key=key)
        # the app follows with ShowRun or ScreenEntered, which pick the run to show

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """n, z and g act on the confusion tab: elsewhere the footer leaves them out and they do nothing."""
        if action in CONFUSION_ACTIONS and self.is_mounted:
            return self.query_one("#eval-tabs", TabbedContent).active == "tab-confusion"
        return True

    @on(TabbedContent.TabActivated, "#eval-tabs")
    def _tab_shown(self) -> None:
        self.refresh_bindings()

    # ------------------------------------------------------------ run selection
    def on_screen_entered(self, message: ScreenEntered) -> None:
        """The user switched here ('e'): the current run if it has a report, else the newest finished one."""
        current = message.current_run
        self._offer_runs()
        if current is not None and store.has_report(current):
            if current != self.run_dir:
                self.show_run(current)
            return
        if self.run_dir is not None:
            if current is not None and current != self.run_dir:
                self.notify(f"{current.name} has no test report yet; showing {self.run_dir.name}", timeout=4)
            return
        latest = self.cifar.latest_run("finished")
        if latest is None:
            self._set_title(Text("No finished run with a test report yet. Runs screen: r", style="bold"))
            return
        if current is not None:
            self.notify(f"{current.name} has no test report yet; showing {latest.name}", timeout=4)
        self.show_run(latest)

    def on_show_run(self, message: ShowRun) -> None:
        self.show_run(message.run_dir)

    def show_run(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._offer_runs()
        self._load(self.run_dir)
        self.action_tab(self.query_one("#eval-tabs", TabbedContent).active or "tab-confusion")

    def _offer_runs(self) -> None:
        """The runs with a test report, newest first, in the run picker (the shown one selected if it has one)."""
        select = self.query_one("#eval-run", Select)
        runs = self.cifar.runs_with_report()
        with self.prevent(Select.Changed):
            select.set_options((run.name, str(run)) for run in runs)
            if self.run_dir in runs:
                select.value = str(self.run_dir)

    @on(Select.Changed, "#eval-run")
    def _run_picked(self, event: Select.Changed) -> None:
        if event.value is not Select.NULL and Path(str(event.value)) != self.run_dir:
            self.post_message(OpenRun(Path(str(event.value)), "evaluate"))

    def _set_title(self, text: Text | str) -> None:
        self.query_one("#eval-title", Static).update(text)

    def _load(self, run_dir: Path) -> None:
        self.report, self.problem = store.read_report(run_dir)
        self.predictions = None
        self.predictions_problem = None
        self.selected_cell = None
        self.query_one(MisclassifiedGallery).clear()
        report = self.report or {}
        names = report.get("classes")
        if not isinstance(names, list) or not names:
            from ...engine.data import CLASS_NAMES

            names = list(CLASS_NAMES)
        self.class_names = [str(n) for n in names]
        self._show_title()
        self._fill_confusion()
        self.query_one(ClassReport).show(report, self.class_names)
        self.query_one(RocPanel).show(report, self.class_names)
        self._fill_confused()
        self._load_predictions(run_dir)

    def _show_title(self) -> None:
        assert self.run_dir is not None
        text = Text()
        if self.report is None:  # the run picker lists only runs with a report: name this one here
            text.append(self.run_dir.name, style="bold")
            reason = reader.no_model_reason(self.run_dir)
            text.append(f"  ⚠ nothing to evaluate: {reason}" if reason else f"  ⚠ no test report: {self.problem}",
                        style="bold yellow")
            status = store.read_status(self.run_dir)
            text.append(f"  (run state: {store.effective_state(status)})")
            self._set_title(text)
            return
        r = self.report
        text.append(f"test accuracy {format_pct(r.get('test_accuracy'), 2)}", style="bold")
        if isinstance(r.get("macro_roc_auc"), (int, float)):
            text.append(f"  ·  macro ROC-AUC {r['macro_roc_auc']:.4f}")
        if r.get("num_test"):
            text.append(f"  ·  {r['num_test']:,} test images")
        if isinstance(r.get("best_val_accuracy"), (int, float)):
            text.append(f"  ·  best val {format_pct(r['best_val_accuracy'])}")
        if isinstance(r.get("wall_time"), (int, float)):
            text.append(f"  ·  trained in {format_duration(r['wall_time'])}")
        self._set_title(text)

    # ------------------------------------------------------------ tables
    def _matrix(self) -> list[list[int]] | None:
        cm = (self.report or {}).get("confusion_matrix")
        n = len(self.class_names)
        if isinstance(cm, list) and len(cm) == n and all(isinstance(row, list) and len(row) == n for row in cm):
            return cm
        return None

    def _fill_confusion(self) -> None:
        matrix = self.query_one("#confusion", ConfusionMatrix)
        cm = self._matrix()
        if cm is None:
            matrix.set_data([], [])
            msg = "no confusion matrix in the report" if self.report is not None else ""
            self.query_one("#cell-info", Static).update(msg)
            return
        matrix.set_data(cm, self.class_names)
        self._cell_info(0, 0)

    def _fill_confused(self) -> None:
        table = self.query_one("#confused", DataTable)
        table.clear()
        cm = self._matrix()
        for k, item in enumerate((self.report or {}).get("most_confused") or []):
            if not isinstance(item, dict):
                continue
            true, pred, count = item.get("true"), item.get("predicted"), item.get("count")
            share = DASH
            if cm is not None and true in self.class_names and isinstance(count, (int, float)):
                total = sum(cm[self.class_names.index(true)])
                share = f"{100 * count / total:.1f}%" if total else DASH
            table.add_row(str(true), str(pred), str(count), share, key=str(k))

    @on(DataTable.RowSelected, "#confused")
    def _confused_selected(self, event: DataTable.RowSelected) -> None:
        row = self.query_one("#confused", DataTable).get_row(event.row_key)
        true, pred = row[0], row[1]
        if true in self.class_names and pred in self.class_names:
            i, j = self.class_names.index(true), self.class_names.index(pred)
            self.query_one("#eval-tabs", TabbedContent).active = "tab-confusion"
            matrix = self.query_one("#confusion", ConfusionMatrix)
            matrix.move_cursor(row=i, column=j)
            matrix.focus()
            self.show_cell_images(i, j)

    # ------------------------------------------------------------ confusion cells
    @on(ConfusionMatrix.CellHighlighted, "#confusion")
    def _cell_highlighted(self, event: ConfusionMatrix.CellHighlighted) -> None:
        self._cell_info(event.coordinate.row, event.coordinate.column)

    @on(ConfusionMatrix.ScrollBeside, "#confusion")
    def _scroll_images(self, event: ConfusionMatrix.ScrollBeside) -> None:
        """PageUp/PageDown/Home/End scroll the images (below the matrix at 80 columns: the whole tab)."""
        area = self._images_area()
        {"page_up": area.scroll_page_up, "page_down": area.scroll_page_down,
         "home": area.scroll_home, "end": area.scroll_end}[event.how](animate=False)

    def _images_area(self):
        """What scrolls the images: the tab's area when they are below the matrix, else their own scroll."""
        return self.query_one("#confusion-area" if self.size.width < NARROW_BELOW else "#mistakes-scroll")

    @on(ConfusionMatrix.CellSelected, "#confusion")
    def _cell_selected(self, event: ConfusionMatrix.CellSelected) -> None:
        self.show_cell_images(event.coordinate.row, event.coordinate.column)

    def _cell_info(self, i: int, j: int) -> None:
        cm = self._matrix()
        if cm is None or i >= len(cm) or j >= len(cm):
            return
        names = self.class_names
        count = cm[i][j]
        total = sum(cm[i])
        share = f"{100 * count / total:.1f}%" if total else DASH
        if i == j:
            msg = f"{names[i]}: {count} of {total} correct ({share})"
        else:
            msg = f"true {names[i]} predicted as {names[j]}: {count} of {total} ({share})"
        self.query_one("#cell-info", Static).update(msg)

    def action_toggle_percent(self) -> None:
        matrix = self.query_one("#confusion", ConfusionMatrix)
        matrix.percent = not matrix.percent

    def action_tab(self, tab: str) -> None:
        """Show a tab and focus what is in it, so the arrows move there (not across the tabs)."""
        self.query_one("#eval-tabs", TabbedContent).active = tab
        self.query_one(TAB_FOCUS[tab]).focus()

    def action_zoom(self) -> None:
        self.query_one(MisclassifiedGallery).zoom()
        if self.selected_cell is not None:
            self.show_cell_images(*self.selected_cell)

    # ------------------------------------------------------------ images
    @in_thread("predictions")
    def _load_predictions(self, run_dir: Path) -> None:
        preds, problem = store.read_predictions(run_dir)  # a garbled file: said, the rest of the screen kept
        self.post_message(self.PredictionsLoaded(run_dir, dict(preds) if preds is not None else None, problem))

    @on(PredictionsLoaded)
    def _predictions_loaded(self, message: PredictionsLoaded) -> None:
        run_dir, preds, problem = message.run_dir, message.predictions, message.problem
        if run_dir != self.run_dir:
            return
        self.predictions = preds
        self.predictions_problem = problem
        if self.selected_cell is not None:
            self.show_cell_images(*self.selected_cell)

    def cell_indices(self, i: int, j: int) -> list[int]:
        """Positions in predictions.npz of test images of true class i predicted as j, surest first."""
        import numpy as np

        p = self.predictions
        if p is None:
            return []
        mask = (p["y_true"] == i) & (p["y_pred"] == j)
        positions = np.nonzero(mask)[0]
        order = np.argsort(-p["y_prob"][positions, j], kind="stable")
        return [int(k) for k in positions[order]]

    def show_cell_images(self, i: int, j: int) -> None:
        self.selected_cell = (i, j)
        self.gallery_items = []
        self.heatmaps_shown = False
        gallery = self.query_one(MisclassifiedGallery)
        what = self._cell_name(i, j)
        if self.predictions is None:
            gallery.clear()
            if self.predictions_problem:
                gallery.say(Text(f"{what}: cannot show images: {self.predictions_problem}", style="yellow"))
            else:
                gallery.say(f"{what}: loading predictions…")
            return
        positions = self.cell_indices(i, j)
        self.shown_indices = positions
        if not positions:
            gallery.clear()
            gallery.say(f"{what}: no test images")
            return
        gallery.say(f"{what}: {len(positions)} images" + (f", first {MAX_IMAGES}" if len(positions) > MAX_IMAGES else "")
                    + " — loading test images…")
        gallery.loading_images(True)
        self._load_images(i, j, positions[:MAX_IMAGES])

    def _data_dir(self) -> str | None:
        """The user's data folder (--data-dir, else the last configuration's), never the one a run names."""
        from ..remembered import load_last_config

        remembered = (load_last_config() or {}).get("data_dir")
        return self.cifar.data_dir or (remembered if isinstance(remembered, str) and remembered else None)

    @in_thread("test-images")
    def _load_images(self, i: int, j: int, positions: list[int]) -> None:
        try:
            if self.cifar.test_images is None:
                from ...engine import data

                self.cifar.test_images = data.load_test_images(self._data_dir())
            x, _y = self.cifar.test_images
            p = self.predictions
            assert p is not None
            items = []
            for k in positions:
                index = int(p["test_index"][k])
                prob = float(p["y_prob"][k, j])
                items.append((x[index], f"#{index} {100 * prob:.0f}%"))
            error = None
        except Exception as exc:  # no data on this machine, or a bad file
            items, error = [], str(exc) or exc.__class__.__name__
        self.post_message(self.ImagesLoaded((i, j), items, error))

    @on(ImagesLoaded)
    def _images_loaded(self, message: ImagesLoaded) -> None:
        cell, items, error = message.cell, message.items, message.error
        gallery = self.query_one(MisclassifiedGallery)
        gallery.loading_images(False)
        if cell != self.selected_cell:
            return
        what = self._cell_name(*cell)
        if error:
            gallery.say(Text(f"{what}: cannot load the CIFAR-10 test images: {error}", style="yellow"))
            self.notify(f"Cannot load the test images: {error}", severity="error", timeout=8)
            gallery.clear()
            return
        total = len(self.shown_indices)
        gallery.say(f"{what}: {total} image{'s' if total != 1 else ''}"
                    + (f" (first {len(items)})" if total > len(items) else "")
                    + (" · z: zoom" if items else ""))
        self.gallery_items = items
        gallery.show_images(items)
        if items and self.size.width < NARROW_BELOW:  # below the matrix: bring them into view (Home: back up)
            self.call_after_refresh(self._images_area().scroll_to_widget, gallery, top=True, animate=False)

    # ------------------------------------------------------------ what the model looked at
    def action_toggle_heatmaps(self) -> None:
        """The shown images with Grad-CAM for the class they were predicted as, or the plain images again."""
        gallery = self.query_one(MisclassifiedGallery)
        if not self.gallery_items or self.selected_cell is None or self.run_dir is None:
            self.notify("Select a cell of the matrix (Enter) first: g shows where the model looked in its images",
                        timeout=5)
            return
        if self.heatmaps_shown:
            self.heatmaps_shown = False
            gallery.show_images(self.gallery_items)
            return
        gallery.loading_images(True)
        self._explain_images(self.run_dir, self.selected_cell, [image for image, _ in self.gallery_items])

    @in_thread("heatmaps")
    def _explain_images(self, run_dir: Path, cell: tuple[int, int], images: list) -> None:
        import numpy as np

        from ...engine.explain import explain

        try:
            model = self.cifar.load_classifier(run_dir).keras_model  # a LiteRT runtime has no gradients
            overlays, error = [e.overlay() for e in explain(model, np.stack(images), [cell[1]] * len(images))], None
        except Exception as exc:  # no model file, a model without a backbone model
            overlays, error = [], str(exc) or exc.__class__.__name__
        self.post_message(self.HeatmapsReady(cell, overlays, error))

    @on(HeatmapsReady)
    def _heatmaps_ready(self, message: HeatmapsReady) -> None:
        gallery = self.query_one(MisclassifiedGallery)
        gallery.loading_images(False)
        if message.cell != self.selected_cell or len(message.overlays) != len(self.gallery_items) and not message.error:
            return
        if message.error:
            self.notify(message.error, title="No Grad-CAM", severity="error", timeout=8)
            return
        self.heatmaps_shown = True
        gallery.say(f"{self._cell_name(*message.cell)}: Grad-CAM for {self.class_names[message.cell[1]]} "
                    "(red: where the model looked) · g: the images")
        gallery.show_images([(overlay, caption) for overlay, (_image, caption) in
                             zip(message.overlays, self.gallery_items)])

    def _cell_name(self, i: int, j: int) -> str:
        names = self.class_names
        return f"{names[i]} (correct)" if i == j else f"{names[i]} predicted as {names[j]}"

    def on_resize(self) -> None:  # type: ignore[override]  # Textual calls each class's handler; this one needs no event
        if not self.is_mounted:
            return
        gallery = self.query_one(MisclassifiedGallery)
        if gallery.has_images():
            self.call_after_refresh(gallery.relayout)
