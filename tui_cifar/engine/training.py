"""Two-stage transfer learning into a run folder.

Stage 1 trains the new head on cached, pooled frozen-backbone features.
Stage 2 unfreezes the top blocks and fine-tunes them at a lower learning rate,
from cached activations at the freeze boundary when they fit in memory, or end
to end from pixels (with pixel-level augmentation) when they do not.
Model selection uses the validation split only; the test set is read once, at
the end, by the evaluation.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ..config import TrainConfig
from ..errors import CifarTuiError
from ..runs import reader, records, store
from ..runs.store import MetricsWriter, write_status
from . import telemetry
from .features import VIEWS

# Boundary activations are cached for stage 2 only while they fit in this many bytes.
ACTIVATION_CACHE_BUDGET = int(os.environ.get("CIFAR_TUI_CACHE_BUDGET", 6 * 2**30))


# Stage 1 steps are tiny (a dense layer on cached features): running 16 per call to the
# compiled function instead of 1 cut an epoch from ~0.6 s to ~0.4 s on a 2-core CPU.
HEAD_STEPS_PER_EXECUTION = 16

# A new best model is written at once only if the last write is this many seconds old (see BestCheckpoint):
# stage-1 epochs take ~0.15 s and a full-model write ~0.2 s.
CHECKPOINT_INTERVAL = 10.0

# Small batches ran the frozen backbone about 5% faster per image than 128-256 on a 2-core CPU.
# Per replica: with several devices each gets this many images of every batch.
EXTRACT_BATCH = 64
# Stage 2's cached activations up to this size are copied into one tensor and fed by tf.data (see view_batches);
# larger ones are read in place. The tensor replaces the arrays, which are freed once it is built.
TENSOR_FEED_BUDGET = int(os.environ.get("CIFAR_TUI_TENSOR_FEED_BUDGET", 2**31))


class TrainingDiverged(CifarTuiError):
    pass


def train_run(
    config: TrainConfig,
    run_dir: Path,
    resume: bool = False,
    listeners: list[Callable[[dict[str, Any]], None]] | None = None,
    test_report: bool = True,
    finish_epoch: bool = False,
) -> str:
    """Train into run_dir (made by launcher.create_run, which wrote its config.json) and return the final state.

    The state is finished, stopped or failed. SIGINT and SIGTERM stop the run after its current batch.
    ``test_report=False`` (a sweep's trial, chosen on validation only) finishes without reading the test set;
    `cifar-tui evaluate RUN` writes the report later. ``finish_epoch`` (a sweep's trial): a signal lets the epoch
    running finish first, a second one stops after the batch.
    """
    from .callbacks import StopRequest

    run_dir = Path(run_dir)
    # a STOP file here is this run's: kept while the process started (launcher.keep_stop_signals); an older one
    # was removed by the resume (launcher.lock_for_resume)
    stop = StopRequest(run_dir / store.STOP_FILE, finish_epoch=finish_epoch)
    if resume:
        store.remove_stale_temporaries(run_dir)  # left by a process killed mid-save (its lock is ours now)
    stop.install()
    writer = MetricsWriter(run_dir, listeners)
    started = time.perf_counter()
    previous, _ = store.read_metrics(run_dir) if resume else ([], [])
    previous_wall = reader.last_wall_time(previous) or 0.0

    def clock() -> float:
        return round(previous_wall + time.perf_counter() - started, 2)

    writer.listeners.append(telemetry.listener(writer.write, clock=clock))  # CPU, memory, GPU use every few seconds

    state: records.RunState
    try:
        write_status(run_dir, "running", "resuming" if resume else "starting")
        trainer = _Trainer(config, run_dir, writer, stop, clock, resume, previous)
        state, message = trainer.run(test_report)
    except InterruptedError:  # a stop request during feature extraction
        state, message = "stopped", f"stopped by {stop.signal_name} before training started"
    except Exception as exc:  # the run folder must say why it ended
        state, message = "failed", _explain(exc, run_dir)
        try:  # whole or absent (atomic): never an empty error.txt on a full disk
            store.atomic_write_text(run_dir / store.ERROR_FILE, traceback.format_exc())
        except OSError:
            pass  # the status below says why, if anything can be written
    end = records.run_end_record(state, message, clock())
    end["test_accuracy"] = _test_accuracy(run_dir)
    # The end is told however full the disk is: to the listeners (the CLI's last line), the log, the status.
    for write in (lambda: writer.write(end), lambda: (run_dir / store.STOP_FILE).unlink(missing_ok=True),
                  lambda: write_status(run_dir, state, message)):
        try:
            write()
        except OSError:
            pass  # a full or read-only disk: what could be written is; the run's lock ends with this process
    writer.close()
    return state


def _explain(exc: Exception, run_dir: Path) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        kept = ("the last good model was kept" if (run_dir / store.MODEL_FILE).is_file()
                else "no model had been saved yet")
        return f"disk full while writing {exc.filename or 'the run folder'}; {kept}"
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES):
        return f"cannot write {exc.filename or 'the run folder'}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def _test_accuracy(run_dir: Path) -> float | None:
    report, _ = store.read_report(run_dir)
    return (report or {}).get("test_accuracy")


def view_batches(views: list[np.ndarray], labels: np.ndarray, batch_size: int, seed: int, in_place: bool):
    """Training batches from cached views of every sample (original, mirrored): each epoch a new
    order, and for each sample one view drawn at random.

    Two ways to that one sampling, chosen by measurement:

    - ``in_place=False``: the views go into one float16 tensor and tf.data gathers the batches (and
      casts them to float32 in the graph). Stage 1's pooled features (45,000 images x 2 views x
      1,280 float16 = 230 MB): an epoch took ~0.26 s, against ~0.4-0.6 s through a PyDataset, whose
      per-batch Python cost dominates when a step is one dense layer. Stage 2's boundary activations
      when they fit in TENSOR_FEED_BUDGET (360 MB at the default 160 px, 3 blocks; 720 MB mirrored too): fed so, its
      training steps ran at least as fast as through the PyDataset (bench/stage2_speed.md).
    - ``in_place=True`` (larger activations): a PyDataset reads them batch by batch from the arrays
      where they are instead of copying them into a tensor.
    """
    if in_place:
        return _CachedViews(views, labels, batch_size, seed)
    return _views_dataset(views, labels, batch_size, seed)


class _CachedViews(keras.utils.PyDataset):
    """view_batches' sampling over arrays read in place (see there)."""

    def __init__(self, views: list[np.ndarray], labels: np.ndarray, batch_size: int, seed: int):
        super().__init__()
        self.views, self.labels = views, labels
        self.batch_size = batch_size
        self.dtype = np.float32  # the batches' type (bench/stage2_speed.py measures float16 too)
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return math.ceil(len(self.labels) / self.batch_size)

    def on_epoch_end(self):
        n = len(self.labels)
        self.order = self.rng.permutation(n)
        self.view_choice = self.rng.integers(0, len(self.views), n)

    def __getitem__(self, index):
        idx = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        choice = self.view_choice[idx]
        x = np.empty((len(idx), *self.views[0].shape[1:]), self.dtype)
        for v, view in enumerate(self.views):
            mask = choice == v
            x[mask] = view[idx[mask]]
        return x, self.labels[idx]


@dataclass
class StagePlan:
    """What one training stage fits: which model, on what data, for how long and how fast."""

    stage: int  # 1: the head on cached features; 2: fine-tuning
    model: keras.Model
    train_data: Any
    val_data: Any
    epochs: int
    lr: float
    batch_size: int


class _Trainer:
    def __init__(self, config, run_dir, writer, stop, clock, resume, previous_records):
        self.config, self.run_dir, self.writer = config, Path(run_dir), writer
        self.stop, self.clock, self.resume = stop, clock, resume
        self.backup_dir = self.run_dir / store.BACKUP_DIR
        self.backup_dir.mkdir(exist_ok=True)
        # Epochs a resumed run already completed are not logged again (an older version logged a cut-short one as
        # "partial": it is trained again, and logged again).
        self.logged_epochs = {reader.epoch_key(r) for r in reader.epoch_records(previous_records)
                              if not r.get("partial")}

    def log(self, record: records.Record) -> None:
        record.setdefault("wall_time", self.clock())
        self.writer.write(record)

    def phase(self, name: str, message: str) -> None:
        write_status(self.run_dir, "running", message)
        self.log(records.phase_record(name, message))

    def run(self, test_report: bool = True) -> tuple[records.RunState, str]:
        from .devices import setup_hardware

        cfg = self.config
        keras.utils.set_random_seed(cfg.seed)
        hw = setup_hardware(cfg.mixed_precision, cfg.devices)
        from .doctor import versions

        self.log(records.run_start_record(cfg.to_json(), hw.description, os.getpid(), self.resume, versions()))

        self.phase("load_data", "loading CIFAR-10")
        from .data import make_splits

        splits = make_splits(cfg.data_dir, cfg.val_images, cfg.seed, cfg.limit_train, cfg.limit_test)
        self.log(records.data_record(splits.source, len(splits.y_train), len(splits.y_val), len(splits.y_test)))

        from .model import build_transfer_model

        self.hw = hw
        with hw.strategy.scope():
            self.tm = tm = build_transfer_model(cfg.backbone, cfg.image_size, cfg.fine_tune_blocks,
                                      None if cfg.weights == "none" else "imagenet", cfg.dropout)
        fine_tune = tm.top is not None and cfg.epochs_fine > 0
        act_bytes = int(np.prod(tm.bottom.output.shape[1:])) * 2
        views = VIEWS if cfg.augment else VIEWS[:1]
        use_cache = fine_tune and act_bytes * (len(splits.y_train) * len(views) + len(splits.y_val)) <= ACTIVATION_CACHE_BUDGET

        feats = self.extract_features(tm, splits, views, keep_activations=use_cache)
        if self.stop.requested:
            return "stopped", f"stopped by {self.stop.signal_name}"

        y_train = keras.utils.to_categorical(splits.y_train, 10)
        y_val = keras.utils.to_categorical(splits.y_val, 10)
        if cfg.epochs_head > 0:
            with hw.strategy.scope():
                head_model = tm.trainable_on_features()
            result = self.fit_stage(StagePlan(
                1, head_model,
                view_batches([feats["train"][v][1] for v in views], y_train, cfg.head_batch_size, cfg.seed, in_place=False),
                (feats["val"]["original"][1].astype(np.float32), y_val),
                cfg.epochs_head, cfg.lr_head, cfg.head_batch_size,
            ))
            if result:
                return result
        if fine_tune:
            tm.unfreeze_top()  # BatchNorm stays frozen, in inference mode
            if use_cache:
                with hw.strategy.scope():
                    stage2 = tm.trainable_on_activations()
                acts = [feats["train"][v][0] for v in views]
                train_data = view_batches(acts, y_train, cfg.batch_size, cfg.seed + 1,
                                          in_place=sum(a.nbytes for a in acts) > TENSOR_FEED_BUDGET)
                val_data = (feats["val"]["original"][0].astype(np.float32), y_val)
                del acts
            else:
                stage2 = tm.full
                train_data = _pixel_dataset(splits.x_train, y_train, cfg.batch_size, cfg.augment, cfg.seed, shuffle=True)
                val_data = _pixel_dataset(splits.x_val, y_val, cfg.batch_size, False, cfg.seed, shuffle=False)
            del feats  # the tf.data feed holds its own copy of the activations; a PyDataset keeps what it reads
            result = self.fit_stage(StagePlan(2, stage2, train_data, val_data, cfg.epochs_fine, cfg.lr_fine, cfg.batch_size))
            if result:
                return result

        if not test_report:
            return "finished", (f"trained, chosen on validation only: no test report (`cifar-tui evaluate "
                                f"{self.run_dir}` writes it)")
        return self.evaluate()

    def evaluate(self) -> tuple[records.RunState, str]:
        """The test report, with progress records; a stop request ends the run without it (the model is saved)."""
        from .evaluation import evaluate_run

        self.phase("evaluate", "evaluating the best model on the test set")
        report_progress = self.progress_logger("evaluate")

        def progress(done: int, total: int) -> None:
            report_progress(done, total)
            if self.stop.requested:
                raise InterruptedError

        try:
            with self.hw.strategy.scope():  # the model loads onto the strategy's devices, which split its batches
                report = evaluate_run(self.run_dir, progress, self.config.data_dir, self.config.cache_dir)
        except InterruptedError:
            return "stopped", (f"stopped by {self.stop.signal_name} during the test report; the model is saved and "
                               f"`cifar-tui evaluate {self.run_dir}` writes the report")
        return "finished", f"test accuracy {report['test_accuracy']:.4f}"

    def progress_logger(self, phase: str) -> Callable[[int, int], None]:
        """progress(done, total) that logs a progress record of `phase` at most once a second, and the last one."""
        last_report = [-math.inf]

        def progress(done: int, total: int) -> None:
            now = time.perf_counter()
            if now - last_report[0] >= 1.0 or done == total:
                last_report[0] = now
                self.log(records.progress_record(phase, done, total))

        return progress

    def extract_features(self, tm, splits, views, keep_activations):
        from ..paths import features_cache_dir
        from .features import cached_extract, model_id
        from .forward import Forward, converted_path

        cfg = self.config
        cache_dir = features_cache_dir(cfg.cache_dir)
        key = model_id(cfg.backbone, cfg.image_size, tm.bottom, tm.extractor)
        extractor = Forward(tm.extractor, cfg.runtime, converted_path(cache_dir, key))  # converts on first use
        jobs = [("train", v, splits.x_train) for v in views] + [("val", "original", splits.x_val)]
        total = sum(len(x) for _, _, x in jobs)
        self.phase("extract_features", f"computing frozen-backbone features for {total} images (cached for later runs)")
        done_before = hits = 0
        keys = []
        out: dict[str, dict[str, tuple]] = {"train": {}, "val": {}}
        t0 = time.perf_counter()
        report_progress = self.progress_logger("extract_features")

        def progress(done: int) -> None:
            report_progress(done_before + done, total)

        for split, view, images in jobs:
            acts, pooled, hit, cache_key = cached_extract(
                cache_dir, key, view, images, extractor, EXTRACT_BATCH * self.hw.replicas,
                keep_activations, progress, lambda: self.stop.requested,
            )
            out[split][view] = (acts, pooled)
            done_before += len(images)
            hits += hit
            keys.append(cache_key)
        elapsed = time.perf_counter() - t0
        # runtime: who computed the features (None when all came from the cache); runtime_note: why not LiteRT.
        self.log(records.features_done_record(
            total, round(elapsed, 2), hits, extractor.runtime, extractor.note,
            keys,  # what a later run's cost estimate looks for in the cache
            round(total / elapsed, 1) if elapsed > 0 else None))
        return out

    def fit_stage(self, plan: StagePlan) -> tuple[records.RunState, str] | None:
        """Train one stage; returns (state, message) when the run must end here, else None."""
        from .callbacks import BestCheckpoint, DiskSpaceGuard, EpochBackup, GracefulStop, MetricsLogger

        cfg, hw, tm = self.config, self.hw, self.tm
        stage, model, train_data, val_data = plan.stage, plan.model, plan.train_data, plan.val_data
        epochs, lr, batch_size = plan.epochs, plan.lr, plan.batch_size
        done_marker = self.backup_dir / f"stage{stage}.done"
        best_weights = self.backup_dir / f"stage{stage}.best.weights.h5"
        stage_backup = self.backup_dir / f"stage{stage}"
        score_file = self.backup_dir / "best_score.json"
        if done_marker.exists():
            if best_weights.exists():
                model.load_weights(best_weights)
            return None
        steps = len(train_data)
        with hw.strategy.scope():
            schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, steps * epochs), alpha=0.05)
            model.compile(
                optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                metrics=["accuracy"],
                # Keras 3.15's multi-step loop fails under tf.distribute strategies ("You must feed a value
                # for placeholder tensor ... while/cond/Placeholder"): one step per call with several replicas.
                steps_per_execution=HEAD_STEPS_PER_EXECUTION if stage == 1 and hw.replicas == 1 else 1,
            )
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        self.phase("train_head" if stage == 1 else "fine_tune",
                   f"stage {stage}: {'training the head' if stage == 1 else 'fine-tuning'} ({trainable:,} trainable parameters)")
        self.log(records.stage_start_record(stage, epochs, steps, lr, trainable))
        write_status(self.run_dir, "running", f"stage {stage}", stage=stage)
        # model.keras, the best weights and BackupAndRestore's state (weights and optimizer slots), with room to spare
        checkpoint_bytes = 4 * sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in tm.full.weights) + 2**20
        graceful = GracefulStop(self.stop)
        callbacks = [
            DiskSpaceGuard(self.run_dir, checkpoint_bytes),
            keras.callbacks.TerminateOnNaN(),  # stops after the batch whose loss is NaN/inf
            MetricsLogger(self.writer, stage, epochs, steps, batch_size, self.clock, self.logged_epochs),
            # After MetricsLogger: a stop asked for by a listener of the epoch record (a sweep's pruner) ends the stage
            # before another epoch starts.
            graceful,
            BestCheckpoint(best_weights, tm.full, self.run_dir / store.MODEL_FILE, score_file, CHECKPOINT_INTERVAL,
                           stop=graceful),
            keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=cfg.patience, restore_best_weights=False),
            # Completed epochs only, kept when fit() returns (a run stopped by a signal resumes from its last
            # completed epoch, the interrupted one trained again); removed below once the stage is done.
            EpochBackup(str(stage_backup), graceful),
        ]
        t0 = time.perf_counter()
        # The training data shuffles itself (shuffle=False only silences Keras' warning about that).
        history = model.fit(train_data, validation_data=val_data, validation_batch_size=batch_size if isinstance(val_data, tuple) else None,
                  epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)
        self.log(records.stage_end_record(stage, round(time.perf_counter() - t0, 2)))
        if not all(math.isfinite(loss) for loss in history.history.get("loss", [])):
            shutil.rmtree(stage_backup, ignore_errors=True)  # NaN weights: a resume starts the stage over
            raise TrainingDiverged(
                f"the loss became NaN/inf in stage {stage}; lower the learning rate (now {lr:g}) and retry"
            )
        if best_weights.exists():
            model.load_weights(best_weights)  # early stopping's best, kept on disk across resumes
        if self.stop.requested:
            return "stopped", f"stopped by {self.stop.signal_name}; the best model so far is kept"
        done_marker.touch()
        shutil.rmtree(stage_backup, ignore_errors=True)
        return None


def _views_dataset(views: list[np.ndarray], labels: np.ndarray, batch_size: int, seed: int):
    """view_batches' sampling as a tf.data pipeline over one tensor (see there)."""
    import tensorflow as tf

    stacked = tf.convert_to_tensor(np.stack(views, axis=1))  # (samples, views, features)
    targets = tf.convert_to_tensor(labels)
    n, n_views = stacked.shape[0], stacked.shape[1]

    def gather(indices):
        view = tf.random.uniform(tf.shape(indices), 0, n_views, dtype=tf.int64, seed=seed)
        x = tf.gather_nd(stacked, tf.stack([indices, view], axis=1))
        return tf.cast(x, tf.float32), tf.gather(targets, indices)

    ds = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    return ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _pixel_dataset(x, y, batch_size, augment, seed, shuffle):
    """tf.data pipeline from uint8 pixels, for end-to-end fine-tuning (GPU, or 'all' blocks); ``shuffle`` for training."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:  # a new order every epoch, as view_batches gives the cached features
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if augment:

        def jitter(image, label):
            image = tf.image.random_flip_left_right(image)
            padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]], mode="REFLECT")
            return tf.image.random_crop(padded, tf.shape(image)), label

        ds = ds.map(jitter, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
