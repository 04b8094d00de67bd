"""A live model of one run, fed by the records of its metrics log.

No Textual and no TensorFlow here: the training screen polls a run folder,
feeds new records into a :class:`RunProgress` and redraws from it, and the
tests can check the arithmetic (progress, ETA, stage boundary) on their own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import runstore

PHASE_LABELS = {
    "load_data": "loading data",
    "extract_features": "extracting features",
    "train_head": "stage 1: training the head",
    "fine_tune": "stage 2: fine-tuning",
    "evaluate": "evaluating on the test set",
}

# The batch-loss curve keeps at most this many points (older ones are thinned).
MAX_BATCH_POINTS = 2000


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass
class StageInfo:
    stage: int
    epochs: int | None = None
    steps_per_epoch: int | None = None
    lr: float | None = None
    trainable_params: int | None = None


@dataclass
class RunProgress:
    """Everything the training screen shows, derived from metrics records."""

    config: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    phase: str | None = None
    phase_message: str = ""
    extract_done: int | None = None
    extract_total: int | None = None
    stage: int | None = None
    stages: dict[int, StageInfo] = field(default_factory=dict)
    _epochs: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    batch_points: list[tuple[float, float]] = field(default_factory=list)
    batch: int | None = None
    steps: int | None = None
    batch_epoch: int | None = None
    last_batch: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    wall_time: float | None = None
    records_seen: int = 0
    # bumped when something the epoch charts / batch chart show changed
    epoch_version: int = 0
    batch_version: int = 0
    _wall_seen_at: float | None = None

    # ---------------------------------------------------------------- feeding
    def feed(self, records: list[dict[str, Any]]) -> None:
        for rec in records:
            self._feed_one(rec)

    def _feed_one(self, rec: dict[str, Any]) -> None:
        self.records_seen += 1
        kind = rec.get("type")
        wall = _num(rec.get("wall_time"))
        if wall is not None:
            self.wall_time = wall
            self._wall_seen_at = time.monotonic()
        if kind == "run_start":
            if isinstance(rec.get("config"), dict):
                self.config = rec["config"]
            self.device = rec.get("device") or self.device
            # a resumed run starts over in the log: a new run_start clears the end
            self.end = None
        elif kind == "phase":
            self.phase = rec.get("phase")
            self.phase_message = str(rec.get("message") or "")
            if self.phase == "train_head":
                self.stage = 1
            elif self.phase == "fine_tune":
                self.stage = 2
        elif kind == "progress":
            if rec.get("phase", "extract_features") == "extract_features":
                self.extract_done = int(_num(rec.get("done")) or 0)
                self.extract_total = int(_num(rec.get("total")) or 0) or None
        elif kind == "stage_start":
            stage = int(_num(rec.get("stage")) or 1)
            self.stage = stage
            self.stages[stage] = StageInfo(
                stage=stage,
                epochs=int(_num(rec.get("epochs")) or 0),
                steps_per_epoch=int(_num(rec.get("steps_per_epoch")) or 0) or None,
                lr=_num(rec.get("lr")),
                trainable_params=int(_num(rec.get("trainable_params")) or 0) or None,
            )
            self.batch = None
            self.steps = self.stages[stage].steps_per_epoch
            self.epoch_version += 1  # the stage boundary moves
        elif kind == "batch":
            stage = int(_num(rec.get("stage")) or self.stage or 1)
            epoch = int(_num(rec.get("epoch")) or 1)
            self.stage = stage
            self.batch = int(_num(rec.get("batch")) or 0)
            self.steps = int(_num(rec.get("steps")) or 0) or self.steps
            self.batch_epoch = epoch
            self.last_batch = rec
            loss = _num(rec.get("loss"))
            if loss is not None and self.steps:
                x = self.epoch_offset(stage) + (epoch - 1) + self.batch / self.steps
                self.batch_points.append((x, loss))
                if len(self.batch_points) > MAX_BATCH_POINTS:
                    self.batch_points = self.batch_points[::2]
                self.batch_version += 1
        elif kind == "epoch":
            stage = int(_num(rec.get("stage")) or 1)
            epoch = int(_num(rec.get("epoch")) or 0)
            self.stage = stage
            self._epochs[(stage, epoch)] = rec
            if _num(rec.get("epochs")) and stage not in self.stages:
                self.stages[stage] = StageInfo(stage=stage, epochs=int(rec["epochs"]))
            self.epoch_version += 1
        elif kind == "run_end":
            self.end = rec

    # ---------------------------------------------------------------- derived
    @property
    def epochs(self) -> list[dict[str, Any]]:
        return [self._epochs[k] for k in sorted(self._epochs)]

    def stage_epochs_done(self, stage: int) -> int:
        return sum(1 for (s, _e) in self._epochs if s == stage)

    def planned_epochs(self, stage: int) -> int:
        """Epochs planned for a stage: as announced, from the config, or 0."""
        info = self.stages.get(stage)
        if info is not None and info.epochs is not None:
            planned = info.epochs
        else:
            planned = int(_num(self.config.get("epochs_head" if stage == 1 else "epochs_fine")) or 0)
        # A stage that has ended early (early stopping) counts as the epochs it ran.
        if stage == 1 and (2 in self.stages or self.stage == 2):
            return self.stage_epochs_done(1)
        if self.end is not None:
            return self.stage_epochs_done(stage)
        return max(planned, self.stage_epochs_done(stage))

    def epoch_offset(self, stage: int) -> int:
        """Global epoch number before the first epoch of `stage` (stage 2 continues after stage 1)."""
        return self.stage_epochs_done(1) if stage == 2 else 0

    @property
    def stage_boundary(self) -> float | None:
        """x position of the stage 1 / stage 2 boundary on the epoch charts, once stage 2 started."""
        if 2 in self.stages or any(s == 2 for (s, _e) in self._epochs):
            return self.stage_epochs_done(1) + 0.5
        return None

    def epoch_series(self) -> dict[str, list[tuple[float, float]]]:
        """Global-epoch-indexed series: loss, val_loss, accuracy, val_accuracy."""
        series: dict[str, list[tuple[float, float]]] = {
            "loss": [], "val_loss": [], "accuracy": [], "val_accuracy": []}
        for rec in self.epochs:
            stage = int(rec.get("stage", 1))
            x = self.epoch_offset(stage) + int(rec.get("epoch", 0))
            for key in series:
                value = _num(rec.get(key))
                if value is not None:
                    series[key].append((x, value))
        return series

    @property
    def epochs_done(self) -> int:
        return len(self._epochs)

    @property
    def epochs_total(self) -> int:
        return self.planned_epochs(1) + self.planned_epochs(2)

    @property
    def last_epoch(self) -> dict[str, Any] | None:
        eps = self.epochs
        return eps[-1] if eps else None

    @property
    def best_val_accuracy(self) -> float | None:
        vals = [v for _x, v in self.epoch_series()["val_accuracy"]]
        return max(vals) if vals else None

    @property
    def lr(self) -> float | None:
        last = self.last_epoch
        if last is not None and self.stage == int(last.get("stage", 0)) and _num(last.get("lr")) is not None:
            return _num(last.get("lr"))
        info = self.stages.get(self.stage or 0)
        return info.lr if info else None

    @property
    def images_per_sec(self) -> float | None:
        last = self.last_epoch
        return _num(last.get("images_per_sec")) if last else None

    @property
    def trainable_params(self) -> int | None:
        info = self.stages.get(self.stage or 0)
        return info.trainable_params if info else None

    @property
    def finished(self) -> bool:
        return self.end is not None

    def eta_seconds(self) -> float | None:
        """Rough time left for training: mean epoch time of the current stage x epochs left."""
        if self.end is not None:
            return 0.0
        stage = self.stage or 1
        times = [_num(r.get("epoch_time")) for r in self.epochs if int(r.get("stage", 0)) == stage]
        times = [t for t in times if t]
        if not times:
            times = [t for t in (_num(r.get("epoch_time")) for r in self.epochs) if t]
        if not times:
            return None
        per_epoch = sum(times[-3:]) / len(times[-3:])
        left = self.epochs_total - self.epochs_done
        if self.batch is not None and self.steps and self.batch_epoch is not None:
            # the current epoch is partly done
            if (stage, self.batch_epoch) not in self._epochs:
                left -= self.batch / self.steps
        return max(0.0, left * per_epoch)

    def elapsed(self) -> float | None:
        """Seconds since the run started, extrapolated from the last record while it is running."""
        if self.wall_time is None:
            return None
        if self.end is None and self._wall_seen_at is not None:
            return self.wall_time + (time.monotonic() - self._wall_seen_at)
        return self.wall_time

    def phase_label(self) -> str:
        if self.end is not None:
            return f"run {self.end.get('state', 'ended')}"
        return PHASE_LABELS.get(self.phase or "", self.phase or "starting")


def tail_lines(path: Path, max_lines: int = 200, max_bytes: int = 64_000) -> tuple[list[str], int]:
    """The last lines of a text file and its size (the offset to continue from)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return [], 0
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first line is probably cut
    return lines[-max_lines:], size


class LogFollower:
    """Follows a growing text file (train.log), giving whole new lines on each poll."""

    def __init__(self, path: Path, initial_lines: int = 200):
        self.path = Path(path)
        self.initial_lines = initial_lines
        self.offset: int | None = None
        self._partial = b""

    def read_new(self) -> list[str]:
        if self.offset is None:
            lines, size = tail_lines(self.path, self.initial_lines)
            self.offset = size
            return [_strip_cr(line) for line in lines]
        try:
            with open(self.path, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                if size < self.offset:  # truncated or replaced
                    self.offset = 0
                    self._partial = b""
                f.seek(self.offset)
                data = f.read(1_000_000)
        except OSError:
            return []
        self.offset += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        return [_strip_cr(line.decode("utf-8", errors="replace")) for line in complete]


def _strip_cr(line: str) -> str:
    # progress bars in a captured log rewrite themselves with \r: keep the last state
    return line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r")


__all__ = [
    "RunProgress", "StageInfo", "LogFollower", "tail_lines", "runstore",
]
