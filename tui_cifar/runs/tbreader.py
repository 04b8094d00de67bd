"""TensorBoard logdirs as runs: scalars from event files, followed while they grow, as metrics records.

A TensorBoard run is a folder with event files (``*tfevents*``) in it or in its direct subfolders
(Keras' ``TensorBoard`` callback writes ``train/`` and ``validation/``). Its scalars become the
``epoch`` records of the store's metrics log, so RunProgress, the charts and the alerts read them as
they read a cifar-tui run: a tag in ``validation/`` (or ``val/``, ``eval/``), or named ``loss/val``,
becomes ``val_loss``; Keras' ``epoch_`` prefix is dropped; one record per step, ``epoch`` numbering the
steps in order and ``step`` keeping the step.

Event files are TFRecord files of ``Event`` protocol buffers; they are read here with TensorBoard's
own protos (the ``tensorboard`` package, pure Python), never with TensorFlow, and a record only
half written at the end of a growing file is read once it is whole.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Container, Iterator
from pathlib import Path
from typing import Any, Literal

KIND = "tensorboard"
EVENT_MARK = "tfevents"
VAL_FOLDERS = {"validation", "val", "valid", "eval", "evaluation", "test"}
TRAIN_FOLDERS = {"train", "training", ""}
LIVE_SECONDS = 120.0  # an event file written this recently is a running run
MAX_RECORD = 64 << 20  # a longer length field is a damaged file: reading it stops there


def event_files(run_dir: Path) -> list[Path]:
    """The run's event files, in it and its direct subfolders (sorted: a writer's files by creation time)."""
    run_dir = Path(run_dir)
    found: list[Path] = []
    try:
        children = sorted(run_dir.iterdir())
    except OSError:
        return []
    for child in children:
        if child.is_file() and EVENT_MARK in child.name:
            found.append(child)
        elif child.is_dir() and not child.name.startswith("."):
            try:
                found.extend(sorted(p for p in child.iterdir() if p.is_file() and EVENT_MARK in p.name))
            except OSError:
                continue
    return found


def is_tensorboard_run(run_dir: Path) -> bool:
    return Path(run_dir).is_dir() and bool(event_files(run_dir))


def iter_tensorboard_runs(logdir: Path, skip: Container[str] = ()) -> Iterator[Path]:
    """The TensorBoard runs in a logdir: the logdir itself when its own files are events, else its subfolders
    (but those whose absolute path is in ``skip``: run folders already listed, not searched again)."""
    logdir = Path(logdir).expanduser()
    if not logdir.is_dir():
        return
    if any(EVENT_MARK in p.name for p in logdir.iterdir() if p.is_file()):
        yield logdir
        return
    for child in sorted(logdir.iterdir()):
        if str(child.absolute()) not in skip and child.is_dir() and is_tensorboard_run(child):
            yield child


def metric_name(folder: str, tag: str) -> str | None:
    """The record key of a scalar: ``val_`` for validation folders or tags, None for tags that are no metric."""
    tag = tag.strip().lower().replace(" ", "_")
    if tag.endswith("_vs_iterations") or not tag:  # Keras' evaluation-per-iteration scalars: another x axis
        return None
    val = folder.lower() in VAL_FOLDERS
    parts = tag.split("/")
    if len(parts) == 2 and (parts[1] in VAL_FOLDERS | TRAIN_FOLDERS or parts[0] in VAL_FOLDERS | TRAIN_FOLDERS):
        side, name = (parts[1], parts[0]) if parts[1] in VAL_FOLDERS | TRAIN_FOLDERS else (parts[0], parts[1])
        val = val or side in VAL_FOLDERS
        tag = name
    tag = tag.replace("/", "_")
    if tag.startswith("epoch_"):
        tag = tag[len("epoch_"):]
    if tag in ("learning_rate", "lr"):
        return None if val else "lr"
    if not val and folder.lower() not in TRAIN_FOLDERS:
        tag = f"{folder.lower()}_{tag}"
    return f"val_{tag}" if val and not tag.startswith("val_") else tag


def _scalar(value: Any, scalar_tags: set[str]) -> float | None:
    """A summary value's number when it is a scalar (old simple_value, or a tf.summary v2 scalar tensor)."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if not value.HasField("tensor"):
        return None
    if value.HasField("metadata") and value.metadata.plugin_data.plugin_name == "scalars":
        scalar_tags.add(value.tag)
    if value.tag not in scalar_tags:
        return None
    t = value.tensor
    if t.tensor_shape.dim:
        return None
    for field in ("float_val", "double_val", "int_val", "int64_val"):
        vals = getattr(t, field)
        if len(vals) == 1:
            return float(vals[0])
    formats = {1: "<f", 2: "<d", 3: "<i", 9: "<q"}  # DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64
    fmt = formats.get(t.dtype)
    if fmt and len(t.tensor_content) == struct.calcsize(fmt):
        return float(struct.unpack(fmt, t.tensor_content)[0])
    return None


class EventFileTail:
    """The whole new Event records of one growing event file, from a byte offset."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self.problem: str | None = None

    def read_new(self) -> list[Any]:
        from tensorboard.compat.proto import event_pb2

        events: list[Any] = []
        if self.problem is not None:
            return events
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError as exc:
            self.problem = f"{self.path.name}: {exc.strerror or exc}"
            return events
        pos = 0
        while len(data) - pos >= 12:
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            if length > MAX_RECORD:
                self.problem = f"{self.path.name}: damaged event file at byte {self.offset + pos}"
                break
            end = pos + 12 + length + 4
            if end > len(data):
                break  # half written: read it next time
            event = event_pb2.Event()
            try:
                event.ParseFromString(data[pos + 12:pos + 12 + length])
            except Exception:
                self.problem = f"{self.path.name}: unreadable event at byte {self.offset + pos}"
                break
            events.append(event)
            pos = end
        self.offset += pos
        return events


class TensorBoardTail:
    """Follows a TensorBoard run folder; ``read_new()`` gives metrics records as store.MetricsTail does.

    The first call gives a ``run_start`` with the run's config ({"kind": "tensorboard", ...}); then each call
    gives an ``epoch`` record for each step whose values changed (a later record for a step replaces the
    earlier one, as with a resumed run's epochs).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.files: dict[Path, EventFileTail] = {}
        self.steps: dict[int, dict[str, Any]] = {}
        self.scalar_tags: dict[Path, set[str]] = {}
        self.first_wall: float | None = None
        self.last_wall: float | None = None
        self.problems: list[str] = []
        self._started = False

    def read_new(self) -> list[dict[str, Any]]:
        changed: set[int] = set()
        for path in event_files(self.run_dir):
            tail = self.files.setdefault(path, EventFileTail(path))
            folder = path.parent.name if path.parent != self.run_dir else ""
            tags = self.scalar_tags.setdefault(path, set())
            for event in tail.read_new():
                if not event.HasField("summary"):
                    continue
                for value in event.summary.value:
                    number = _scalar(value, tags)
                    key = metric_name(folder, value.tag)
                    if number is None or key is None:
                        continue
                    if self.first_wall is None or event.wall_time < self.first_wall:
                        self.first_wall = event.wall_time
                    self.last_wall = max(self.last_wall or 0.0, event.wall_time)
                    rec = self.steps.setdefault(int(event.step), {"step": int(event.step)})
                    rec[key] = number
                    rec["_wall"] = max(rec.get("_wall", 0.0), event.wall_time)
                    changed.add(int(event.step))
            if tail.problem and tail.problem not in self.problems:
                self.problems.append(tail.problem)
        records: list[dict[str, Any]] = []
        if not self._started:
            self._started = True
            records.append({"type": "run_start", "config": {"kind": KIND, "logdir": str(self.run_dir)},
                            "device": None, "pid": None})
        order = {step: k + 1 for k, step in enumerate(sorted(self.steps))}
        for step in sorted(changed):
            rec = dict(self.steps[step])
            wall = rec.pop("_wall")
            records.append({**rec, "type": "epoch", "stage": 1, "epoch": order[step],
                            "wall_time": round(wall - (self.first_wall or wall), 3)})
        return records

    def state(self, now: float | None = None) -> Literal["running", "finished", "unknown"]:
        """"running" while an event file was written in the last LIVE_SECONDS, else "finished"."""
        now = time.time() if now is None else now
        mtimes = []
        for path in event_files(self.run_dir):
            try:
                mtimes.append(os.stat(path).st_mtime)
            except OSError:
                continue
        if not mtimes:
            return "unknown"
        return "running" if now - max(mtimes) < LIVE_SECONDS else "finished"


def read_records(run_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """A TensorBoard run's records at once, with the problems met."""
    tail = TensorBoardTail(run_dir)
    return tail.read_new(), tail.problems
