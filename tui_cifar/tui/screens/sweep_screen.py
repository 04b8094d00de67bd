"""Sweep screen: an Optuna study followed live from its storage (the runs folder's sweep.db, or a database URL).

Trials with their state, settings and validation accuracy, the best so far, every trial's validation accuracy
per epoch on one chart (a pruned trial's line ends where the pruner cut it) and which settings mattered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static
from textual.widgets.data_table import RowDoesNotExist

from ...formatting import format_duration, format_pct
from ...sweep import StudySummary, TrialRow
from ..messages import OpenRun
from ..widgets.charts import PALETTE, LineChart
from ..workers import in_thread
from .base import CifarScreen

STATE_STYLES = {"running": "bold green", "complete": "bold cyan", "pruned": "yellow", "fail": "bold red",
                "waiting": "dim"}
# Chart colours by state; the best trial in the theme's success colour.
STATE_COLORS = {"complete": PALETTE[0], "pruned": PALETTE[3], "running": PALETTE[1], "fail": PALETTE[7],
                "waiting": PALETTE[7]}
BEST_COLOR = "success"
# Column headers for the default space's settings, short enough for all of them in 80 columns.
SHORT_NAMES = {"image_size": "px", "fine_tune_blocks": "blocks", "epochs_fine": "ep2", "lr_fine": "lr2",
               "dropout": "drop", "label_smoothing": "smooth", "augment": "mirror", "epochs_head": "ep1",
               "lr_head": "lr1", "backbone": "backbone"}
BAR_WIDTH = 20


class SweepScreen(CifarScreen):
    """The study's trials; Enter opens a trial's run (on this machine), f scores the best on the test set."""

    @dataclass
    class StudyLoaded(Message):
        summary: StudySummary | None
        error: str | None

    BINDINGS = [
        Binding("f", "finish", "Test the best"),
        Binding("f5,ctrl+r", "refresh", "Refresh", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.summary: StudySummary | None = None
        self.order: list[int] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="sweep-head")
        yield DataTable(id="sweep-table", cursor_type="row", zebra_stripes=True)
        yield LineChart("Validation accuracy per epoch, every trial", xlabel="epoch", integer_x=True, legend=False,
                        empty_text="no epoch reported yet", id="sweep-chart")
        yield Static("", id="sweep-importance")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#sweep-head", Static).update(f"Study in {self.storage_label()} — loading…")
        self.poll_every(self.cifar.sweep_refresh_interval, self.action_refresh)
        self.action_refresh()
        self.query_one(DataTable).focus()

    def storage_url(self) -> str:
        from ...sweep import default_storage

        return self.cifar.sweep_storage or default_storage(self.cifar.runs_dir)

    def storage_label(self) -> str:
        from ...sweep import describe_storage

        return describe_storage(self.storage_url())

    # ------------------------------------------------------------ loading
    def action_refresh(self) -> None:
        self._load(self.storage_url(), self.cifar.sweep_study)

    @in_thread("read-study")
    def _load(self, url: str, name: str | None) -> None:
        from ... import sweep

        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            self.post_message(self.StudyLoaded(None, "no sweep here yet: start one with `cifar-tui sweep --trials N`"))
            return
        try:
            summary, why_not = sweep.look_at_study(url, name)
        except Exception as exc:  # an unreachable database or a damaged file: said on screen, retried next refresh
            summary, why_not = None, f"cannot read the study: {exc}"
        self.post_message(self.StudyLoaded(summary, why_not))

    @on(StudyLoaded)
    def _show(self, message: StudyLoaded) -> None:
        head = self.query_one("#sweep-head", Static)
        if message.summary is None:
            head.update(f"Study in {self.storage_label()} — {message.error}")
            return
        self.summary = s = message.summary
        counts: dict[str, int] = {}
        for t in s.trials:
            counts[t.state] = counts.get(t.state, 0) + 1
        text = Text()
        text.append(f"Study {s.name}", style="bold")
        text.append(f" in {self.storage_label()}: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
        if s.best:
            text.append(f"\nBest so far: trial {s.best.number}, val {format_pct(s.best.value, 2)}", style="bold green")
            text.append(" " + ", ".join(f"{SHORT_NAMES.get(k, k)}={_short(v, k)}" for k, v in s.best.params.items()))
        if s.finished:
            text.append(f"  test {format_pct(s.finished['test_accuracy'], 2)}", style="bold cyan")
        head.update(text)
        self._fill_table(s)
        self._fill_chart(s)
        self._fill_importance(s)

    def _fill_table(self, s) -> None:
        table = self.query_one("#sweep-table", DataTable)
        columns = ["#", "State", "Val acc", "Ep", "Time", *(SHORT_NAMES.get(n, n) for n in s.param_names), "Host"]
        if [str(c.label) for c in table.columns.values()] != columns:
            table.clear(columns=True)
            table.add_columns(*columns)
            self.order = []
        order = [t.number for t in s.trials]
        rows = {t.number: [str(t.number), Text(t.state, style=STATE_STYLES.get(t.state, "")), format_pct(t.value, 2),
                           str(len(t.curve)), format_duration(t.duration_s),
                           *[_short(t.params.get(n), n) for n in s.param_names], t.host or "–"] for t in s.trials}
        if order == self.order:
            for number in order:
                for column, value in zip(table.columns, rows[number]):
                    table.update_cell(str(number), column, value)
            return
        selected = self.selected_number()
        table.clear()
        for number in order:
            table.add_row(*rows[number], key=str(number))
        self.order = order
        if selected in order:
            table.move_cursor(row=order.index(selected))

    def _fill_chart(self, s) -> None:
        best = s.best.number if s.best else None
        series, colors = {}, {}
        for t in s.trials:
            if t.curve:
                name = f"#{t.number}"
                series[name] = [(float(step), value) for step, value in t.curve]
                colors[name] = BEST_COLOR if t.number == best else STATE_COLORS.get(t.state, PALETTE[7])
        if best is not None and f"#{best}" in series:  # drawn last, on top
            series[f"#{best}"] = series.pop(f"#{best}")
        self.query_one("#sweep-chart", LineChart).set_series(series, colors=colors)

    def _fill_importance(self, s) -> None:
        """The chart's colours and the importances: one line each on a short terminal, bars on a tall one."""
        widget = self.query_one("#sweep-importance", Static)
        short = self.size.height < 30
        text = Text("green best · blue complete · red pruned (cut short) · orange running\n", style="dim")
        if not s.importances:
            text.append(s.importance_note or "")
        elif short:
            text.append("Mattered: ", style="bold")
            text.append(", ".join(f"{name} {value:.2f}" for name, value in s.importances.items()))
        else:
            text.append("Which settings mattered:", style="bold")
            width = max(len(k) for k in s.importances)
            for name, value in s.importances.items():
                text.append(f"\n{name:<{width}} {value:4.2f} ")
                text.append("█" * round(value * BAR_WIDTH), style="green")
        widget.update(text)

    # ------------------------------------------------------------ actions
    def selected_number(self) -> int | None:
        table = self.query_one("#sweep-table", DataTable)
        if table.row_count == 0:
            return None
        try:
            return int(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or "")
        except (RowDoesNotExist, ValueError):
            return None

    @on(DataTable.RowSelected, "#sweep-table")
    def _open_trial(self) -> None:
        number = self.selected_number()
        trials: list[TrialRow] = self.summary.trials if self.summary else []
        trial = next((t for t in trials if t.number == number), None)
        if trial is None:
            return
        if not trial.run_dir or not Path(trial.run_dir).is_dir():
            self.notify(f"trial {trial.number}'s run folder {trial.run_dir or '?'} is on {trial.host or 'another machine'}",
                        title="Not on this machine", severity="warning")
            return
        self.post_message(OpenRun(Path(trial.run_dir), "train"))

    def action_finish(self) -> None:
        if self.summary is None or self.summary.best is None:
            self.notify("no finished trial yet", severity="warning")
            return
        self.notify(f"scoring trial {self.summary.best.number} on the test set…", title="Test the best")
        self._finish(self.storage_url(), self.summary.name)

    @in_thread("finish")
    def _finish(self, url: str, name: str) -> None:
        from ... import sweep
        from ...runs.store import RunStoreError

        storage = sweep.open_storage(url)
        try:
            result = sweep.finish(storage, name, data_dir=self.cifar.data_dir)
        except RunStoreError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Not tested", severity="error", timeout=10)
            return
        finally:
            sweep.close_storage(storage)  # its connections back at once, as after each look
        self.app.call_from_thread(
            self.notify, f"trial {result['trial']}: test accuracy {format_pct(result['test_accuracy'], 2)} "
            f"(val {format_pct(result['val_accuracy'], 2)})", title="Best trial tested", timeout=10)
        self.app.call_from_thread(self.action_refresh)


def _short(value, name: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.2g}" if name.startswith("lr") else f"{value:.2f}"
    return str(value)
