"""What the training screen says about a run as it goes: overfitting, early stopping, the kept epoch, memory."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ... import diagnostics
from ...formatting import format_pct
from ...runreader import RunProgress


def advice_text(progress: RunProgress, running: bool, signal: diagnostics.Overfitting | None) -> Text:
    """Lines for the advice panel (``signal``: diagnostics.overfitting's); empty before the first epoch."""
    epochs = progress.epochs
    config = progress.config or {}
    text = Text()
    if signal is not None:
        text.append("⚠ Overfitting: ", style="bold yellow")
        text.append(f"{signal.why} {signal.advice}\n")
    patience = config.get("patience")
    stop = diagnostics.early_stopping(epochs, patience) if isinstance(patience, int) else None
    bits = []
    if stop is not None and running:
        # Keras' EarlyStopping ends the stage after `patience` epochs without a new best val accuracy
        bits.append(f"early stop in {stop.left}/{stop.patience} epochs without a new best")
    kept = diagnostics.kept_epoch(epochs)
    if kept is not None:
        stage, epoch = kept
        bits.append(f"kept: stage {stage} epoch {epoch}, val {format_pct(progress.best_val_accuracy)} "
                    "(green line)")
    memory = diagnostics.format_memory((progress.last_epoch or {}).get("memory"))
    if memory:
        bits.append(f"memory {memory}")
    text.append("  ·  ".join(bits))
    return text


class RunAdvice(Static):
    """The advice line(s) of the training screen; ``signal`` is the overfitting signal shown, if any."""

    signal: diagnostics.Overfitting | None = None

    def show(self, progress: RunProgress, running: bool) -> None:
        self.signal = diagnostics.overfitting(progress.epochs, progress.config or {})
        self.set_class(self.signal is not None, "-overfitting")
        self.update(advice_text(progress, running, self.signal))
