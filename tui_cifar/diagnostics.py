"""What a run's epoch records say about it, for a student watching it: overfitting, early stopping, the kept epoch.

Pure Python on runreader's epoch records (dicts with stage, epoch, loss, val_loss,
accuracy, val_accuracy), so the app and the CLI read the same judgement and tests
can feed it a recorded log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Validation loss rising this many epochs in a row while the training loss falls is overfitting.
RISING_EPOCHS = 3
# Training accuracy this far above validation accuracy, and growing, is overfitting too.
GAP_THRESHOLD = 0.05


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


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
             "fewer epochs (early stopping keeps the best epoch anyway)"]
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
    last = recs[-1]
    window = recs[-(rising + 1):]
    val = [_num(r.get("val_loss")) for r in window]
    train = [_num(r.get("loss")) for r in window]
    advice = _advice(config or {})
    if len(window) == rising + 1 and None not in val and None not in train:
        if all(b > a for a, b in zip(val, val[1:])) and train[-1] < train[0]:
            return Overfitting(stage, int(last.get("epoch", 0)),
                               f"validation loss has risen {rising} epochs in a row "
                               f"({val[0]:.3f} → {val[-1]:.3f}) while training loss fell: "
                               "the model is learning the training images, not the classes.", advice)
    gaps = [(_num(r.get("accuracy")), _num(r.get("val_accuracy"))) for r in recs[-3:]]
    gaps = [a - v for a, v in gaps if a is not None and v is not None]
    if len(gaps) >= 2 and gaps[-1] > gap and gaps[-1] > gaps[0]:
        return Overfitting(stage, int(last.get("epoch", 0)),
                           f"training accuracy is {100 * gaps[-1]:.1f} points above validation accuracy "
                           "and the gap keeps widening: the model memorises the training images.", advice)
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
