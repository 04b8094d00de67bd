"""The training screen's header: small widgets, each drawing one part of a look at the watched run.

The screen reads the run folder and hands each look down as one :class:`WatchedRun`
(``data_bind``); every widget here redraws its own part from it, so the screen
never pushes text into its children.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.reactive import reactive
from textual.widgets import Label, ProgressBar, Static

from ...engine import telemetry
from ...formatting import fmt, format_duration, format_lr, format_pct, wrap_items
from ...runs import store, tbreader
from ...runs.reader import RunProgress, end_banner

ENDED = store.ENDED_STATES


@dataclass(eq=False)  # each look is new, so the widgets bound to it redraw
class WatchedRun:
    """One look at the watched run: its records so far, its status file and the state they make."""

    run_dir: Path
    progress: RunProgress = field(default_factory=RunProgress)
    status: store.RunStatus | None = None
    state: str = "none"
    problems: list[str] = field(default_factory=list)  # the status file's and the metrics log's, newest last
    stop_requested: bool = False

    @property
    def kind(self) -> str:
        return store.run_kind(self.progress.config or {})

    @property
    def running(self) -> bool:
        return self.state == "running"


class WatchedStatic(Static):
    """A line of the header drawn from the latest look (None: no run is watched)."""

    watched: reactive[WatchedRun | None] = reactive(None)

    def watch_watched(self, watched: WatchedRun | None) -> None:
        self.update(self.text(watched))

    def text(self, watched: WatchedRun | None) -> Text | str:
        raise NotImplementedError

    @property
    def wrap_width(self) -> int:
        """The columns to wrap to (before the first layout, the screen's less the padding)."""
        return self.content_size.width or self.screen.size.width - 2


class RunTitle(WatchedStatic):
    def text(self, watched: WatchedRun | None) -> Text:
        return Text(watched.run_dir.name if watched else "No run selected", style="bold")


class StateBadge(Static):
    """The run's state, coloured by the stylesheet's ``-running``, ``-finished``... classes."""

    state: reactive[str] = reactive("none")

    def watch_state(self, state: str) -> None:
        self.update(f" {state} ")
        for name in (*store.SHOWN_STATES, "none"):
            self.set_class(name == state, f"-{name}")


class RunInfo(WatchedStatic):
    """What the run is (model, device, host) and what is wrong with its files."""

    def text(self, watched: WatchedRun | None) -> Text | str:
        if watched is None:
            return "Start one on the configure screen (c), or pick one on the runs screen (r)."
        cfg = watched.progress.config or {}
        bits = []
        if watched.kind == tbreader.KIND:
            bits.append(f"TensorBoard logdir {cfg.get('logdir', '')}")
        elif watched.kind == store.KERAS_KIND:
            bits.extend(keras_run_info(cfg))
        elif cfg:
            bits.append(f"{cfg.get('backbone', '?')} {cfg.get('image_size', '?')}px")
            bits.append(f"batch {cfg.get('batch_size', '?')}")
            bits.append(f"fine-tune {cfg.get('fine_tune_blocks', '?')} blocks")
        if watched.progress.device:
            bits.append(f"device {watched.progress.device}")
        status = watched.status
        if status is not None and status.host:
            bits.append(f"host {status.host}" + (f" pid {status.pid}" if status.pid else ""))
        text = Text("  ·  ".join(bits))
        if watched.problems:
            text.append("\n⚠ " + "; ".join(watched.problems), style="bold yellow")
        return text


class RunStats(WatchedStatic):
    """The phase, stage, learning rate, speed, validation score, elapsed time and ETA, wrapped between figures."""

    def text(self, watched: WatchedRun | None) -> str:
        if watched is None:
            return ""
        p, status = watched.progress, watched.status
        cfg = p.config or {}
        kind = watched.kind
        keras_run = kind in (store.KERAS_KIND, tbreader.KIND)  # no stages, no cifar-tui settings
        head_only = cfg.get("fine_tune_blocks") == 0 or cfg.get("epochs_fine") == 0
        stage_txt = "" if keras_run else "head only" if head_only else (f"stage {p.stage}/2" if p.stage else "stage –")
        if watched.stop_requested and watched.running:
            stage_txt += " (stop requested)"
        # Before the first record of a (re)started process, its status says what it is doing (importing TensorFlow).
        starting = watched.running and (p.phase is None or p.end is not None)
        phase = "starting" if starting else p.phase_label()
        if kind == tbreader.KIND:  # no phases: the files grow, or not
            starting, phase = False, ("TensorBoard events" if p.end is None else phase)
        if starting or p.phase in ("load_data", "extract_features", "evaluate") and p.end is None:
            detail = (p.phase_message if not starting else "") or (status.message if status else "")
            if detail:
                phase = f"{phase}: {detail}"
        what, ips, eta = p.speed() if watched.running else ("", p.images_per_sec, None)
        stats = [
            phase,
            stage_txt,
            f"LR {format_lr(p.lr)}" if p.lr is not None else "",
            f"{ips:,.0f} img/s" if ips else ("– img/s" if kind != tbreader.KIND else ""),
            *val_scores(p),
            f"elapsed {format_duration(p.elapsed(running=watched.running))}",
            # the phase's own ETA ("features", "stage 2", "test set"), as the CLI's bars show it
            f"{what} ETA {format_duration(eta)}".strip() if watched.running and what else "",
        ]
        if p.trainable_params:
            stats.append(f"{p.trainable_params / 1e6:.2f}M trainable")
        return wrap_items([s for s in stats if s], self.wrap_width)


class RunTelemetry(WatchedStatic):
    """The latest telemetry sample as one line, and the input-pipeline hint when it applies; hidden without any."""

    def watch_watched(self, watched: WatchedRun | None) -> None:
        self.display = bool(watched and watched.progress.telemetry)
        if self.display:
            super().watch_watched(watched)

    def text(self, watched: WatchedRun | None) -> Text:
        assert watched is not None
        samples = watched.progress.telemetry
        text = Text(wrap_items(telemetry.telemetry_items(samples[-1]), self.wrap_width, " · "), style="dim")  # never cut mid-figure
        rates = [r for e in watched.progress.epochs if (r := e.get("images_per_sec")) is not None]
        hint = telemetry.input_bound_hint(samples, rates) if watched.running else None
        if hint:
            text.append(f"\n⚠ {hint}", style="bold yellow")
        return text


class EndBanner(WatchedStatic):
    """How an ended run ended and where its results are; shown while the run is finished, stopped or killed."""

    def watch_watched(self, watched: WatchedRun | None) -> None:
        self.display = watched is not None and watched.state in ENDED
        if self.display:
            super().watch_watched(watched)
            self.set_class(watched is not None and watched.state != "finished", "-bad")

    def text(self, watched: WatchedRun | None) -> str:
        assert watched is not None
        return end_banner(watched.state, watched.progress, watched.run_dir)


class RunBars(Grid):
    """Two labelled bars: the epoch's batches, and the run (its epochs, or feature extraction before them, or
    the test set after); a TensorBoard run has no batches and no planned total, only its step and count."""

    watched: reactive[WatchedRun | None] = reactive(None)

    def compose(self) -> ComposeResult:
        yield Label("Epoch", id="epoch-label", classes="progress-label")
        yield ProgressBar(id="epoch-progress", show_eta=False)
        yield Label("Run", id="run-label", classes="progress-label")
        yield ProgressBar(id="run-progress", show_eta=False)

    def watch_watched(self, watched: WatchedRun | None) -> None:
        if watched is None or not self.is_mounted:
            return
        p = watched.progress
        epoch_bar = self.query_one("#epoch-progress", ProgressBar)
        run_bar = self.query_one("#run-progress", ProgressBar)
        epoch_label = self.query_one("#epoch-label", Label)
        run_label = self.query_one("#run-label", Label)
        tensorboard = watched.kind == tbreader.KIND
        for bar in (epoch_bar, run_bar):
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
        label, done, total = run_bar_figures(p)
        run_label.update(label)
        run_bar.update(total=total, progress=done)


def run_bar_figures(p: RunProgress) -> tuple[str, int, int]:
    """The run bar's label, progress and total: feature extraction before training, the test set after it,
    the epochs in between."""
    if p.phase in ("load_data", "extract_features") and not p.epochs and p.extract_total:
        return "Features", min(p.extract_done or 0, p.extract_total), p.extract_total
    if p.phase == "evaluate" and p.end is None and p.test_total:
        return "Test set", min(p.test_done or 0, p.test_total), p.test_total
    if p.epochs_total:
        return f"Run {p.epochs_done}/{p.epochs_total} ep", min(p.epochs_done, p.epochs_total), p.epochs_total
    return "Run", 0, 1


def val_scores(progress: RunProgress) -> list[str]:
    """Validation accuracy and its best; for a run without accuracy (RunLogger), its own metric's last value."""
    last = progress.last_epoch or {}
    metric = progress.main_metric
    logged = progress.logged_metrics
    if metric in (None, "accuracy") and ("val_accuracy" in logged or not logged):
        return [f"val acc {format_pct(last.get('val_accuracy'))}", f"best {format_pct(progress.best_val_accuracy)}"]
    if f"val_{metric}" not in logged and "val_loss" in logged:  # no validation twin: its val loss
        return [f"val loss {fmt(last.get('val_loss'), '.4f')}"]
    return [f"val {metric} {fmt(last.get(f'val_{metric}'), '.4f')}"]


def keras_run_info(cfg: dict[str, Any]) -> list[str]:
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
