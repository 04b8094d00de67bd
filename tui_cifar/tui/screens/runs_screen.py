"""Runs screen: every run folder in the runs folder, refreshed while you look; compare runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Header, Label, Static
from textual.widgets.data_table import RowDoesNotExist

from ...config import SETTING_BY_NAME
from ...formatting import format_duration, format_pct, format_started, shown
from ...paths import cache_dir
from ...runs import reader, store, tbreader
from ...runs.compare import ComparedRun, differing_settings, load_compared
from ..messages import CompareRuns, GotoScreen, OpenRun
from ..widgets.charts import LineChart
from ..workers import in_thread
from .base import CifarScreen

STATE_STYLES: dict[store.ShownState, str] = {  # one per records.ShownState (tests/test_records.py)
    "running": "bold green",
    "finished": "bold cyan",
    "stopped": "yellow",
    "failed": "bold red",
    "killed": "red",
    "unknown": "dim",
}

COLUMNS = (
    ("mark", " "), ("run", "Run"), ("state", "State"), ("best_val", "Best val"), ("test_acc", "Test acc"),
    ("duration", "Duration"), ("started", "Started"), ("backbone", "Backbone"), ("size", "Size"),
)
# Narrower than this many columns, a column is left out (the run's name already says when it
# started, the backbone and the size), so the scores stay in view at 80 columns.
DROP_BELOW = {"size": 120, "backbone": 110, "started": 100}
MAX_COMPARE = 8
FIRST_ROWS, MORE_ROWS = 60, 400  # rows added at once when the list is (re)drawn, then per frame


def _same_listing(new: tuple, old: tuple | None) -> bool:
    """Whether a listing is the one posted last: the same folder and error, the very same summary objects."""
    return (old is not None and new[:2] == old[:2] and len(new[2]) == len(old[2])
            and all(a is b for a, b in zip(new[2], old[2])))


def _sort_key(summary: reader.RunSummary) -> tuple[str, str]:
    return (summary.started_at or "", summary.name)


class RunsScreen(CifarScreen):
    """A table of runs. Enter, e and p open the highlighted one; space marks runs to compare with m."""

    @dataclass
    class RunsLoaded(Message):
        runs_dir: Path
        summaries: list[reader.RunSummary]
        error: str | None

    BINDINGS = [
        Binding("e", "open_highlighted('evaluate')", "Evaluate"),
        Binding("p", "open_highlighted('predict')", "Predict"),
        Binding("space", "mark", "Mark", key_display="␣"),
        Binding("m", "compare", "Compare"),
        Binding("f5,ctrl+r", "refresh", "Refresh", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.summaries: dict[str, reader.RunSummary] = {}
        self.order: list[str] = []
        self.marked: set[str] = set()
        self._summaries = reader.SummaryCache(cache_dir() / "run-summaries.json")
        # What the last listing posted: the cache hands back the very same summary objects for unchanged runs.
        self._listed: tuple[Path, str | None, list[reader.RunSummary]] | None = None
        self.columns: list[str] = []  # the keys of the columns shown (fewer in a narrow terminal)
        self._drawn: dict[str, reader.RunSummary] = {}  # the summaries the table's rows show, by key
        self.loaded = False


    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="runs-path")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="run-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#runs-path", Static).update(f"Runs in {self.cifar.runs_dir} — loading…")
        # The periodic refresh looks at live runs and status files only (reader.SummaryCache.list_runs).
        # Back from Evaluate, say, the whole listing: a new report.json changes no status file.
        self.poll_every(self.cifar.runs_refresh_interval, self._tick, on_resume=self.action_refresh)
        self.action_refresh()
        self.query_one(DataTable).focus()

    def on_resize(self, event: events.Resize) -> None:
        columns = [c for c in COLUMNS if event.size.width >= DROP_BELOW.get(c[0], 0)]
        if [key for key, _label in columns] == self.columns:
            return
        table = self.query_one("#runs-table", DataTable)
        table.clear(columns=True)
        for key, label in columns:
            table.add_column(label, key=key)
        self.columns = [key for key, _label in columns]
        self.order = []  # the rows go back in with the next refresh
        if self.loaded:
            self.action_refresh()

    # ------------------------------------------------------------ loading
    def action_refresh(self) -> None:
        self._load(self.cifar.runs_dir)

    def _tick(self) -> None:
        """The periodic look at live runs, skipped while a listing is on its way (it would cancel a whole one)."""
        if not any(w.group == "list-runs" and not w.is_finished for w in self.workers if w.node is self):
            self._load(self.cifar.runs_dir, True)

    @in_thread("list-runs")
    def _load(self, runs_dir: Path, live_only: bool = False) -> None:
        try:
            summaries = self._summaries.list_runs(runs_dir, live_only, tensorboard=True)  # re-reads only what changed
            self._summaries.save()
            error = None
        except OSError as exc:
            summaries, error = [], f"cannot read {runs_dir}: {exc.strerror or exc}"
        listed = (runs_dir, error, summaries)
        if live_only and _same_listing(listed, self._listed):
            return  # nothing changed: no message, no redraw (an idle screen stays idle)
        self._listed = listed
        self.post_message(self.RunsLoaded(runs_dir, summaries, error))

    @on(RunsLoaded)
    def _populate(self, message: RunsLoaded) -> None:
        runs_dir, summaries, error = message.runs_dir, message.summaries, message.error
        table = self.query_one("#runs-table", DataTable)
        summaries = sorted(summaries, key=_sort_key, reverse=True)
        self.summaries = {str(s.path): s for s in summaries}
        self.marked &= set(self.summaries)
        order = [str(s.path) for s in summaries]
        header = f"Runs in {runs_dir}: {len(summaries)}"
        running = sum(1 for s in summaries if s.state == "running")
        if running:
            header += f", {running} running"
        if error:
            header += f" — {error}"
        elif not summaries:
            header += " — none yet: configure one with c"
        self.query_one("#runs-path", Static).update(Text(shown(header)))
        if order == self.order:
            for key in order:  # only the rows whose summary changed (the cache hands back the same object otherwise)
                if self.summaries[key] is not self._drawn.get(key) and key in table.rows:
                    for col, value in self._cells(self.summaries[key]).items():
                        table.update_cell(key, col, value)
                    self._drawn[key] = self.summaries[key]
        else:
            selected = self.selected_key()
            table.clear()
            self.order, self._drawn = order, {}
            # The rows in screenfuls: the first ones show at once, the others follow between frames.
            self._add_rows(order, FIRST_ROWS)
            if selected in self.summaries and selected in table.rows:
                table.move_cursor(row=table.get_row_index(selected))
        self.loaded = True
        self._show_detail()

    def _add_rows(self, order: list[str], count: int) -> None:
        if order is not self.order:
            return  # the list changed since: the new one is being drawn
        table = self.query_one("#runs-table", DataTable)
        start = len(self._drawn)
        for key in order[start:start + count]:
            table.add_row(*self._cells(self.summaries[key]).values(), key=key)
            self._drawn[key] = self.summaries[key]
        if len(self._drawn) < len(order):
            self.call_after_refresh(self._add_rows, order, MORE_ROWS)

    def _cells(self, s: reader.RunSummary) -> dict[str, object]:
        """The row of a run: the shown columns' cells, by column key."""
        state = Text(s.state, style=STATE_STYLES.get(s.state, ""))
        if s.problems:
            state.append(" ⚠", style="bold yellow")
        cells = {
            "mark": Text("●", style="bold magenta") if str(s.path) in self.marked else " ",
            "run": Text(shown(s.name)),  # a folder's name is text: never markup, never a terminal escape
            "state": state,
            "best_val": format_pct(s.best_val_accuracy),
            "test_acc": format_pct(s.test_accuracy, 2),
            "duration": format_duration(s.duration_s),
            "started": format_started(s.started_at),
            "backbone": Text(shown(s.backbone or s.model or ("TensorBoard" if s.kind == tbreader.KIND else "?"))),
            "size": f"{s.image_size}px" if s.image_size else "–" if s.kind in (store.KERAS_KIND, tbreader.KIND) else "?",
        }
        return {key: cells[key] for key in self.columns}

    # ------------------------------------------------------------ selection
    def selected_key(self) -> str | None:
        table = self.query_one("#runs-table", DataTable)
        if table.row_count == 0:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except RowDoesNotExist:
            return None

    def selected(self) -> reader.RunSummary | None:
        key = self.selected_key()
        return self.summaries.get(key) if key else None

    @on(DataTable.RowHighlighted, "#runs-table")
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        s = self.selected()
        detail = self.query_one("#run-detail", Static)
        if s is None:
            detail.update("")
            return
        text = Text()
        text.append(shown(s.path), style="bold")
        status = store.read_status(s.path)
        if status.message:
            text.append(f"\n{shown(status.message)}")
        if status.host or status.pid:
            text.append(f"\nhost {shown(status.host or '?')}, pid {status.pid or '?'}", style="dim")
        if s.last:  # what a TensorBoard or RunLogger run logged last says most about it
            text.append("\nlast: " + " · ".join(f"{shown(k)} {v:.4g}" for k, v in s.last.items()), style="dim")
        for problem in s.problems:
            text.append(f"\n⚠ {shown(problem)}", style="bold yellow")
        if s.state == "killed":
            text.append("\nThe training process is gone without finishing.", style="red")
        detail.update(text)

    @on(DataTable.RowSelected, "#runs-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        summary = self.summaries.get(key) if key else None
        if summary is not None:
            self.open_summary(summary)

    def open_summary(self, summary: reader.RunSummary) -> None:
        has_report = store.has_report(summary.path)
        mode = "evaluate" if summary.state == "finished" and has_report else "train"
        self.post_message(OpenRun(summary.path, mode))

    def action_open_highlighted(self, mode: str) -> None:
        """e and p here mean "this run", not the run opened before."""
        summary = self.selected()
        self.post_message(OpenRun(summary.path, mode) if summary is not None else GotoScreen(mode))

    def action_mark(self) -> None:
        key = self.selected_key()
        if key is None:
            return
        if key in self.marked:
            self.marked.discard(key)
        else:
            if len(self.marked) >= MAX_COMPARE:
                self.notify(f"At most {MAX_COMPARE} runs can be compared", severity="warning")
                return
            self.marked.add(key)
        table = self.query_one("#runs-table", DataTable)
        table.update_cell(key, "mark", Text("●", style="bold magenta") if key in self.marked else " ")
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)

    def on_compare_runs(self, _message: CompareRuns) -> None:
        self.action_compare()

    def action_compare(self) -> None:
        keys = [k for k in self.order if k in self.marked]
        if len(keys) < 2:
            self.notify("Mark two or more runs with space, then press m", severity="warning")
            return
        self.app.push_screen(CompareScreen([Path(k) for k in keys]))


class CompareScreen(ModalScreen[None]):
    """Validation accuracy of several runs, one curve each, over global epochs; beside it the settings
    that differ between them and their results."""

    @dataclass
    class CurvesLoaded(Message):
        curves: dict[str, list[tuple[float, float]]]
        notes: list[str]
        runs: list[ComparedRun]

    BINDINGS = [Binding("escape,m,q", "close", "Close")]

    def __init__(self, run_dirs: list[Path]):
        super().__init__(classes="dialog-screen")
        self.run_dirs = run_dirs
        self.curves: dict[str, list[tuple[float, float]]] = {}
        self.differing: list[str] = []  # the settings shown: those not the same in all the runs

    def compose(self) -> ComposeResult:
        with Vertical(id="compare-dialog", classes="dialog"):
            yield Label("Validation accuracy per epoch", classes="dialog-title")
            yield LineChart("val accuracy", xlabel="epoch (stage 2 continues after stage 1)",
                            integer_x=True, empty_text="loading…", id="compare-chart")
            # a cell cursor: arrows scroll to the runs beyond the right edge of a narrow terminal
            yield DataTable(id="compare-table", cursor_type="cell", zebra_stripes=True, fixed_columns=1)
            yield Static("", id="compare-notes")
            yield Label("esc closes", classes="dim")

    def on_mount(self) -> None:
        self._load()

    @in_thread()
    def _load(self) -> None:
        curves: dict[str, list[tuple[float, float]]] = {}
        notes = []
        runs = [load_compared(run_dir) for run_dir in self.run_dirs]
        for run_dir in self.run_dirs:
            progress, problems = reader.read_progress(run_dir)
            curve = progress.epoch_series()["val_accuracy"]
            name = shown(run_dir.name)  # a legend and a note: text, never markup or control codes
            curves[name] = curve
            best = progress.best_val_accuracy
            if not curve and progress.epochs:  # a TensorBoard or RunLogger run may log other metrics
                notes.append(f"{name}: no val_accuracy; it logs {', '.join(shown(m) for m in progress.logged_metrics)}")
                continue
            notes.append(f"{name}: best {format_pct(best)} in {len(curve)} epochs"
                         + (f" ({len(problems)} garbled lines skipped)" if problems else ""))
        self.post_message(self.CurvesLoaded(curves, notes, runs))

    @on(CurvesLoaded)
    def _show(self, message: CurvesLoaded) -> None:
        curves, notes = message.curves, message.notes
        self.curves = curves
        self.query_one("#compare-chart", LineChart).set_series(curves)
        self.query_one("#compare-notes", Static).update(Text("\n".join(notes)))
        self._fill_table(message.runs)

    def _fill_table(self, runs: list[ComparedRun]) -> None:
        """One column per run: best val, test accuracy and wall time, then the settings that differ."""
        self.differing = differing_settings(runs)
        table = self.query_one("#compare-table", DataTable)
        table.add_column("", key="what")
        for run in runs:
            table.add_column(Text(shown(run.name)), key=run.name)
        table.add_row(Text("Best val", style="bold"), *(format_pct(r.best_val_accuracy) for r in runs), key="best_val")
        table.add_row(Text("Test acc", style="bold"), *(format_pct(r.test_accuracy, 2) for r in runs), key="test_acc")
        table.add_row(Text("Wall time", style="bold"), *(format_duration(r.duration_s) for r in runs), key="wall")
        for name in self.differing:
            table.add_row(SETTING_BY_NAME[name].label, *(Text(shown(run.config.get(name, "–"))) for run in runs), key=name)
        if not self.differing:
            table.add_row("Settings", *("all the same" if run.config else "–" for run in runs), key="same")

    def action_close(self) -> None:
        self.dismiss(None)
