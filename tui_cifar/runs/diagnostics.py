"""What a run's epoch records say about it, for a student watching it: overfitting, early stopping, the kept epoch.

Pure Python on runs.reader's epoch records (dicts with stage, epoch, loss, val_loss,
accuracy, val_accuracy): the app's training screen and the CLI's plain progress lines
show the same judgement, and tests feed it recorded logs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .reader import record_number

# Validation loss above its lowest for this many epochs (and measurably so) while the training
# loss keeps falling is overfitting. Judged against the minimum, not epoch to epoch, so that one
# noisy epoch neither raises nor clears the signal.
RISING_EPOCHS = 3
RISE_TOLERANCE = 0.02  # relative: val loss must be 2% above its lowest
# ... and up by this share of the stage's first val loss: the curve's own scale, so that a loss trained to
# 0.000 is not "up" at 0.001, while a regression whose losses are all 1e-4 is still judged.
SCALE_TOLERANCE = 0.01
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


def _foreign(config: dict[str, Any]) -> bool:
    """A run of someone's own model (RunLogger or TensorBoard): no cifar-tui settings to advise on."""
    return str(config.get("kind") or "cifar-tui") != "cifar-tui"


def _advice(config: dict[str, Any]) -> str:
    if _foreign(config):
        return ("Try more regularisation (dropout, weight decay), data augmentation, or fewer epochs "
                "(EarlyStopping with restore_best_weights=True).")
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
        scale = abs(points[0][0]) * SCALE_TOLERANCE
        if (len(points) - 1 - low >= rising and val > low_val * (1 + RISE_TOLERANCE) and val - low_val > scale
                and train < low_train):
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


# ---------------------------------------------------------------------------- alerts on any run

PLATEAU_EPOCHS = 5  # epochs without a new best validation loss
PLATEAU_TOLERANCE = 0.01  # a new best must beat the old by 1% of it, or it is noise
DIVERGE_EPOCHS = 2  # training loss up this many epochs in a row ...
DIVERGE_FACTOR = 1.5  # ... to this multiple of its lowest


@dataclass(frozen=True)
class Alert:
    """A rule that fired on a run: which, where, one line of why and one of what to try."""

    rule: str  # "nonfinite", "diverging", "plateau", "overfitting"
    stage: int
    epoch: int
    why: str
    advice: str

    @property
    def line(self) -> str:
        return f"{self.why} {self.advice}"


def _lr_advice(config: dict[str, Any], stage: int) -> str:
    if _foreign(config):
        return "Lower the learning rate (by 3-10x), or clip gradients (clipnorm=1.0); check the inputs for NaN."
    key = "lr_fine" if stage == 2 else "lr_head"
    lr = config.get(key)
    now = f" (--{key.replace('_', '-')} now {lr:g})" if isinstance(lr, (int, float)) else ""
    return f"Lower the learning rate{now} by 3-10x, or resume from the kept epoch with a lower one."


def _plateau_advice(config: dict[str, Any]) -> str:
    if _foreign(config):
        # the verdict first: a line cut short on a small screen must never lose its "not"
        return "More epochs will not help: stop, or lower the learning rate when it stalls (ReduceLROnPlateau)."
    return "More epochs will not help: stop it (s), or train again with fewer epochs or a lower learning rate."


def alerts(epochs: list[dict[str, Any]], config: dict[str, Any] | None = None,
           batches: Sequence[dict[str, Any]] = ()) -> list[Alert]:
    """The rules that hold at the latest epoch (and batch) of a run, of any kind; each judged in the latest stage.

    NaN or infinite loss; the training loss diverging; validation loss on a plateau; the onset of
    overfitting (``overfitting``'s thresholds). Run on every new record: the app and ``watch --alerts``
    report a rule once, when it starts to hold.
    """
    config = config or {}
    found: list[Alert] = []
    last_batch = batches[-1] if batches else None
    latest = epochs[-1] if epochs else last_batch
    if latest is not None:
        stage, epoch = int(latest.get("stage", 1)), int(latest.get("epoch", 0))
        recs = [r for r in epochs if int(r.get("stage", 1)) == stage]
        for rec, where in ((last_batch, "batch"), (recs[-1] if recs else None, "epoch")):
            if rec is None:
                continue
            for key in ("loss", "val_loss"):
                value = record_number(rec.get(key))
                if value is not None and not math.isfinite(value):
                    found.append(Alert("nonfinite", stage, int(rec.get("epoch", epoch)),
                                       f"{key} is {value} at {where} {rec.get('batch', rec.get('epoch'))}: "
                                       "training diverged.", _lr_advice(config, stage)))
                    break
            if found:
                break
        losses = [v for r in recs if (v := _num(r.get("loss"))) is not None]
        if len(losses) > DIVERGE_EPOCHS and not found:
            tail = losses[-(DIVERGE_EPOCHS + 1):]
            low = min(losses)
            if all(b > a for a, b in zip(tail, tail[1:])) and tail[-1] > DIVERGE_FACTOR * low and tail[-1] - low > abs(losses[0]) * SCALE_TOLERANCE:
                found.append(Alert("diverging", stage, epoch,
                                   f"train loss up from {low:.4g} to {tail[-1]:.4g}: training is diverging.",
                                   _lr_advice(config, stage)))
        vals = [v for r in recs if (v := _num(r.get("val_loss"))) is not None]
        if len(vals) > PLATEAU_EPOCHS:
            best_before = min(vals[:-PLATEAU_EPOCHS])
            recent = min(vals[-PLATEAU_EPOCHS:])
            if recent > best_before - PLATEAU_TOLERANCE * abs(best_before):
                found.append(Alert("plateau", stage, epoch,
                                   f"val loss no better than {best_before:.4g} for {PLATEAU_EPOCHS} epochs: a plateau.",
                                   _plateau_advice(config)))
    signal = overfitting(epochs, config)
    if signal is not None:
        found.append(Alert("overfitting", signal.stage, signal.epoch, signal.why, signal.advice))
    return found


class AlertWatch:
    """Feeds a run's records and gives each alert once, when its rule starts to hold (again after it cleared)."""

    def __init__(self) -> None:
        self.active: set[tuple[str, int]] = set()

    def new_alerts(self, epochs: list[dict[str, Any]], config: dict[str, Any] | None = None,
                   batches: Sequence[dict[str, Any]] = ()) -> list[Alert]:
        now = alerts(epochs, config, batches)
        keys = {(a.rule, a.stage) for a in now}
        fresh = [a for a in now if (a.rule, a.stage) not in self.active]
        self.active = keys
        return fresh


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


def kept_epoch(epochs: list[dict[str, Any]], config: dict[str, Any] | None = None) -> tuple[int, int] | None:
    """(stage, epoch) whose weights the run keeps: the first best val_accuracy over all stages
    (the trainer's BestCheckpoint skips epochs whose loss is not finite). None for a run of someone's own
    model (its ``config``'s kind: RunLogger, TensorBoard): what its script keeps is not known here."""
    if config is not None and _foreign(config):
        return None
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
