"""What a run's epoch records say about it, for a student watching it: overfitting, early stopping, the kept epoch.

Pure Python on runreader's epoch records (dicts with stage, epoch, loss, val_loss,
accuracy, val_accuracy): the app's training screen and the CLI's plain progress lines
show the same judgement, and tests feed it recorded logs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .runreader import record_number

# Validation loss above its lowest for this many epochs (and measurably so) while the training
# loss keeps falling is overfitting. Judged against the minimum, not epoch to epoch, so that one
# noisy epoch neither raises nor clears the signal.
RISING_EPOCHS = 3
RISE_TOLERANCE = 0.02  # relative: val loss must be 2% above its lowest
# Training accuracy this far above validation accuracy and widening over 3 epochs is overfitting;
# three times as far for 3 epochs in a row is, even when the gap has stopped growing.
GAP_THRESHOLD = 0.05


def _num(value: Any) -> float | None:
    """Finite figures only: a diverged epoch's NaN says nothing about overfitting."""
    return record_number(value, finite=True)


@dataclass(frozen=True)
class Overfitting:
    """An overfitting signal: at which epoch record, one line of why, one of what to try."""

    stage: int
    epoch: int
    why: str
    advice: str


def _advice(config: dict[str, Any]) -> str:
    dropout, blocks = config.get("dropout"), config.get("fine_tune_blocks")
    tries = [f"more dropout (now {dropout:g})" if isinstance(dropout, (int, float)) else "more dropout",
             "fewer epochs"]
    if blocks != 0:
        tries.append(f"fewer fine-tune blocks (now {blocks})" if blocks is not None else "fewer fine-tune blocks")
    return "Try " + ", ".join(tries[:-1]) + " or " + tries[-1] + "."


def overfitting(epochs: list[dict[str, Any]], config: dict[str, Any] | None = None,
                rising: int = RISING_EPOCHS, gap: float = GAP_THRESHOLD) -> Overfitting | None:
    """The overfitting signal at the latest epoch, or None.

    Looks within the latest stage only: fine-tuning starts from other weights, so its
    curves do not continue stage 1's.
    """
    if not epochs:
        return None
    stage = int(epochs[-1].get("stage", 1))
    recs = [r for r in epochs if int(r.get("stage", 1)) == stage]
    epoch = int(recs[-1].get("epoch", 0))
    advice = _advice(config or {})
    losses = [(_num(r.get("val_loss")), _num(r.get("loss"))) for r in recs]
    points = [(v, t) for v, t in losses if v is not None and t is not None]
    if points:
        low = min(range(len(points)), key=lambda i: points[i][0])
        (low_val, low_train), (val, train) = points[low], points[-1]
        if len(points) - 1 - low >= rising and val > low_val * (1 + RISE_TOLERANCE) and train < low_train:
            return Overfitting(stage, epoch,
                               f"val loss up from {low_val:.3f} to {val:.3f} over {len(points) - 1 - low} epochs "
                               "while train loss falls: it learns the training images, not the classes.", advice)
    accuracies = [(_num(r.get("accuracy")), _num(r.get("val_accuracy"))) for r in recs[-3:]]
    gaps = [a - v for a, v in accuracies if a is not None and v is not None]
    if len(gaps) == 3 and min(gaps) > 3 * gap:
        return Overfitting(stage, epoch, f"train accuracy {100 * gaps[-1]:.1f} points above val: "
                                         "it memorises the training images.", advice)
    if len(gaps) == 3 and gaps[-1] > gap and gaps[-1] > gaps[0]:
        return Overfitting(stage, epoch, f"train accuracy {100 * gaps[-1]:.1f} points above val, and the gap widens: "
                                         "it memorises the training images.", advice)
    return None


@dataclass(frozen=True)
class EarlyStopping:
    """Keras EarlyStopping's count in the latest stage: it watches val_accuracy and stops after ``patience`` epochs
    without a new best."""

    stage: int
    best_epoch: int
    waited: int
    patience: int

    @property
    def left(self) -> int:
        return max(0, self.patience - self.waited)


def early_stopping(epochs: list[dict[str, Any]], patience: int) -> EarlyStopping | None:
    """Where early stopping stands after the latest epoch (each stage counts afresh), or None before one."""
    if not epochs:
        return None
    stage = int(epochs[-1].get("stage", 1))
    best, best_epoch, waited = -math.inf, 0, 0
    for rec in epochs:
        if int(rec.get("stage", 1)) != stage:
            continue
        acc = _num(rec.get("val_accuracy"))
        if acc is not None and acc > best:
            best, best_epoch, waited = acc, int(rec.get("epoch", 0)), 0
        else:
            waited += 1
    return EarlyStopping(stage, best_epoch, waited, patience)


def kept_epoch(epochs: list[dict[str, Any]]) -> tuple[int, int] | None:
    """(stage, epoch) whose weights the run keeps: the first best val_accuracy over all stages
    (the trainer's BestCheckpoint skips epochs whose loss is not finite)."""
    best, kept = -math.inf, None
    for rec in epochs:
        acc = _num(rec.get("val_accuracy"))
        loss = rec.get("loss")
        if isinstance(loss, (int, float)) and not math.isfinite(loss):
            continue
        if acc is not None and acc > best:
            best, kept = acc, (int(rec.get("stage", 1)), int(rec.get("epoch", 0)))
    return kept


def format_memory(memory: Any) -> str:
    """An epoch record's ``memory`` ({"rss", "rss_peak", "gpu": {name: {"current", "peak"}}}) as one line; "" if absent."""
    if not isinstance(memory, dict):
        return ""

    def mib(value: Any) -> str:
        n = _num(value)
        return "–" if n is None else (f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB")

    parts = []
    gpu = memory.get("gpu")
    if isinstance(gpu, dict):
        for name, use in sorted(gpu.items()):
            if isinstance(use, dict):
                parts.append(f"{name} {mib(use.get('current'))} (peak {mib(use.get('peak'))})")
    if _num(memory.get("rss")) is not None:
        parts.append(f"RAM {mib(memory.get('rss'))} (peak {mib(memory.get('rss_peak'))})")
    return ", ".join(parts)
