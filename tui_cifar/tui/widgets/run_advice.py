"""What the training screen says about a run as it goes: overfitting, early stopping, the kept epoch, memory."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from ...formatting import format_pct, wrap_items
from ...runs import diagnostics
from ...runs.reader import RunProgress
from .run_header import WatchedRun

ALERT_TITLES = {"nonfinite": "Diverged", "diverging": "Diverging", "plateau": "Plateau", "overfitting": "Overfitting"}


def run_alerts(progress: RunProgress) -> list[diagnostics.Alert]:
    """The alert rules that hold at the run's latest records (diagnostics.alerts)."""
    batches = [progress.last_batch] if progress.last_batch else []
    return diagnostics.alerts(progress.epochs, progress.config or {}, batches)


def advice_text(progress: RunProgress, running: bool, signal: diagnostics.Overfitting | None,
                alerts: Sequence[diagnostics.Alert] = (), width: int = 10_000) -> Text:
    """Lines for the advice panel (``signal``: diagnostics.overfitting's; ``alerts``: the other rules that hold),
    the figures' line broken only between figures to fit ``width``."""
    epochs = progress.epochs
    config = progress.config or {}
    text = Text()
    for alert in alerts:
        if alert.rule != "overfitting":
            text.append(f"⚠ {ALERT_TITLES.get(alert.rule, alert.rule)}: ", style="bold red")
            text.append(f"{alert.line}\n")
    if signal is not None:
        text.append("⚠ Overfitting: ", style="bold yellow")
        text.append(f"{signal.why} {signal.advice}\n")
    patience = config.get("patience")
    stop = diagnostics.early_stopping(epochs, patience) if isinstance(patience, int) else None
    bits = []
    if stop is not None and running:
        # Keras' EarlyStopping ends the stage after `patience` epochs without a new best val accuracy
        bits.append(f"early stop in {stop.left}/{stop.patience} epochs without a new best")
    kept = diagnostics.kept_epoch(epochs, config)
    if kept is not None:
        stage, epoch = kept
        bits.append(f"kept: stage {stage} epoch {epoch}, val {format_pct(progress.best_val_accuracy)} "
                    "(green line)")
    memory = diagnostics.format_memory((progress.last_epoch or {}).get("memory"))
    if memory and not progress.telemetry:  # the telemetry line has the memory, fresher
        bits.append(f"memory {memory}")
    text.append(wrap_items(bits, width))
    return text


class RunAdvice(Static):
    """The advice line(s) of the training screen; ``signal`` is the overfitting signal shown, if any."""

    watched: reactive[WatchedRun | None] = reactive(None)
    signal: diagnostics.Overfitting | None = None
    alerts: list[diagnostics.Alert] = []
    _text: Text | None = None  # the advice before fitting it to the panel's lines
    _shown: tuple = ()  # the look the advice was made from: made again for a new epoch or state

    def watch_watched(self, watched: WatchedRun | None) -> None:
        progress = watched.progress if watched else RunProgress()
        running = watched is not None and watched.running
        if (progress, progress.epoch_version, running) != self._shown:
            self._shown = (progress, progress.epoch_version, running)
            self.show(progress, running)

    def show(self, progress: RunProgress, running: bool) -> None:
        self.signal = diagnostics.overfitting(progress.epochs, progress.config or {})
        self.alerts = run_alerts(progress)
        self.set_class(bool(self.alerts), "-overfitting")
        width = self.content_size.width or self.app.size.width - 2
        self._text = advice_text(progress, running, self.signal, self.alerts, width=width)
        self.display = bool(self._text.plain.strip())  # no blank line where there is nothing to say
        self._fit()

    def on_resize(self) -> None:
        self._fit()  # a resize (or the first layout) changes the width and the lines allowed

    def _fit(self) -> None:
        text = self._text
        if text is None:
            return
        width = self.content_size.width or self.app.size.width - 2
        max_height = self.styles.max_height
        limit = int(max_height.value) if max_height is not None and max_height.is_cells else None
        self.update(fit_lines(text, width, limit, self.app.console))


def fit_lines(text: Text, width: int, limit: int | None, console: Console) -> Text:
    """``text`` wrapped to ``width``; past ``limit`` lines (the panel's max-height on a small screen) the
    last line shown ends in "…", so a sentence cut short says so instead of seeming whole (or inverted)."""
    if limit is None or width <= 1:
        return text
    lines = text.wrap(console, width)
    if len(lines) <= limit:
        return text
    kept = list(lines)[:limit]
    for line in kept:
        line.rstrip()
    last = kept[-1]
    last.truncate(width - 1)
    while last.plain.endswith((" ", "·")):  # no separator left dangling before the ellipsis
        last.right_crop(1)
    last.append("…")
    return Text("\n").join(kept)
