"""Training screen: a live view of one run folder, tailed every half second.

Works for any run folder, whoever started it: this app, the headless CLI, an
earlier cifar-tui that was closed, a Keras script's RunLogger, or any program
writing TensorBoard event files. Stopping asks the training process to finish
its current batch and keep the best model.

Laid out for 80x24 first: the header folds to a few lines and the two epoch
charts share the rest; the batch-loss chart and the log tail are other views
of the same space (``v``). The chart keys (metric, smoothing, log scale, x
axis) are listed on the line above the charts.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Footer, Header, Log, OptionList
from textual.widgets.option_list import Option

from ...runs import curves, diagnostics, store, tbreader
from ...runs.reader import LogFollower, RunProgress, end_banner, is_tensorboard_dir, watched_state
from ..alerts import announce
from ..messages import GotoScreen, ResumeRun, RunStateChanged, ScreenEntered, ShowRun, StopRun
from ..widgets.run_advice import RunAdvice
from ..widgets.run_charts import BatchChart, ChartKeys, ChartSettings, EpochCharts
from ..widgets.run_header import (
    EndBanner,
    RunBars,
    RunInfo,
    RunStats,
    RunTelemetry,
    RunTitle,
    StateBadge,
    WatchedRun,
)
from ..workers import in_thread
from .base import CifarScreen
from .dialogs import ConfirmScreen

ENDED = store.ENDED_STATES
VIEWS = ("epochs", "batches", "log")
VIEW_IDS = {"epochs": "epoch-charts", "batches": "batch-chart", "log": "train-log"}


class MetricPicker(ModalScreen[str | None]):
    """Every metric the run logs, each with its val_ twin; the pick goes to the right-hand epoch chart."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    DEFAULT_CSS = """
    MetricPicker { align: center middle; }
    MetricPicker OptionList { width: 60; max-width: 90%; height: auto; max-height: 80%; border: round $primary; }
    """

    def __init__(self, pairs: list[tuple[str, str | None]], current: str | None) -> None:
        super().__init__()
        self.pairs = pairs
        self.current = current

    def compose(self) -> ComposeResult:
        options = [Option(name + (f"  + {twin}" if twin else ""), id=name) for name, twin in self.pairs]
        picker = OptionList(*options, id="metric-options")
        picker.border_title = "Metric for the right chart"
        yield picker

    def on_mount(self) -> None:
        picker = self.query_one(OptionList)
        names = [name for name, _ in self.pairs]
        if self.current in names:
            picker.highlighted = names.index(self.current)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class TrainingScreen(CifarScreen):
    """Live charts, progress and log of the run in ``run_dir``.

    Each poll makes one :class:`WatchedRun` (``watched``); the header's widgets and the charts are bound to it
    and to the chart keys' ``chart`` settings, and redraw their own parts.
    """

    BINDINGS = [
        Binding("s", "stop", "Stop run"),
        Binding("R", "resume", "Resume"),
        Binding("d", "detach", "Detach"),
        # chart keys: listed with their current values on the line above the charts
        Binding("v", "cycle_view", "View", show=False),
        Binding("m", "pick_metric", "Metric", show=False),
        Binding("z", "cycle_smoothing", "Smooth", show=False),
        Binding("y", "toggle_log", "Log y", show=False),
        Binding("x", "cycle_x", "X axis", show=False),
    ]

    state: reactive[str] = reactive("none")
    watched: reactive[WatchedRun | None] = reactive(None)
    view: reactive[str] = reactive("epochs")
    chart: reactive[ChartSettings] = reactive(ChartSettings)

    def __init__(self) -> None:
        super().__init__()
        self.run_dir: Path | None = None
        self.progress = RunProgress()
        self.tail: store.MetricsTail | tbreader.TensorBoardTail | None = None
        self.log_follower: LogFollower | None = None
        self.status: store.RunStatus | None = None
        self.stop_requested = False
        self._timer: Timer | None = None
        self._announced_end = False
        self.alert_watch = diagnostics.AlertWatch()
        self._alerts_primed = False

    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        watched = {"watched": TrainingScreen.watched}
        yield Header()
        with Vertical(id="train-top"):
            with Horizontal(id="train-title-row"):
                yield RunTitle(id="run-title").data_bind(**watched)
                yield StateBadge(id="run-state", classes="state-badge").data_bind(TrainingScreen.state)
            yield RunInfo(id="run-info").data_bind(**watched)
            yield RunBars(id="progress-grid").data_bind(**watched)
            yield RunStats(id="run-stats").data_bind(**watched)
            yield RunTelemetry(id="run-telemetry").data_bind(**watched)
            yield RunAdvice(id="run-advice").data_bind(**watched)
            yield EndBanner(id="run-banner").data_bind(**watched)
            yield ChartKeys(id="chart-keys").data_bind(TrainingScreen.view, TrainingScreen.chart, **watched)
        with ContentSwitcher(id="train-views", initial="epoch-charts"):
            yield EpochCharts(id="epoch-charts").data_bind(TrainingScreen.chart, **watched)
            yield BatchChart(id="batch-chart").data_bind(TrainingScreen.chart, **watched)
            yield Log(id="train-log", max_lines=1000, highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        # the app follows with ShowRun or ScreenEntered, which pick the run to watch
        self._timer = self.poll_every(self.cifar.poll_interval, self.poll, active=lambda: self.run_dir is not None)
        self.query_one("#train-log", Log).border_title = "train.log"

    # ------------------------------------------------------------ run selection
    def on_screen_entered(self, message: ScreenEntered) -> None:
        """The user switched here ('t'): watch the app's current run, else the newest running (or any) run."""
        current = message.current_run
        if current is not None and current != self.run_dir:
            self.show_run(current)
        elif current is None and self.run_dir is None:
            latest = self.cifar.latest_run("running") or self.cifar.latest_run("any")
            if latest is None:  # a TensorBoard logdir as the runs folder: its newest-written run
                latest = newest_tensorboard_run(self.cifar.runs_dir)
            if latest is not None:
                self.cifar.current_run = latest
                self.show_run(latest)

    def on_show_run(self, message: ShowRun) -> None:
        self.show_run(message.run_dir)

    def show_run(self, run_dir: Path) -> None:
        """Attach to a run folder (replacing the one watched before)."""
        run_dir = Path(run_dir)
        if run_dir == self.run_dir:
            self.poll()
            return
        self.run_dir = run_dir
        self.progress = RunProgress()
        if is_tensorboard_dir(run_dir):
            self.tail, self.log_follower = tbreader.TensorBoardTail(run_dir), None
        else:
            self.tail = store.MetricsTail(run_dir / store.METRICS_LOG)
            self.log_follower = LogFollower(run_dir / store.TRAIN_LOG)
        self.chart = replace(self.chart, metric=None)
        self.status = None
        self.stop_requested = False
        self._announced_end = False
        self.alert_watch = diagnostics.AlertWatch()
        self._alerts_primed = False
        self.set_reactive(TrainingScreen.state, "none")
        self.query_one("#train-log", Log).clear()
        self.watched = WatchedRun(run_dir, self.progress)
        if self._timer is not None:
            self._timer.resume()
        self.poll()

    # ------------------------------------------------------------ polling
    def poll(self) -> None:
        """Read what the training process wrote since the last poll and hand the new look down."""
        if self.run_dir is None or self.tail is None:
            return
        records = self.tail.read_new()
        if records:
            self.progress.feed(records)
        if isinstance(self.tail, tbreader.TensorBoardTail):  # no status.json: live while its files grow
            self.status = store.RunStatus(state=self.tail.state(), message="TensorBoard event files")
        else:
            self.status = store.read_status(self.run_dir)
        lines = self.log_follower.read_new() if self.log_follower else []
        if lines:
            log = self.query_one("#train-log", Log)
            log.write_lines(lines)
            self.call_after_refresh(log.scroll_end, animate=False)
        problems = [self.status.problem] if self.status.problem else []
        with self.app.batch_update():  # one repaint for all that changed
            self.state = watched_state(self.status, self.progress)  # first: a resumed run's stop request ends
            self.watched = WatchedRun(self.run_dir, self.progress, self.status, self.state,
                                      problems + self.tail.problems[-2:], self.stop_requested)
            self._check_alerts()

    def watch_state(self, old: str, new: str) -> None:
        self.refresh_bindings()
        self.post_message(RunStateChanged(self.run_dir, new))
        if new == "running":  # resumed: the earlier end and stop request no longer hold
            self._announced_end = False
            if old in ENDED:
                self.stop_requested = False
        if new in ENDED and old in ("running", "unknown", "none") and not self._announced_end:
            self._announced_end = True
            if old == "running" and self.run_dir is not None:  # seen ending, not found ended
                announce(self.app, f"cifar-tui: {self.run_dir.name}", end_banner(new, self.progress, self.run_dir),
                         ok=new == "finished")

    def _check_alerts(self) -> None:
        """Each alert rule that starts to hold on a running run: bell, desktop notification, toast and the
        --notify command, once."""
        batches = [self.progress.last_batch] if self.progress.last_batch else []
        primed, self._alerts_primed = self._alerts_primed, True
        fresh = self.alert_watch.new_alerts(self.progress.epochs, self.progress.config or {}, batches)
        if primed and self.state == "running" and self.progress.end is None:  # not what held before we looked
            for alert in fresh:
                title = f"cifar-tui: {self.run_dir.name if self.run_dir else 'run'}: {alert.rule}"
                announce(self.app, title, alert.line, ok=False)
                if self.cifar.notify_command and self.run_dir is not None:
                    self._run_notify(self.cifar.notify_command, self.run_dir, alert)

    @in_thread("notify", exclusive=False)
    def _run_notify(self, command: str, run_dir: Path, alert: diagnostics.Alert) -> None:
        """The user's --notify command for an alert, off the UI thread (it may take seconds: a mail, a chat)."""
        from ...notify import run_notify_command

        run_notify_command(command, run_dir, alert, quiet=True)  # its output would scribble over the screen

    # ------------------------------------------------------------ chart controls
    def action_cycle_view(self) -> None:
        self.view = curves.next_in(VIEWS, self.view)

    def watch_view(self, view: str) -> None:
        self.query_one("#train-views", ContentSwitcher).current = VIEW_IDS[view]

    def action_pick_metric(self) -> None:
        pairs = curves.metric_pairs(self.progress.logged_metrics)
        if not pairs:
            self.notify("No metrics logged yet", severity="warning")
            return

        def picked(name: str | None) -> None:
            if name:
                self.chart = replace(self.chart, metric=name)
                self.view = "epochs"

        self.app.push_screen(MetricPicker(pairs, self.progress.chart_metric(self.chart.metric)), picked)

    def action_cycle_smoothing(self) -> None:
        self.chart = replace(self.chart, smoothing=float(curves.next_in(curves.SMOOTHING_WEIGHTS, self.chart.smoothing)))

    def action_toggle_log(self) -> None:
        self.chart = replace(self.chart, log_y=not self.chart.log_y)

    def action_cycle_x(self) -> None:
        self.chart = replace(self.chart, x_axis=str(curves.next_in(curves.X_AXES, self.chart.x_axis)))

    # ------------------------------------------------------------ actions
    def on_stop_run(self, _message: StopRun) -> None:
        self.action_stop()

    def can_stop(self) -> bool:
        # a TensorBoard logdir's writer is no process of ours to stop
        return self.run_dir is not None and self.state == "running" and not isinstance(self.tail, tbreader.TensorBoardTail)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "stop":
            return self.can_stop()  # False: not in the footer of an ended run
        if action == "resume":
            return self.run_dir is not None and self.state in store.RESUMABLE_STATES  # False: not in the footer
        return True

    def action_resume(self) -> None:
        if self.run_dir is not None and self.state in store.RESUMABLE_STATES:
            self.post_message(ResumeRun(self.run_dir))

    def action_stop(self) -> None:
        if not self.can_stop():
            self.notify("This run is not running", severity="warning")
            return
        assert self.run_dir is not None
        run_dir = self.run_dir
        question = (f"Stop {run_dir.name}?\n\nThe training process finishes its current batch, "
                    "keeps the best model so far and marks the run 'stopped'.")

        def answered(yes: bool | None) -> None:
            if yes:
                self.request_stop(run_dir)

        self.app.push_screen(ConfirmScreen(question, yes="Stop run", title="Stop training"), answered)

    def request_stop(self, run_dir: Path) -> None:
        from ...engine import launcher

        try:
            ok = launcher.request_stop(run_dir, by="the app")
        except Exception as exc:
            self.notify(f"Could not stop the run: {exc}", severity="error")
            return
        if ok:
            self.stop_requested = True
            self.notify("Stop requested: the run stops after its current batch", title="Stopping")
        else:
            self.notify("The run could not be signalled (has it already ended?)", severity="warning")
        self.poll()

    def action_detach(self) -> None:
        """Leave the run going in the background and go to the runs list."""
        if self.run_dir is not None and self.state == "running":
            self.notify(f"{self.run_dir.name} keeps running; reattach from the runs screen", timeout=4)
        self.post_message(GotoScreen("runs"))


def newest_tensorboard_run(logdir: Path) -> Path | None:
    """The TensorBoard run in ``logdir`` whose event files were written last, or None."""
    def written(run: Path) -> float:
        return max((f.stat().st_mtime for f in tbreader.event_files(run) if f.exists()), default=0.0)

    return max(tbreader.iter_tensorboard_runs(logdir), key=written, default=None)
