"""Training screen: a live view of one run folder, tailed every half second.

Works for any run folder, whoever started it: this app, the headless CLI, or
an earlier cifar-tui that was closed. Stopping asks the training process to
finish its current batch and keep the best model.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Footer, Header, Label, Log, ProgressBar, Static

from ... import diagnostics, runstore
from ...formatting import fmt, format_duration, format_lr, format_pct
from ..messages import GotoScreen, ResumeRun, RunStateChanged, ScreenEntered, ShowRun, StopRun
from ...runreader import LogFollower, RunProgress
from ..alerts import announce
from ..widgets.charts import TRAIN_COLOR, VAL_COLOR, LineChart
from ..widgets.run_advice import RunAdvice
from .base import CifarScreen
from .dialogs import ConfirmScreen

ENDED = runstore.ENDED_STATES


class TrainingScreen(CifarScreen):
    """Live charts, progress and log of the run in ``run_dir``."""

    BINDINGS = [
        Binding("s", "stop", "Stop run"),
        Binding("R", "resume", "Resume"),
        Binding("d", "detach", "Detach"),
    ]

    state: reactive[str] = reactive("none")

    def __init__(self) -> None:
        super().__init__()
        self.run_dir: Path | None = None
        self.progress = RunProgress()
        self.tail: runstore.MetricsTail | None = None
        self.log_follower: LogFollower | None = None
        self.status: runstore.RunStatus | None = None
        self.stop_requested = False
        self._timer: Timer | None = None
        self._epoch_version = -1
        self._batch_version = -1
        self._announced_end = False


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
            yield RunAdvice("", id="run-advice")
            yield Static("", id="run-banner")
        with Grid(id="train-charts"):
            yield LineChart("Loss per epoch", xlabel="epoch", integer_x=True, id="loss-chart")
            yield LineChart("Accuracy per epoch", xlabel="epoch", integer_x=True, id="acc-chart")
            yield LineChart("Loss per batch", xlabel="epoch", integer_x=True, id="batch-chart")
            yield Log(id="train-log", max_lines=1000, highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        # the app follows with ShowRun or ScreenEntered, which pick the run to watch
        self._timer = self.set_interval(self.cifar.poll_interval, self.poll, pause=True)
        self.query_one("#train-log", Log).border_title = "train.log"

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_screen_resume(self) -> None:
        if self._timer is not None and self.run_dir is not None:
            self._timer.resume()
            self.poll()

    # ------------------------------------------------------------ run selection
    def on_screen_entered(self, message: ScreenEntered) -> None:
        """The user switched here ('t'): watch the app's current run, else the newest running (or any) run."""
        current = message.current_run
        if current is not None and current != self.run_dir:
            self.show_run(current)
        elif current is None and self.run_dir is None:
            latest = self.cifar.latest_run("running") or self.cifar.latest_run("any")
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
        self.tail = runstore.MetricsTail(run_dir / runstore.METRICS_LOG)
        self.log_follower = LogFollower(run_dir / runstore.TRAIN_LOG)
        self.status = None
        self.stop_requested = False
        self._epoch_version = self._batch_version = -1
        self._announced_end = False
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
        self.status = runstore.read_status(self.run_dir)
        lines = self.log_follower.read_new() if self.log_follower else []
        if lines:
            log = self.query_one("#train-log", Log)
            log.write_lines(lines)
            self.call_after_refresh(log.scroll_end, animate=False)
        with self.app.batch_update():  # one repaint for all that changed
            self._update_state()
            self._update_info()
            self._update_progress()
            if self.progress.epoch_version != self._epoch_version:
                self._epoch_version = self.progress.epoch_version
                self._update_epoch_charts()
            if self.progress.batch_version != self._batch_version:
                self._batch_version = self.progress.batch_version
                self._update_batch_chart()
        if self.state in ENDED:  # polling goes on: a stopped or killed run may be resumed
            self._render_banner()

    def _update_state(self) -> None:
        """status.json's state, as the runs list reads it; the log's run_end only while status.json still says running.

        (A run whose process died reads "killed" here as in the list, even after the run_end of an earlier attempt.)
        """
        status = self.status
        state = runstore.effective_state(status) if status else "unknown"
        end = self.progress.end
        # A run_end record ends the run while status.json says running, unless another live process has
        # taken the run up since (a resume starting).
        resumed = state == "running" and self.progress.pid is not None and status.pid != self.progress.pid
        if end is not None and state in ("running", "unknown") and not resumed:
            state = str(end.get("state") or state)
            if state == "running":  # a run_end record always ends the run
                state = "finished"
        self.state = state

    def watch_state(self, old: str, new: str) -> None:
        badge = self.query_one("#run-state", Static)
        badge.update(f" {new} ")
        for name in (*runstore.SHOWN_STATES, "none"):
            badge.set_class(name == new, f"-{name}")
        self.refresh_bindings()
        self.query_one(RunAdvice).show(self.progress, running=new == "running")
        self.post_message(RunStateChanged(self.run_dir, new))
        if new == "running":  # resumed: the earlier end's banner no longer holds
            self.query_one("#run-banner", Static).display = False
            self._announced_end = False
        if new in ENDED and old in ("running", "unknown", "none") and not self._announced_end:
            self._announce_end(new, live=old == "running")

    def _has_report(self) -> bool:
        return self.run_dir is not None and runstore.has_report(self.run_dir)

    def _banner_text(self, state: str) -> str:
        end = self.progress.end or {}
        acc = end.get("test_accuracy")
        parts = [f"Run {state}."]
        if state == "killed":
            parts = ["The training process is gone without a final record (killed?)."]
            if self.run_dir is not None and (self.run_dir / runstore.BACKUP_DIR).exists():
                parts.append("Resume it with R (or: cifar-tui train --resume " + str(self.run_dir) + ").")
        message = str(end.get("message") or "").strip()
        shown_below = isinstance(acc, (int, float)) and message.lower().startswith("test accuracy")
        if message and not shown_below and message.lower() not in ("done", "finished", state):
            parts.append(message if message.endswith(".") else message + ".")
        if isinstance(acc, (int, float)):
            parts.append(f"Test accuracy {100 * acc:.2f}%.")
        if self._has_report():
            parts.append("Press e to evaluate.")
        return " ".join(parts)

    def _render_banner(self) -> str:
        banner = self._banner_text(self.state)
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
        keras_run = runstore.run_kind(cfg) == runstore.KERAS_KIND
        if keras_run:
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
        if starting or p.phase in ("load_data", "extract_features", "evaluate") and p.end is None:
            detail = (p.phase_message if not starting else "") or (status.message if status else "")
            if detail:
                phase = f"{phase}: {detail}"
        stats = [
            phase,
            stage_txt,
            f"LR {format_lr(p.lr)}",
            f"{p.images_per_sec:,.0f} img/s" if p.images_per_sec else "– img/s",
            *self._val_scores(last),
            f"elapsed {format_duration(p.elapsed())}",
            f"ETA {format_duration(p.eta_seconds())}" if self.state == "running" else "",
        ]
        if p.trainable_params:
            stats.append(f"{p.trainable_params / 1e6:.2f}M trainable")
        self.query_one("#run-stats", Static).update("  ·  ".join(s for s in stats if s))

    def _val_scores(self, last: dict) -> list[str]:
        """Validation accuracy and its best; for a run without accuracy (RunLogger), its own metric's last value."""
        metric = self.progress.main_metric
        if metric in (None, "accuracy"):
            return [f"val acc {format_pct(last.get('val_accuracy'))}", f"best {format_pct(self.progress.best_val_accuracy)}"]
        return [f"val {metric} {fmt(last.get(f'val_{metric}'), '.4f')}"]

    def _update_progress(self) -> None:
        p = self.progress
        epoch_bar = self.query_one("#epoch-progress", ProgressBar)
        run_bar = self.query_one("#run-progress", ProgressBar)
        epoch_label = self.query_one("#epoch-label", Label)
        run_label = self.query_one("#run-label", Label)
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

    def _update_epoch_charts(self) -> None:
        p = self.progress
        metric = p.main_metric or "accuracy"
        series = p.epoch_series(["loss", metric])
        boundary = p.stage_boundary
        vlines = [boundary] if boundary is not None else []
        kept = diagnostics.kept_epoch(p.epochs)
        # the epoch whose weights the run keeps (best validation accuracy), in the success colour
        highlights = [p.epoch_offset(kept[0]) + kept[1]] if kept is not None else []
        colors = {"train": TRAIN_COLOR, "val": VAL_COLOR}
        self.query_one("#loss-chart", LineChart).set_series(
            {"train": series["loss"], "val": series["val_loss"]}, colors=colors, vlines=vlines, highlights=highlights)
        metric_chart = self.query_one("#acc-chart", LineChart)
        metric_chart.chart_title = f"{metric.replace('_', ' ').capitalize()} per epoch"
        metric_chart.set_series(
            {"train": series[metric], "val": series[f"val_{metric}"]}, colors=colors, vlines=vlines,
            highlights=highlights)
        self.query_one(RunAdvice).show(p, running=self.state == "running")

    def _update_batch_chart(self) -> None:
        p = self.progress
        boundary = p.stage_boundary
        self.query_one("#batch-chart", LineChart).set_series(
            {"batch loss": p.batch_points}, colors={"batch loss": TRAIN_COLOR},
            vlines=[boundary - 0.5] if boundary is not None else [])

    # ------------------------------------------------------------ actions
    def on_stop_run(self, _message: StopRun) -> None:
        self.action_stop()

    def can_stop(self) -> bool:
        return self.run_dir is not None and self.state == "running"

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "stop":
            return True if self.can_stop() else None  # None: shown disabled
        if action == "resume":
            return self.run_dir is not None and self.state in runstore.RESUMABLE_STATES  # False: not in the footer
        return True

    def action_resume(self) -> None:
        if self.run_dir is not None and self.state in runstore.RESUMABLE_STATES:
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
        from ... import launcher

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


def keras_run_info(cfg: dict) -> list[str]:
    """The info line of a RunLogger run: its model, optimizer, batch size and size, as its config.json has them."""
    optimizer = cfg.get("optimizer")
    name = optimizer.get("name") if isinstance(optimizer, dict) else optimizer
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
