"""Evaluate screen: the test report of a finished run.

Confusion matrix (Enter on a cell lists those test images), per-class scores,
one-vs-rest ROC curves and the most confused pairs. Reads report.json and
predictions.npz; the CIFAR-10 test images are loaded (once) in a thread worker
only when a cell's images are asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import (
    DataTable, Footer, Header, Label, LoadingIndicator, Select, Static, TabbedContent, TabPane,
)

from .. import runstore
from .base import CifarScreen
from ..formatting import fmt, format_duration, format_pct
from .widgets.charts import MARK_COLOR, PALETTE, LineChart
from .widgets.confusion import ConfusionMatrix
from .widgets.halfblock import HalfBlockImage

MAX_IMAGES = 40
THUMB_SIZES = ((16, 8), (32, 16), (64, 32))  # cells; 32 x 16 cells = the 32 x 32 pixels, one to one
ALL = "__all__"


def _f(value: Any, digits: int = 3) -> str:
    return fmt(value, f".{digits}f")


class PredictionsLoaded(Message):
    def __init__(self, run_dir: Path, predictions: dict[str, Any] | None, problem: str | None) -> None:
        super().__init__()
        self.run_dir, self.predictions, self.problem = run_dir, predictions, problem


class ImagesLoaded(Message):
    def __init__(self, cell: tuple[int, int], items: list, error: str | None) -> None:
        super().__init__()
        self.cell, self.items, self.error = cell, items, error


class Thumb(Vertical):
    """A test image and its caption."""

    def __init__(self, image, caption: str, size: tuple[int, int]):
        super().__init__(classes="thumb")
        self.image = image
        self.caption = caption
        self.styles.width = size[0]
        self.styles.height = size[1] + 1

    def compose(self) -> ComposeResult:
        yield HalfBlockImage(self.image)
        yield Label(self.caption, classes="thumb-caption")


class EvaluateScreen(CifarScreen):
    """Test-set report of one run."""

    BINDINGS = [
        Binding("n", "toggle_percent", "Counts/%"),
        Binding("z", "zoom", "Zoom images", show=False),
        Binding("1", "tab('tab-confusion')", "Confusion", show=False),
        Binding("2", "tab('tab-classes')", "Per class", show=False),
        Binding("3", "tab('tab-roc')", "ROC", show=False),
        Binding("4", "tab('tab-confused')", "Confused pairs", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._ready = False  # set once mounted (is_mounted is still False inside on_mount)
        self.run_dir: Path | None = None
        self.report: dict[str, Any] | None = None
        self.problem: str | None = None
        self.predictions: dict[str, Any] | None = None
        self.predictions_problem: str | None = None
        self.class_names: list[str] = []
        self.selected_cell: tuple[int, int] | None = None
        self.shown_indices: list[int] = []
        self.thumb_size_index = 1


    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="eval-title")
        with TabbedContent(id="eval-tabs", initial="tab-confusion"):
            with TabPane("Confusion (1)", id="tab-confusion"):
                with Horizontal(id="confusion-area"):
                    with Vertical(id="matrix-box"):
                        yield Label("rows: true class · columns: predicted · Enter: show images · n: counts/%",
                                    id="matrix-help", classes="dim")
                        yield ConfusionMatrix(id="confusion")
                        yield Static("", id="cell-info")
                    with Vertical(id="mistakes-box"):
                        yield Static("Select a cell (Enter) to see its test images.", id="mistakes-title")
                        yield LoadingIndicator(id="mistakes-loading")
                        with VerticalScroll(id="mistakes-scroll"):
                            yield Grid(id="mistakes-grid")
            with TabPane("Per class (2)", id="tab-classes"):
                yield DataTable(id="per-class", cursor_type="row", zebra_stripes=True)
            with TabPane("ROC (3)", id="tab-roc"):
                with Horizontal(id="roc-controls"):
                    yield Label("Curves:", classes="toolbar-label")
                    yield Select([("All classes", ALL)], value=ALL, allow_blank=False, id="roc-class")
                    yield Static("", id="roc-auc")
                with Horizontal(id="roc-box"):
                    # ROC curves rise through the top-left corner, where plotext puts its legend:
                    # the legend (class, colour, AUC) goes beside the chart instead.
                    yield LineChart("One-vs-rest ROC: true positive rate", xlabel="false positive rate",
                                    ylim=(0, 1.02), empty_text="no ROC curves in the report", legend=False,
                                    id="roc-chart")
                    yield Static("", id="roc-legend")
            with TabPane("Most confused (4)", id="tab-confused"):
                yield DataTable(id="confused", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self._ready = True
        self.query_one("#mistakes-loading").display = False
        per_class = self.query_one("#per-class", DataTable)
        for key, label in (("class", "Class"), ("precision", "Precision"), ("recall", "Recall"),
                           ("f1", "F1"), ("support", "Support"), ("roc_auc", "ROC-AUC")):
            per_class.add_column(label, key=key)
        confused = self.query_one("#confused", DataTable)
        for key, label in (("true", "True class"), ("predicted", "Predicted as"), ("count", "Count"),
                           ("share", "Share of true class")):
            confused.add_column(label, key=key)
        if self.run_dir is not None:
            self._load(self.run_dir)
        else:
            self.on_goto(self.cifar.current_run)

    # ------------------------------------------------------------ run selection
    def on_goto(self, current: Path | None) -> None:
        """Called when the user switches here with 'e': the current run if it has a report, else the newest."""
        if not self._ready:
            return  # on_mount comes back here
        if current is not None and runstore.has_report(current):
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

    def show_run(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        if self._ready:
            self._load(self.run_dir)

    def _set_title(self, text: Text | str) -> None:
        self.query_one("#eval-title", Static).update(text)

    def _load(self, run_dir: Path) -> None:
        self.report, self.problem = runstore.read_report(run_dir)
        self.predictions = None
        self.predictions_problem = None
        self.selected_cell = None
        self._clear_images()
        report = self.report or {}
        names = report.get("classes")
        if not isinstance(names, list) or not names:
            from ..data import CLASS_NAMES

            names = list(CLASS_NAMES)
        self.class_names = [str(n) for n in names]
        self._show_title()
        self._fill_confusion()
        self._fill_per_class()
        self._fill_roc_options()
        self._fill_roc()
        self._fill_confused()
        self._load_predictions(run_dir)

    def _show_title(self) -> None:
        assert self.run_dir is not None
        text = Text()
        text.append(self.run_dir.name, style="bold")
        if self.report is None:
            text.append(f"  ⚠ no test report: {self.problem}", style="bold yellow")
            status = runstore.read_status(self.run_dir)
            text.append(f"  (run state: {runstore.effective_state(status)})")
            self._set_title(text)
            return
        r = self.report
        text.append("  ·  ")
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

    def _fill_per_class(self) -> None:
        table = self.query_one("#per-class", DataTable)
        table.clear()
        report = self.report or {}
        per_class = report.get("per_class") or {}
        for name in self.class_names:
            row = per_class.get(name) or {}
            table.add_row(name, _f(row.get("precision")), _f(row.get("recall")), _f(row.get("f1")),
                          str(row.get("support", "–")), _f(row.get("roc_auc"), 4), key=name)
        for key, label in (("macro_avg", "macro avg"), ("weighted_avg", "weighted avg")):
            row = report.get(key)
            if isinstance(row, dict):
                auc = row.get("roc_auc", report.get("macro_roc_auc") if key == "macro_avg" else None)
                table.add_row(Text(label, style="bold"), _f(row.get("precision")), _f(row.get("recall")),
                              _f(row.get("f1")), str(row.get("support", "–")), _f(auc, 4), key=key)

    def _fill_roc_options(self) -> None:
        select = self.query_one("#roc-class", Select)
        curves = (self.report or {}).get("roc_curves") or {}
        options = [("All classes", ALL)] + [(n, n) for n in self.class_names if n in curves]
        select.set_options(options)
        select.value = ALL

    @on(Select.Changed, "#roc-class")
    def _roc_class_changed(self) -> None:
        self._fill_roc()

    def _fill_roc(self) -> None:
        report = self.report or {}
        curves = report.get("roc_curves") or {}
        per_class = report.get("per_class") or {}
        choice = self.query_one("#roc-class", Select).value
        names = [n for n in self.class_names if n in curves and (choice in (ALL, Select.NULL) or n == choice)]
        series: dict[str, list[tuple[float, float]]] = {}
        colors: dict[str, str] = {}
        for name in names:
            curve = curves.get(name) or {}
            fpr, tpr = curve.get("fpr") or [], curve.get("tpr") or []
            auc = (per_class.get(name) or {}).get("roc_auc")
            label = f"{name} {auc:.3f}" if isinstance(auc, (int, float)) else name
            series[label] = list(zip(fpr, tpr))
            colors[label] = PALETTE[self.class_names.index(name) % len(PALETTE)]
        if series:
            series["chance"] = [(0.0, 0.0), (1.0, 1.0)]
            colors["chance"] = MARK_COLOR
        self.query_one("#roc-chart", LineChart).set_series(series, colors=colors)
        legend = Text("\n").join(
            Text.assemble(("━━ ", Style(color=Color.from_rgb(*color))), label) for label, color in colors.items()
        )
        self.query_one("#roc-legend", Static).update(legend)
        auc_text = ""
        if choice not in (ALL, Select.NULL):
            auc = (per_class.get(choice) or {}).get("roc_auc")
            auc_text = f"AUC {auc:.4f}" if isinstance(auc, (int, float)) else ""
        elif isinstance(report.get("macro_roc_auc"), (int, float)):
            auc_text = f"macro AUC {report['macro_roc_auc']:.4f}"
        self.query_one("#roc-auc", Static).update(auc_text)

    def _fill_confused(self) -> None:
        table = self.query_one("#confused", DataTable)
        table.clear()
        cm = self._matrix()
        for k, item in enumerate((self.report or {}).get("most_confused") or []):
            if not isinstance(item, dict):
                continue
            true, pred, count = item.get("true"), item.get("predicted"), item.get("count")
            share = "–"
            if cm is not None and true in self.class_names and isinstance(count, (int, float)):
                total = sum(cm[self.class_names.index(true)])
                share = f"{100 * count / total:.1f}%" if total else "–"
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
        share = f"{100 * count / total:.1f}%" if total else "–"
        if i == j:
            msg = f"{names[i]}: {count} of {total} correct ({share})"
        else:
            msg = f"true {names[i]} predicted as {names[j]}: {count} of {total} ({share})"
        self.query_one("#cell-info", Static).update(msg)

    def action_toggle_percent(self) -> None:
        matrix = self.query_one("#confusion", ConfusionMatrix)
        matrix.percent = not matrix.percent

    def action_tab(self, tab: str) -> None:
        self.query_one("#eval-tabs", TabbedContent).active = tab

    def action_zoom(self) -> None:
        self.thumb_size_index = (self.thumb_size_index + 1) % len(THUMB_SIZES)
        if self.selected_cell is not None:
            self.show_cell_images(*self.selected_cell)

    # ------------------------------------------------------------ images
    @work(thread=True, exclusive=True, exit_on_error=False, group="predictions")
    def _load_predictions(self, run_dir: Path) -> None:
        path = run_dir / runstore.PREDICTIONS_FILE
        try:
            import numpy as np

            with np.load(path) as data:
                preds = {k: data[k] for k in ("y_true", "y_prob", "test_index")}
            if not (len(preds["y_true"]) == len(preds["y_prob"]) == len(preds["test_index"])):
                raise ValueError("y_true, y_prob and test_index differ in length")
            preds["y_pred"] = preds["y_prob"].argmax(axis=1)
            problem = None
        except FileNotFoundError:
            preds, problem = None, "predictions.npz is missing"
        except Exception as exc:  # a garbled file: say so, keep the rest of the screen
            preds, problem = None, f"predictions.npz is unreadable ({exc})"
        self.post_message(PredictionsLoaded(run_dir, preds, problem))

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
        names = self.class_names
        title = self.query_one("#mistakes-title", Static)
        what = f"{names[i]} (correct)" if i == j else f"{names[i]} predicted as {names[j]}"
        if self.predictions is None:
            self._clear_images()
            if self.predictions_problem:
                title.update(Text(f"{what}: cannot show images: {self.predictions_problem}", style="yellow"))
            else:
                title.update(f"{what}: loading predictions…")
            return
        positions = self.cell_indices(i, j)
        self.shown_indices = positions
        if not positions:
            self._clear_images()
            title.update(f"{what}: no test images")
            return
        title.update(f"{what}: {len(positions)} images" + (f", first {MAX_IMAGES}" if len(positions) > MAX_IMAGES else "")
                     + " — loading test images…")
        self.query_one("#mistakes-loading").display = True
        self._load_images(i, j, positions[:MAX_IMAGES])

    def _data_dir(self) -> str | None:
        if self.run_dir is not None:
            config, _ = runstore.read_json(self.run_dir / runstore.CONFIG_FILE)
            if config and config.get("data_dir"):
                return str(config["data_dir"])
        return self.cifar.data_dir

    @work(thread=True, exclusive=True, exit_on_error=False, group="test-images")
    def _load_images(self, i: int, j: int, positions: list[int]) -> None:
        try:
            if self.cifar.test_images is None:
                from .. import data

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
        self.post_message(ImagesLoaded((i, j), items, error))

    @on(ImagesLoaded)
    def _images_loaded(self, message: ImagesLoaded) -> None:
        cell, items, error = message.cell, message.items, message.error
        self.query_one("#mistakes-loading").display = False
        if cell != self.selected_cell:
            return
        i, j = cell
        names = self.class_names
        title = self.query_one("#mistakes-title", Static)
        what = f"{names[i]} (correct)" if i == j else f"{names[i]} predicted as {names[j]}"
        if error:
            title.update(Text(f"{what}: cannot load the CIFAR-10 test images: {error}", style="yellow"))
            self.notify(f"Cannot load the test images: {error}", severity="error", timeout=8)
            self._clear_images()
            return
        total = len(self.shown_indices)
        title.update(f"{what}: {total} image{'s' if total != 1 else ''}"
                     + (f" (first {len(items)})" if total > len(items) else "")
                     + (" · z: zoom" if items else ""))
        self._clear_images()
        grid = self.query_one("#mistakes-grid", Grid)
        size = THUMB_SIZES[self.thumb_size_index]
        grid.mount_all([Thumb(img, caption, size) for img, caption in items])
        self._layout_grid()

    def _clear_images(self) -> None:
        if self._ready:
            self.query_one("#mistakes-grid", Grid).remove_children()

    def _layout_grid(self) -> None:
        grid = self.query_one("#mistakes-grid", Grid)
        width = self.query_one("#mistakes-scroll").content_size.width or 40
        thumb_w = THUMB_SIZES[self.thumb_size_index][0]
        columns = max(1, width // (thumb_w + 1))
        grid.styles.grid_size_columns = columns
        grid.styles.grid_columns = f"{thumb_w}"
        rows = -(-len(grid.children) // columns) if grid.children else 1
        grid.styles.height = rows * (THUMB_SIZES[self.thumb_size_index][1] + 2)

    def on_resize(self) -> None:
        if self.is_mounted and self.query_one("#mistakes-grid", Grid).children:
            self.call_after_refresh(self._layout_grid)
