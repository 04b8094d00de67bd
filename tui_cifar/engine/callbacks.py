"""Keras callbacks that stream a run into its folder and stop it cleanly."""

from __future__ import annotations

import errno
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import keras

from ..files import atomic_write, atomic_write_json, read_json
from ..runs import records
from ..runs.store import MetricsWriter
from .resources import resource_usage


def current_lr(optimizer) -> float:
    lr = optimizer.learning_rate
    if callable(lr):
        lr = lr(optimizer.iterations)
    return float(keras.ops.convert_to_numpy(lr))


class StopRequest:
    """Set by SIGINT/SIGTERM or a STOP file in the run folder; training finishes the current batch, then stops.

    The file works where a signal cannot reach: another host sharing the runs
    folder, or another PID namespace. With ``finish_epoch`` (a sweep's trial, whose pruner and study want
    whole epochs) Ctrl-C lets the current epoch finish; a second one, or SIGTERM, stops after the batch.
    """

    def __init__(self, stop_file: Path | None = None, finish_epoch: bool = False) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None
        self.stop_file = stop_file
        self.finish_epoch = finish_epoch
        self.urgent = threading.Event()  # a second signal while an epoch is being finished

    def install(self) -> None:
        def handler(signum, frame):
            if signum == signal.SIGTERM or self.event.is_set():
                self.urgent.set()
            if self.event.is_set():
                return
            self.signal_name = self._requester() or signal.Signals(signum).name
            self.event.set()
            if self.finish_epoch and not self.urgent.is_set():
                print(f"{self.signal_name}: stopping after this epoch (again: after this batch)", file=sys.stderr,
                      flush=True)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, handler)

    def _requester(self) -> str | None:
        """Who asked, as the STOP file says (launcher.request_stop writes it before its SIGTERM)."""
        if self.stop_file is None:
            return None
        try:
            return self.stop_file.read_text(encoding="utf-8").strip()[:80] or None
        except (OSError, UnicodeDecodeError):
            return None

    @property
    def requested(self) -> bool:
        if not self.event.is_set() and self.stop_file is not None and self.stop_file.exists():
            self.signal_name = self._requester() or "a stop request"
            self.event.set()
        return self.event.is_set()


class RecordingCallback(keras.callbacks.Callback):
    """The metrics log's batch and epoch records of one ``fit``, metric-agnostic like Keras' CSVLogger.

    Every scalar metric in Keras' ``logs`` is recorded under its own name (loss, accuracy, auc…),
    a batch record every ``steps // batch_records`` batches and at each epoch's last batch, an epoch
    record at each epoch's end. Subclasses say where records go (:meth:`write`) and may skip an epoch
    (:meth:`records_epoch`).

    Args:
        stage: the training stage the records belong to (1 for a one-stage ``fit``).
        batch_size: images per batch, for the epoch records' images/s; None when unknown.
        steps: batches per epoch; None: Keras' ``params["steps"]`` at the start of ``fit``.
        epochs: epochs of this ``fit``; None: Keras' ``params["epochs"]``.
        batch_records: batch records per epoch, at most.
    """

    def __init__(self, stage: int = 1, batch_size: int | None = None, steps: int | None = None,
                 epochs: int | None = None, batch_records: int = 40):
        super().__init__()
        self.stage, self.batch_size, self.steps, self.epochs = stage, batch_size, steps, epochs
        self.batch_records = batch_records
        self.every = max(1, steps // batch_records) if steps else 1

    def write(self, record: records.Record) -> None:
        raise NotImplementedError

    def records_epoch(self, epoch: int) -> bool:
        """Whether epoch (0-based) gets a record; the trainer's resumed runs skip the epochs already logged."""
        return True

    def on_train_begin(self, logs=None):
        self.steps = self.steps or self.params.get("steps")
        self.epochs = self.epochs or self.params.get("epochs")
        self.every = max(1, self.steps // self.batch_records) if self.steps else 1

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = time.perf_counter()
        self._batches = self._last_logged = 0

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution > 1 Keras reports only every Nth step, possibly past the epoch's end.
        done = min(batch + 1, self.steps) if self.steps else batch + 1
        self._batches = done
        if done - self._last_logged >= self.every or done == self.steps:
            self._last_logged = done
            self.write(records.batch_record(logged_metrics(logs), self.stage, self._epoch + 1, done, self.steps))

    def on_epoch_end(self, epoch, logs=None):
        if not self.records_epoch(epoch):
            return
        elapsed = time.perf_counter() - self._epoch_start
        images = self._batches * self.batch_size if self.batch_size else None
        self.write(records.epoch_record(
            logged_metrics(logs), self.stage, epoch + 1, self.epochs, learning_rate(self.model),
            round(images / elapsed, 1) if images and elapsed else None, round(elapsed, 2),
            # A stop request ends an epoch early; Keras still closes it (validation, backup).
            partial=bool(self.steps) and self._batches < self.steps, memory=resource_usage(),
        ))


class MetricsLogger(RecordingCallback):
    """The trainer's records of one stage, to its run's metrics.jsonl.

    Epochs already in the log (a resumed run) are not written twice, and an epoch a stop cut short is not
    written at all: a resume trains it again from the last completed epoch.
    """

    def __init__(
        self,
        writer: MetricsWriter,
        stage: int,
        epochs: int,
        steps: int,
        batch_size: int,
        clock: Callable[[], float],
        logged_epochs: Iterable[tuple[int, int]] = (),
        batch_records: int = 40,
    ):
        super().__init__(stage, batch_size, steps, epochs, batch_records)
        self.writer = writer
        self.clock = clock
        self.logged_epochs = set(logged_epochs)

    def write(self, record: records.Record) -> None:
        record["wall_time"] = self.clock()
        self.writer.write(record)

    def records_epoch(self, epoch: int) -> bool:
        # An epoch a stop cut short is trained again on resume (EpochBackup): logged then, once.
        return (self.stage, epoch + 1) not in self.logged_epochs and not (self.steps and self._batches < self.steps)


def metric_value(value: Any) -> float | None:
    """A metric as a plain float; NaN/inf stay as they are (JSON NaN/Infinity) so readers see divergence."""
    return None if value is None else float(value)


def logged_metrics(logs: dict[str, Any] | None) -> dict[str, float | None]:
    """Every scalar metric Keras logged, as plain floats (NaN stays NaN, so divergence shows)."""
    out = {}
    for key, value in (logs or {}).items():
        try:
            out[key] = metric_value(value)
        except (TypeError, ValueError):
            continue  # not a scalar
    return out


def learning_rate(model) -> float | None:
    """The optimizer's learning rate now (a schedule's current value), or None without one."""
    try:
        return current_lr(model.optimizer)
    except (AttributeError, TypeError, ValueError):
        return None


class GracefulStop(keras.callbacks.Callback):
    """Stops after the current batch when asked (a signal or the STOP file), or after the epoch when the request
    says ``finish_epoch``; a NaN loss is TerminateOnNaN's.

    A request made at an epoch's end (a sweep's pruner reading the epoch record) stops before the next epoch.
    ``cut_short`` says the epoch being closed was stopped before its last batch: Keras still validates it and
    calls ``on_epoch_end``, but it is no completed epoch, so the callbacks that keep progress (EpochBackup,
    BestCheckpoint, MetricsLogger) leave it out and a resume trains it again.
    """

    def __init__(self, request: StopRequest):
        super().__init__()
        self.request = request
        self.cut_short = False

    def on_epoch_begin(self, epoch, logs=None):
        self.cut_short = False

    def on_train_batch_end(self, batch, logs=None):
        if self.request.requested and (not self.request.finish_epoch or self.request.urgent.is_set()):
            self.model.stop_training = True
            steps = self.params.get("steps")
            self.cut_short = steps is None or batch + 1 < steps

    def on_epoch_end(self, epoch, logs=None):
        if self.request.requested:
            self.model.stop_training = True


class EpochBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore (weights, optimizer state, epoch) of completed epochs only.

    Keras backs up at every ``on_epoch_end``, which it also calls for an epoch a stop request cut short:
    a resume would then start after that epoch, never finishing it. Skipping that backup resumes from the
    last completed epoch's weights and optimizer state and trains the interrupted epoch again.
    The backup is kept when fit() returns (``delete_checkpoint=False``): the trainer removes it once the
    stage is done.
    """

    def __init__(self, backup_dir: str, stop: GracefulStop):
        super().__init__(backup_dir, delete_checkpoint=False)
        self.stop = stop

    def on_epoch_end(self, epoch, logs=None):
        if not self.stop.cut_short:
            super().on_epoch_end(epoch, logs)


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the best weights by val_accuracy on disk, and the best full model as model.keras.

    Both are written to a temporary file and renamed, so a full disk or a kill never
    leaves a corrupt best model. The score sidecar lets a resumed run keep comparing.
    Writing the full model takes about 0.2 s, longer than a whole stage-1 epoch on
    cached features, so a new best is written at once only when the last write is
    ``min_interval`` seconds old; otherwise it is held in memory and written when the
    next write is due or training ends. A hard kill loses at most that many seconds.
    """

    def __init__(self, trainer_weights: Path, full_model: keras.Model, model_path: Path, score_path: Path,
                 min_interval: float = 0.0, stop: GracefulStop | None = None):
        super().__init__()
        self.stop = stop  # an epoch it cut short is no candidate: a resume trains it again
        self.trainer_weights = Path(trainer_weights)
        self.full_model = full_model
        self.model_path = Path(model_path)
        self.score_path = Path(score_path)
        self.min_interval = min_interval
        self.best = read_best_score(score_path)
        self.pending: tuple[list, int] | None = None  # (weights, epoch) of a best not yet on disk
        self.last_write = -math.inf

    def on_epoch_end(self, epoch, logs=None):
        if self.stop is not None and self.stop.cut_short:
            return
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            return  # a diverged epoch's weights are NaN/inf, whatever its accuracy says
        score = (logs or {}).get("val_accuracy")
        if score is None or not math.isfinite(float(score)) or float(score) <= self.best:
            return
        self.best = float(score)
        if time.monotonic() - self.last_write >= self.min_interval:
            self._write(epoch)
        else:
            self.pending = (self.model.get_weights(), epoch)

    def on_train_end(self, logs=None):
        if self.pending is not None:
            weights, epoch = self.pending
            self.model.set_weights(weights)  # the trainer reloads the best weights after fit() anyway
            self._write(epoch)

    def _write(self, epoch: int) -> None:
        atomic_write(self.trainer_weights, lambda p: self.model.save_weights(p))
        atomic_write(self.model_path, lambda p: self.full_model.save(p))
        atomic_write_json(self.score_path, {"val_accuracy": self.best, "epoch": epoch + 1})
        self.pending = None
        self.last_write = time.monotonic()


class DiskSpaceGuard(keras.callbacks.Callback):
    """Fail the stage with ENOSPC before the epoch's checkpoints are written to a disk that cannot hold them.

    Keras writes weights through h5py, which crashes the whole process (SIGSEGV, seen on a full
    tmpfs) when the disk fills mid-write; an OSError raised here instead ends the run as "failed"
    with its status, log and last good model intact. Goes first in the callback list.
    """

    def __init__(self, folder: Path, needed_bytes: int):
        super().__init__()
        self.folder, self.needed = Path(folder), int(needed_bytes)

    def _check(self) -> None:
        st = os.statvfs(self.folder)
        free = st.f_bavail * st.f_frsize
        if free < self.needed:
            raise OSError(errno.ENOSPC, f"No space left on device (a checkpoint needs about "
                          f"{self.needed / 2**20:.1f} MiB, {free / 2**20:.1f} MiB free)", str(self.folder))

    def on_epoch_end(self, epoch, logs=None):
        self._check()

    def on_train_end(self, logs=None):
        self._check()


def read_best_score(path: Path) -> float:
    """The best val_accuracy a stage reached before (a resumed run keeps comparing), or -inf."""
    data, _ = read_json(path)
    try:
        return float((data or {})["val_accuracy"])
    except (KeyError, ValueError, TypeError):
        return -math.inf
