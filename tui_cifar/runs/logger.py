"""RunLogger: record anyone's ``model.fit`` as a cifar-tui run, to watch it live and export it.

    model.fit(x, y, batch_size=64, epochs=10, validation_split=0.1, callbacks=[RunLogger("runs", batch_size=64)])

writes the run folder the trainer writes (see store): config.json with what Keras
shows of the run (marked "kind": "keras"), status.json with this process's pid, and
metrics.jsonl with a record every few batches and one per epoch, carrying every
metric the model logs. `cifar-tui runs`, `cifar-tui watch RUN` and the app read it
from another terminal while it trains. One run folder per ``fit`` call.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import keras

from ..engine import telemetry
from ..engine.callbacks import RecordingCallback, learning_rate
from ..files import atomic_write_json
from . import records, store


class RunLogger(RecordingCallback):
    """Streams a ``model.fit`` into a new run folder, to watch it live and export it.

    One run folder per ``fit`` call. The run ends as "finished", "stopped" (Ctrl-C or
    SIGTERM, which end the script as usual, or the app's stop, after which ``fit``
    returns) or "failed" (an exception that ends the script). Every metric the model
    logs is recorded under its own name.

    Args:
        runs_dir: the runs folder the new run folder goes in (made when missing).
        name: the run folder's name after its time stamp; default: the model's name.
        hparams: any dict of your own settings, kept in config.json and exported as
            TensorBoard hyperparameters.
        batch_size: images per batch, for images/s and config.json's batch_size.
            Keras does not tell callbacks (its own TensorBoard callback counts steps):
            pass the ``batch_size`` you give ``fit`` (Keras' default for arrays is 32),
            or your dataset's; None records no images/s.
        batch_records: batch records per epoch, at most.
        telemetry_interval: seconds between samples of CPU, memory and GPU use (telemetry records).

    Example:

    ```python
    model.fit(x, y, batch_size=64, epochs=10, validation_split=0.1,
              callbacks=[RunLogger("runs", hparams={"dropout": 0.2}, batch_size=64)])
    ```

    Then ``cifar-tui runs``, ``cifar-tui watch RUN`` or the app follow it from another terminal.
    """

    def __init__(self, runs_dir: str | os.PathLike = "runs", name: str | None = None,
                 hparams: dict[str, Any] | None = None, batch_size: int | None = None, batch_records: int = 40,
                 telemetry_interval: float = telemetry.DEFAULT_INTERVAL):
        super().__init__(stage=1, batch_size=batch_size, batch_records=batch_records)
        self.runs_dir = Path(runs_dir)
        self.name = name
        self.hparams = dict(hparams or {})
        self.telemetry_interval = telemetry_interval  # seconds between CPU/memory/GPU samples (tui_cifar.engine.telemetry)
        self.run_dir: Path | None = None
        self._open = False
        self._stop_requested = False
        self._previous_handlers: dict[int, Any] = {}
        self._previous_excepthook: Any = None  # sys.excepthook's type, or None before fit

    # ------------------------------------------------------------------ Keras hooks
    def on_train_begin(self, logs=None):
        self.steps = self.epochs = None  # this fit's, not an earlier one's
        super().on_train_begin(logs)
        self.run_dir = store.create_run_dir(self.runs_dir, self.name or self.model.name)
        self._lock = store.RunLock.acquire(self.run_dir)  # "running" while this process holds it
        self._lock.record(os.getpid())
        config = self._config()
        atomic_write_json(self.run_dir / store.CONFIG_FILE, config)
        store.write_status(self.run_dir, "running", f"training {self.model.name}", stage=1)
        self._writer = store.MetricsWriter(self.run_dir)
        # CPU, memory and GPU use every few seconds, between the records fit writes
        self._writer.listeners.append(telemetry.listener(
            self._writer.write, telemetry.Sampler(interval=self.telemetry_interval), clock=self._clock))
        self._started = time.perf_counter()
        self._open = True
        self._stop_requested = False
        self._epochs_done = 0
        self._install_hooks()
        self.write(records.run_start_record(config, _device(), os.getpid()))
        self.write(records.phase_record("train", f"training {self.model.name}"))
        self.write(records.stage_start_record(1, self.epochs, self.steps, learning_rate(self.model),
                                              config["trainable_params"]))

    def on_train_batch_end(self, batch, logs=None):
        if (self.run_dir / store.STOP_FILE).exists():  # the app's stop, from any host sharing the folder
            self._stop_requested = True
            self.model.stop_training = True
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._epochs_done += 1
        super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        if self._open:
            self._writer.close()  # _finish writes the end through its own handle
        if self._stop_requested:
            self._finish("stopped", "stopped by a stop request")
        else:
            self._finish("finished", f"{self._epochs_done} epochs done")

    # ------------------------------------------------------------------ the record
    def _clock(self) -> float:
        return round(time.perf_counter() - self._started, 2)

    def write(self, record: records.Record) -> None:
        if self._open:
            record.setdefault("wall_time", self._clock())
            self._writer.write(record)

    def _config(self) -> dict[str, Any]:
        model = self.model
        optimizer = getattr(model, "optimizer", None)
        return _jsonable({
            "kind": store.KERAS_KIND,
            "model": model.name,
            # Its class first: Keras names instances adam, adam_1... in the order a process makes them.
            "optimizer": {"class": type(optimizer).__name__, **optimizer.get_config()} if optimizer is not None else None,
            "loss": _name_of(getattr(model, "loss", None)),
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps,
            "total_params": model.count_params(),
            "trainable_params": sum(math.prod(w.shape) for w in model.trainable_weights),
            "hparams": self.hparams,
            "script": " ".join(sys.argv),
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
        })

    def _finish(self, state: records.RunState, message: str) -> None:
        """Write the run's end once. Its own log handle: a signal may have interrupted a write on the other."""
        if not self._open or self.run_dir is None:
            return
        self._open = False
        self._remove_hooks()
        writer = store.MetricsWriter(self.run_dir)
        try:
            writer.write(records.run_end_record(state, message, self._clock()))
        finally:
            writer.close()
            (self.run_dir / store.STOP_FILE).unlink(missing_ok=True)  # answered, or too late: as the trainer does
            store.write_status(self.run_dir, state, message)
            self._lock.release()

    # ------------------------------------------------------------------ ends Keras does not report
    def _install_hooks(self) -> None:
        """Catch the ends fit() does not tell callbacks about: signals, an uncaught exception, exit.

        Each hook records the end, then does what was there before (KeyboardInterrupt,
        termination, the traceback), so the script behaves as it would without RunLogger.
        """
        if threading.current_thread() is threading.main_thread():
            for sig, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
                if signal.getsignal(sig) is default:  # a script's own handler is left alone
                    self._previous_handlers[sig] = signal.signal(sig, self._on_signal)
        self._previous_excepthook = sys.excepthook
        sys.excepthook = self._excepthook
        atexit.register(self._at_exit)

    def _remove_hooks(self) -> None:
        for sig, previous in self._previous_handlers.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, previous)
        self._previous_handlers = {}
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._previous_excepthook
        atexit.unregister(self._at_exit)

    def _on_signal(self, signum, frame) -> None:
        previous = self._previous_handlers.get(signum)
        self._finish("stopped", f"stopped by {signal.Signals(signum).name}")
        if previous is signal.SIG_DFL:
            os.kill(os.getpid(), signum)  # the default handler is back: the process ends as it would have
        elif callable(previous):
            previous(signum, frame)  # default_int_handler: KeyboardInterrupt

    def _excepthook(self, exc_type, exc, tb) -> None:
        previous = self._previous_excepthook
        if issubclass(exc_type, KeyboardInterrupt):
            self._finish("stopped", "stopped by KeyboardInterrupt")
        else:
            try:
                if self.run_dir is not None:
                    (self.run_dir / store.ERROR_FILE).write_text("".join(traceback.format_exception(exc_type, exc, tb)))
            except OSError:
                pass
            self._finish("failed", f"{exc_type.__name__}: {exc}")
        (previous or sys.__excepthook__)(exc_type, exc, tb)

    def _at_exit(self) -> None:
        self._finish("failed", "the script ended while model.fit was running (an exception it caught?)")


def _name_of(obj: Any) -> Any:
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, dict):
        return {k: _name_of(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_name_of(v) for v in obj]
    return getattr(obj, "name", None) or getattr(obj, "__name__", None) or type(obj).__name__


def _jsonable(data: Any) -> Any:
    """Config values as JSON: numpy scalars as numbers, anything else Keras holds as its text."""
    def default(obj):
        return obj.item() if hasattr(obj, "item") else str(obj)

    return json.loads(json.dumps(data, default=default))


def _device() -> str:
    tf = sys.modules.get("tensorflow")
    gpus = tf.config.list_physical_devices("GPU") if tf is not None else []
    where = f"GPU x{len(gpus)}" if gpus else f"CPU ({os.cpu_count()} cores)"
    return f"{where}, Keras {keras.__version__} on {keras.backend.backend()}"
