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

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Footer, Header, Label, Log, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from ...engine import telemetry
from ...formatting import fmt, format_duration, format_lr, format_pct, wrap_items
from ...runs import curves, diagnostics, store, tbreader
from ...runs.reader import LogFollower, RunProgress, end_banner, is_tensorboard_dir, watched_state
from ..alerts import announce
from ..messages import GotoScreen, ResumeRun, RunStateChanged, ScreenEntered, ShowRun, StopRun
from ..widgets.charts import TRAIN_COLOR, VAL_COLOR, LineChart
from ..widgets.run_advice import RunAdvice
from .base import CifarScreen, in_thread
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
    """Live charts, progress and log of the run in ``run_dir``."""

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
    view: reactive[str] = reactive("epochs")
    metric: reactive[str | None] = reactive(None)  # the right chart's metric; None: the run's main one
    smoothing: reactive[float] = reactive(0.0)
    log_y: reactive[bool] = reactive(False)
    x_axis: reactive[str] = reactive("epoch")

    def __init__(self) -> None:
        super().__init__()
        self.run_dir: Path | None = None
        self.progress = RunProgress()
        self.tail: store.MetricsTail | tbreader.TensorBoardTail | None = None
        self.log_follower: LogFollower | None = None
        self.status: store.RunStatus | None = None
        self.stop_requested = False
        self._timer: Timer | None = None
        self._epoch_version = -1
        self._batch_version = -1
        self._announced_end = False
        self.alert_watch = diagnostics.AlertWatch()
        self._alerts_primed = False


    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="train-top"):
            with Horizontal(id="train-title-row"):
                yield Static("", id="run-title")
                yield Static("", id="run-state", classes="state-badge")
            yield Static("", id="run-info")
            with Grid(id="progress-grid"):
                yield Label("Epoch", id="epoch-label", classes="progress-label")
                yield ProgressBar(id="epoch-progress", show_eta=False)
                yield Label("Run", id="run-label", classes="progress-label")
                yield ProgressBar(id="run-progress", show_eta=False)
            yield Static("", id="run-stats")
            yield Static("", id="run-telemetry")
            yield RunAdvice("", id="run-advice")
            yield Static("", id="run-banner")
            yield Static("", id="chart-keys")
        with ContentSwitcher(id="train-views", initial="epoch-charts"):
            with Horizontal(id="epoch-charts"):
                yield LineChart("Loss", xlabel="epoch", integer_x=True, id="loss-chart")
                yield LineChart("Accuracy", xlabel="epoch", integer_x=True, id="acc-chart")
            yield LineChart("Loss per batch", xlabel="epoch", integer_x=True, id="batch-chart")
            yield Log(id="train-log", max_lines=1000, highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        # the app follows with ShowRun or ScreenEntered, which pick the run to watch
        self._timer = self.poll_every(self.cifar.poll_interval, self.poll, active=lambda: self.run_dir is not None)
        self.query_one("#train-log", Log).border_title = "train.log"
        self._update_chart_keys()

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
        if self.run_dir is None:
            self._show_no_run()

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
        self.metric = None
        self.status = None
        self.stop_requested = False
        self._epoch_version = self._batch_version = -1
        self._announced_end = False
        self.alert_watch = diagnostics.AlertWatch()
        self._alerts_primed = False
        self.set_reactive(TrainingScreen.state, "none")
        self._reset_view()
        if self._timer is not None:
            self._timer.resume()
        self.poll()

    def _reset_view(self) -> None:
        self.query_one("#train-log", Log).clear()
        for chart in self.query(LineChart):
            chart.set_series({})
        self.query_one("#run-banner", Static).update("")
        self.query_one("#run-banner", Static).display = False
        self.query_one(RunAdvice).show(self.progress, running=False)
        self.query_one("#run-title", Static).update(Text(self.run_dir.name if self.run_dir else "", style="bold"))

    def _show_no_run(self) -> None:
        self.query_one("#run-title", Static).update(Text("No run selected", style="bold"))
        self.query_one("#run-info", Static).update(
            "Start one on the configure screen (c), or pick one on the runs screen (r).")

    # ------------------------------------------------------------ polling
    def poll(self) -> None:
        """Read what the training process wrote since the last poll and redraw what changed."""
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
        with self.app.batch_update():  # one repaint for all that changed
            self.state = watched_state(self.status, self.progress)
            self._update_info()
            self._update_telemetry()
            self._update_progress()
            if self.progress.epoch_version != self._epoch_version:
                self._epoch_version = self.progress.epoch_version
                self._update_epoch_charts()
            if self.progress.batch_version != self._batch_version:
                self._batch_version = self.progress.batch_version
                self._update_batch_chart()
            self._check_alerts()
        if self.state in ENDED:  # polling goes on: a stopped or killed run may be resumed
            self._render_banner()

    def watch_state(self, old: str, new: str) -> None:
        badge = self.query_one("#run-state", Static)
        badge.update(f" {new} ")
        for name in (*store.SHOWN_STATES, "none"):
            badge.set_class(name == new, f"-{name}")
        self.refresh_bindings()
        self.query_one(RunAdvice).show(self.progress, running=new == "running")
        self.post_message(RunStateChanged(self.run_dir, new))
        if new == "running":  # resumed: the earlier end's banner and stop request no longer hold
            self.query_one("#run-banner", Static).display = False
            self._announced_end = False
            if old in ENDED:
                self.stop_requested = False
        if new in ENDED and old in ("running", "unknown", "none") and not self._announced_end:
            self._announce_end(new, live=old == "running")

    def _render_banner(self) -> str:
        banner = end_banner(self.state, self.progress, self.run_dir) if self.run_dir else ""
        widget = self.query_one("#run-banner", Static)
        widget.update(banner)
        widget.set_class(self.state != "finished", "-bad")
        widget.display = True
        return banner

    def _announce_end(self, state: str, live: bool) -> None:
        self._announced_end = True
        banner = self._render_banner()
        if live:
            announce(self.app, f"cifar-tui: {self.run_dir.name if self.run_dir else 'run'}", banner,
                     ok=state == "finished")

    def _update_info(self) -> None:
        p = self.progress
        cfg = p.config or {}
        status = self.status
        bits = []
        kind = store.run_kind(cfg)
        keras_run = kind in (store.KERAS_KIND, tbreader.KIND)  # no stages, no cifar-tui settings
        if kind == tbreader.KIND:
            bits.append(f"TensorBoard logdir {cfg.get('logdir', '')}")
        elif keras_run:
            bits.extend(keras_run_info(cfg))
        elif cfg:
            bits.append(f"{cfg.get('backbone', '?')} {cfg.get('image_size', '?')}px")
            bits.append(f"batch {cfg.get('batch_size', '?')}")
            bits.append(f"fine-tune {cfg.get('fine_tune_blocks', '?')} blocks")
        if p.device:
            bits.append(f"device {p.device}")
        if status is not None and status.host:
            bits.append(f"host {status.host}" + (f" pid {status.pid}" if status.pid else ""))
        info = "  ·  ".join(bits)
        problems = []
        if status is not None and status.problem:
            problems.append(status.problem)
        if self.tail is not None:
            problems.extend(self.tail.problems[-2:])
        text = Text(info)
        if problems:
            text.append("\n⚠ " + "; ".join(problems), style="bold yellow")
        self.query_one("#run-info", Static).update(text)

        stage = p.stage
        head_only = cfg.get("fine_tune_blocks") == 0 or cfg.get("epochs_fine") == 0
        stage_txt = "" if keras_run else "head only" if head_only else (f"stage {stage}/2" if stage else "stage –")
        if self.stop_requested and self.state == "running":
            stage_txt += " (stop requested)"
        last = p.last_epoch or {}
        # Before the first record of a (re)started process, its status says what it is doing (importing TensorFlow).
        starting = self.state == "running" and (p.phase is None or p.end is not None)
        phase = "starting" if starting else p.phase_label()
        if kind == tbreader.KIND:  # no phases: the files grow, or not
            starting, phase = False, ("TensorBoard events" if p.end is None else phase)
        if starting or p.phase in ("load_data", "extract_features", "evaluate") and p.end is None:
            detail = (p.phase_message if not starting else "") or (status.message if status else "")
            if detail:
                phase = f"{phase}: {detail}"
        what, ips, eta = p.speed() if self.state == "running" else ("", p.images_per_sec, None)
        stats = [
            phase,
            stage_txt,
            f"LR {format_lr(p.lr)}" if p.lr is not None else "",
            f"{ips:,.0f} img/s" if ips else ("– img/s" if kind != tbreader.KIND else ""),
            *self._val_scores(last),
            f"elapsed {format_duration(p.elapsed())}",
            # the phase's own ETA ("features", "stage 2", "test set"), as the CLI's bars show it
            f"{what} ETA {format_duration(eta)}".strip() if self.state == "running" and what else "",
        ]
        if p.trainable_params:
            stats.append(f"{p.trainable_params / 1e6:.2f}M trainable")
        widget = self.query_one("#run-stats", Static)
        widget.update(wrap_items([s for s in stats if s], widget.content_size.width or self.size.width - 2))

    def _update_telemetry(self) -> None:
        """The latest telemetry sample as one line, and the input-pipeline hint when it applies."""
        widget = self.query_one("#run-telemetry", Static)
        samples = self.progress.telemetry
        widget.display = bool(samples)
        if not samples:
            return
        width = widget.content_size.width or self.size.width - 2
        text = Text(wrap_items(telemetry.telemetry_items(samples[-1]), width, " · "), style="dim")  # never cut mid-figure
        rates = [r for e in self.progress.epochs if (r := e.get("images_per_sec")) is not None]
        hint = telemetry.input_bound_hint(samples, rates) if self.state == "running" else None
        if hint:
            text.append(f"\n⚠ {hint}", style="bold yellow")
        widget.update(text)

    def _val_scores(self, last: dict) -> list[str]:
        """Validation accuracy and its best; for a run without accuracy (RunLogger), its own metric's last value."""
        metric = self.progress.main_metric
        logged = self.progress.logged_metrics
        if metric in (None, "accuracy") and ("val_accuracy" in logged or not logged):
            return [f"val acc {format_pct(last.get('val_accuracy'))}", f"best {format_pct(self.progress.best_val_accuracy)}"]
        if f"val_{metric}" not in logged and "val_loss" in logged:  # no validation twin: its val loss
            return [f"val loss {fmt(last.get('val_loss'), '.4f')}"]
        return [f"val {metric} {fmt(last.get(f'val_{metric}'), '.4f')}"]

    def _update_progress(self) -> None:
        p = self.progress
        epoch_bar = self.query_one("#epoch-progress", ProgressBar)
        run_bar = self.query_one("#run-progress", ProgressBar)
        epoch_label = self.query_one("#epoch-label", Label)
        run_label = self.query_one("#run-label", Label)
        tensorboard = p.config.get("kind") == tbreader.KIND
        for bar in (epoch_bar, run_bar):  # event files have no batches and no planned total: no bars to fill
            bar.styles.visibility = "hidden" if tensorboard else "visible"
        if tensorboard:
            newest = p.last_epoch or {}
            epoch_label.update(f"Step {fmt(newest.get('step'), ',.0f')}" if newest else "Step")
            run_label.update(f"{p.epochs_done:,} logged")
            return
        if p.steps and p.batch_epoch:
            last = p.last_epoch
            complete = last is not None and (int(last.get("stage", 0)), int(last.get("epoch", 0))) == (
                p.stage, p.batch_epoch)
            done = p.steps if complete else (p.batch or 0)
            epoch_label.update(f"Epoch {p.batch_epoch}/{p.planned_epochs(p.stage or 1)}")
            epoch_bar.update(total=p.steps, progress=min(done, p.steps))
        else:
            epoch_label.update("Epoch")
            epoch_bar.update(total=p.steps or 1, progress=0)
        if p.phase in ("load_data", "extract_features") and not p.epochs and p.extract_total:
            # before training, the run bar follows feature extraction
            run_label.update("Features")
            run_bar.update(total=p.extract_total, progress=min(p.extract_done or 0, p.extract_total))
        elif p.phase == "evaluate" and p.end is None and p.test_total:
            # after training, the test report
            run_label.update("Test set")
            run_bar.update(total=p.test_total, progress=min(p.test_done or 0, p.test_total))
        elif p.epochs_total:
            run_label.update(f"Run {p.epochs_done}/{p.epochs_total} ep")
            run_bar.update(total=p.epochs_total, progress=min(p.epochs_done, p.epochs_total))
        else:
            run_label.update("Run")
            run_bar.update(total=1, progress=0)

    @property
    def shown_metric(self) -> str:
        """The right chart's metric: the one picked (m), else the run's main one (accuracy, or its first)."""
        logged = self.progress.logged_metrics
        if self.metric and (self.metric in logged or not logged):
            return self.metric
        return self.progress.main_metric or "accuracy"

    def _update_epoch_charts(self) -> None:
        p = self.progress
        metric = self.shown_metric
        axis = self.x_axis
        twin = lambda name: name[4:] if name.startswith("val_") else f"val_{name}"  # noqa: E731
        series = p.epoch_series(["loss", metric if not metric.startswith("val_") else twin(metric)], axis=axis)
        marks: list[float] = []
        highlights: list[float] = []
        if axis == "epoch":
            boundary = p.stage_boundary
            marks = [boundary] if boundary is not None else []
            kept = diagnostics.kept_epoch(p.epochs, p.config or {})
            # the epoch whose weights the run keeps (best validation accuracy), in the success colour
            highlights = [p.epoch_offset(kept[0]) + kept[1]] if kept is not None else []
        colors = {"train": TRAIN_COLOR, "val": VAL_COLOR}
        # a TensorBoard run's records are its logged steps, whatever its script calls them: never "epoch"
        unit = "step" if axis == "epoch" and (p.config or {}).get("kind") == tbreader.KIND else axis
        xlabel = {"epoch": "epoch", "step": "step", "wall time": "wall time (s)"}[unit]
        train_key = metric if not metric.startswith("val_") else twin(metric)
        per = {"epoch": " per epoch", "step": " per step", "wall time": " over time"}[unit]
        for chart_id, title, key in (("#loss-chart", "Loss", "loss"), ("#acc-chart", train_key.replace("_", " ").capitalize(), train_key)):
            chart = self.query_one(chart_id, LineChart)
            chart.chart_title = title + per
            chart.xlabel = xlabel
            chart.integer_x = axis == "epoch"
            chart.smoothing = self.smoothing
            chart.log_y = self.log_y
            chart.set_series({"train": series.get(key, []), "val": series.get(f"val_{key}", [])}, colors=colors,
                             vlines=marks, highlights=highlights)
        self.query_one(RunAdvice).show(p, running=self.state == "running")

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

    def _update_chart_keys(self) -> None:
        smooth = f"{self.smoothing:g}" if self.smoothing else "off"
        self.query_one("#chart-keys", Static).update(Text.assemble(
            ("v", "bold"), f" {self.view}  ", ("m", "bold"), f" {self.shown_metric}  ",
            ("z", "bold"), f" smooth {smooth}  ", ("y", "bold"), f" {'log' if self.log_y else 'linear'}  ",
            ("x", "bold"), f" {self.x_axis}", style="dim"))

    # ------------------------------------------------------------ chart controls
    def action_cycle_view(self) -> None:
        self.view = curves.next_in(VIEWS, self.view)

    def watch_view(self, view: str) -> None:
        self.query_one("#train-views", ContentSwitcher).current = VIEW_IDS[view]
        self._update_chart_keys()

    def action_pick_metric(self) -> None:
        pairs = curves.metric_pairs(self.progress.logged_metrics)
        if not pairs:
            self.notify("No metrics logged yet", severity="warning")
            return

        def picked(name: str | None) -> None:
            if name:
                self.metric = name
                self.view = "epochs"

        self.app.push_screen(MetricPicker(pairs, self.shown_metric), picked)

    def action_cycle_smoothing(self) -> None:
        self.smoothing = float(curves.next_in(curves.SMOOTHING_WEIGHTS, self.smoothing))

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y

    def action_cycle_x(self) -> None:
        self.x_axis = str(curves.next_in(curves.X_AXES, self.x_axis))

    def _chart_setting_changed(self) -> None:
        if self.is_mounted:
            self._update_chart_keys()
            self._update_epoch_charts()
            self._update_batch_chart()

    watch_metric = watch_smoothing = watch_log_y = watch_x_axis = _chart_setting_changed

    def _update_batch_chart(self) -> None:
        p = self.progress
        boundary = p.stage_boundary
        chart = self.query_one("#batch-chart", LineChart)
        chart.smoothing, chart.log_y = self.smoothing, self.log_y
        chart.set_series(
            {"batch loss": p.batch_points}, colors={"batch loss": TRAIN_COLOR},
            vlines=[boundary - 0.5] if boundary is not None else [])

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


def keras_run_info(cfg: dict) -> list[str]:
    """The info line of a RunLogger run: its model, optimizer, batch size and size, as its config.json has them."""
    optimizer = cfg.get("optimizer")
    name = (optimizer.get("class") or optimizer.get("name")) if isinstance(optimizer, dict) else optimizer
    bits = [f"Keras model {cfg.get('model') or '?'}"]
    if name:
        bits.append(f"optimizer {name}")
    if cfg.get("loss"):
        bits.append(f"loss {cfg['loss']}")
    if cfg.get("batch_size"):
        bits.append(f"batch {cfg['batch_size']}")
    if isinstance(cfg.get("total_params"), int):
        bits.append(f"{cfg['total_params']:,} params")
    return bits
