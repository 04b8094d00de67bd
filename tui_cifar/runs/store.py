"""Run folders: the one contract between the training process and its readers.

A run folder holds::

    config.json      the TrainConfig that started the run; a run recorded by RunLogger from
                     anyone's model.fit has "kind": "keras" and the hyperparameters Keras shows
    status.json      {"state", "pid", "host", "started_at", "updated_at", "message", ...}
    metrics.jsonl    append-only, one JSON record per line, flushed per record
    train.log        what the training process printed (detached runs)
    model.keras      the best model so far (written to a temporary file, then renamed)
    report.json      the final test-set report (metrics.json in folders of earlier versions)
    predictions.npz  the test-set probabilities behind the report (y_true, y_prob, test_index)
    error.txt        the traceback of a failed run
    backup/          Keras BackupAndRestore state, for ``train --resume``
    STOP             created to ask the run to stop after its current batch
    run.lock         held (flock) by the process training the run, holding its pid and start time

This module imports neither TensorFlow nor Textual, so the CLI and the TUI can
list and tail runs cheaply while another process trains. What a run's records
mean (epochs, best validation accuracy, summaries, live progress) is reader's.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import CifarTuiError
from ..files import atomic_write_json, atomic_write_text, read_json  # noqa: F401  (part of the run-folder API)
from . import records
from .records import (  # noqa: F401  (the run-folder API)
    ENDED_STATES,
    RESUMABLE_STATES,
    SHOWN_STATES,
    STATES,
    Malformed,
    RunState,
    ShownState,
)

FORMAT_VERSION = 1

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
METRICS_LOG = "metrics.jsonl"
TRAIN_LOG = "train.log"
MODEL_FILE = "model.keras"
REPORT_FILE = "report.json"
LEGACY_REPORT_FILE = "metrics.json"  # the report's name in earlier versions: too close to metrics.jsonl
PREDICTIONS_FILE = "predictions.npz"
ERROR_FILE = "error.txt"
BACKUP_DIR = "backup"
STOP_FILE = "STOP"
LOCK_FILE = "run.lock"

# config.json "kind" of a run that RunLogger recorded from a plain model.fit (the trainer writes none).
KERAS_KIND = "keras"


class RunStoreError(CifarTuiError):
    """A run folder or runs folder cannot be used; the message says why."""


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def create_run_dir(runs_dir: Path, name: str) -> Path:
    """Make a new, unique run folder; two runs started at once never share one."""
    runs_dir = Path(runs_dir).expanduser()
    if runs_dir.exists() and not runs_dir.is_dir():
        raise RunStoreError(f"runs folder {runs_dir} is a file, not a folder; choose another with --runs-dir")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunStoreError(f"cannot create runs folder {runs_dir}: {exc.strerror or exc}") from exc
    if not os.access(runs_dir, os.W_OK | os.X_OK):
        raise RunStoreError(f"runs folder {runs_dir} is not writable; choose another with --runs-dir")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{_slug(name)}"
    for n in range(1000):
        candidate = runs_dir / (base if n == 0 else f"{base}-{n}")
        try:
            candidate.mkdir()  # atomic: fails if another process took the name
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunStoreError(f"cannot create run folder in {runs_dir}: {exc.strerror or exc}") from exc
    raise RunStoreError(f"could not find a free run folder name under {runs_dir}")


def process_start_time(pid: int) -> int | None:
    """When a process started (clock ticks since boot, /proc/PID/stat), or None where unknown (no /proc, gone).

    With the pid it names one process for good: a pid reused after that process ended has another start time.
    """
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])  # field 22; the name before ")" may hold spaces
    except (OSError, ValueError, IndexError):
        return None


class RunLock:
    """The exclusive flock on RUN/run.lock that makes one process the run's trainer while it lives.

    The kernel releases it when the process ends in any way (kill -9 included), so "running" means
    "the lock is held" and never depends on a pid in a file. The holder writes its pid and start time
    into the locked file: Stop signals that process only after checking both (see holder_pid).
    """

    def __init__(self, run_dir: Path, fd: int):
        self.run_dir, self.fd = Path(run_dir), fd

    @classmethod
    def acquire(cls, run_dir: Path, wait: float = 0.5) -> RunLock:
        """Take the lock, or a RunStoreError at once naming who holds it (a reader's probe is waited out)."""
        path = Path(run_dir) / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise RunStoreError(f"cannot lock {run_dir}: {exc.strerror or exc}") from exc
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    os.close(fd)
                    holder = lock_holder(run_dir)
                    who = f" (pid {holder[0]})" if holder and holder[0] else ""
                    raise RunStoreError(f"{run_dir} is being trained by another process{who}; "
                                        "one run folder has one trainer") from None
                time.sleep(0.02)
        lock = cls(run_dir, fd)
        lock.record(None)
        return lock

    def record(self, pid: int | None) -> None:
        """Write whose lock this is ("PID START_TIME"), or nothing while the launcher has no child yet."""
        line = "" if pid is None else f"{pid} {process_start_time(pid) or ''}".strip() + "\n"
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, line.encode(), 0)
        except OSError:
            pass  # a full disk: the lock still holds; Stop then only writes the STOP file

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = -1


def adopt_lock(run_dir: Path, fd: int) -> RunLock:
    """The lock a launcher took and handed to this (detached) process: it records itself as the holder."""
    lock = RunLock(run_dir, fd)
    lock.record(os.getpid())
    return lock


def lock_held(run_dir: Path) -> bool:
    """Whether some process holds the run's lock now (probed with a shared lock, released at once)."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError as exc:
        return exc.errno in (errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)


def lock_holder(run_dir: Path) -> tuple[int | None, int | None] | None:
    """(pid, start time) the lock's holder wrote, or None when the lock is not held."""
    if not lock_held(run_dir):
        return None
    try:
        words = (Path(run_dir) / LOCK_FILE).read_text(encoding="ascii")[:64].split()
        pid = int(words[0]) if words else None
        start = int(words[1]) if len(words) > 1 else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None, None
    return pid, start


def holder_pid(run_dir: Path) -> int | None:
    """The pid of the process training the run, checked: it holds the lock, wrote this pid and start time,
    and that pid still has that start time (not reused). None when any of it fails: signal nothing then."""
    holder = lock_holder(run_dir)
    if not holder:
        return None
    pid, start = holder
    if pid is None or start is None or pid <= 1 or pid == os.getpid():
        return None
    return pid if process_start_time(pid) == start else None


@dataclass
class RunStatus:
    state: RunState | Literal["unknown"]
    pid: int | None = None
    host: str | None = None
    started_at: str | None = None
    updated_at: str | None = None
    message: str = ""
    stage: int | None = None
    version: int = FORMAT_VERSION
    problem: str | None = None  # set by readers when status.json could not be read
    locked: bool = False  # set by read_status: a process holds the run's lock (it is training now)

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("problem", "locked")}
        return data


def write_status(run_dir: Path, state: RunState, message: str = "", **extra: Any) -> RunStatus:
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}")
    previous = read_status(run_dir)
    status = RunStatus(
        state=state,
        pid=extra.pop("pid", os.getpid()),
        host=socket.gethostname(),
        started_at=previous.started_at if previous.started_at else now_iso(),
        updated_at=now_iso(),
        message=message,
        stage=extra.pop("stage", previous.stage),
    )
    path = Path(run_dir) / STATUS_FILE
    try:
        atomic_write_json(path, status.to_json())
    except OSError as exc:
        if exc.errno != errno.ENOSPC or not _overwrite_in_place(path, json.dumps(status.to_json(), indent=2) + "\n"):
            raise
    return status


def _overwrite_in_place(path: Path, text: str) -> bool:
    """Rewrite a small file in its own disk blocks: on a full disk, where a temporary copy cannot be
    made, the status must still say how the run ended. False when even that fails."""
    data = text.encode("utf-8")
    try:
        with open(path, "r+b") as f:
            if f.seek(0, os.SEEK_END) < len(data):
                return False  # it would need a block the disk no longer has
            f.seek(0)
            f.write(data)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        return False
    return True


def read_status(run_dir: Path) -> RunStatus:
    """Read status.json; a missing or garbled file gives state 'unknown' with a reason, never raises."""
    status = _read_status_file(Path(run_dir))
    status.locked = lock_held(run_dir)
    return status


def _read_status_file(run_dir: Path) -> RunStatus:
    data, problem = read_json(Path(run_dir) / STATUS_FILE)
    if data is None:
        return RunStatus(state="unknown", problem=problem)
    if data.get("state") not in STATES:
        return RunStatus(state="unknown", problem="status.json is unreadable (no valid 'state' field)")
    bad = records.invalid_fields(data, records.StatusFile)
    if bad:  # never trust a field's type: a pid of "abc" (or -1) would reach os.kill
        return RunStatus(state="unknown", problem=f"status.json has invalid {', '.join(bad)}")
    known = {k: data[k] for k in RunStatus.__dataclass_fields__ if k in data and k not in ("problem", "locked")}
    status = RunStatus(**known)
    if status.version > FORMAT_VERSION:
        status.problem = f"written by a newer cifar-tui (format {status.version}); upgrade to read it fully"
    return status


def effective_state(status: RunStatus) -> ShownState:
    """'running' while a process holds the run's lock; a run whose status says running without one
    (its trainer died, even by kill -9) reads as 'killed'. A run of another host keeps its status:
    its lock cannot be seen from here."""
    if status.locked:
        return "running"
    if status.state == "running" and status.host == socket.gethostname():
        return "killed"
    return status.state


class MetricsWriter:
    """Append one JSON record per line, each with one unbuffered write, so a tailing reader sees every
    record at once.

    A write cut short (a full disk) leaves half a line; the next record, here or in a later process
    (a resume), starts on a new line, so the half line is one garbled line that readers skip, never
    glued to a good record.
    """

    def __init__(self, run_dir: Path, listeners: list[Callable[[Any], None]] | None = None):
        self.path = Path(run_dir) / METRICS_LOG
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._cut = _ends_mid_line(self.path)
        self.listeners = list(listeners or [])  # e.g. the CLI's progress display

    def write(self, record: records.Record) -> None:
        """Append the record (an OSError when the disk refuses it); the listeners hear it either way."""
        record.setdefault("time", now_iso())
        data = (("\n" if self._cut else "") + json.dumps(record, allow_nan=True) + "\n").encode("utf-8")
        try:
            while data:
                self._cut = True  # until the whole line is down
                data = data[os.write(self._fd, data):]
            self._cut = False
        finally:
            for listener in list(self.listeners):
                try:
                    listener(record)
                except OSError:  # e.g. EIO once the terminal is closed: the run goes on, the log has it all
                    self.listeners.remove(listener)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:
        return False


@dataclass
class LineTail:
    """The whole new lines of a growing file (metrics.jsonl, train.log), read from a byte offset.

    A half-written last line waits for the next read; a file that shrank (replaced or
    truncated) is read again from its start. One read takes at most ``max_bytes`` (the rest comes
    with the next reads), so following a huge log never holds all of it at once.
    """

    path: Path
    offset: int = 0
    max_bytes: int = 2 * 2**20

    def read_lines(self) -> list[bytes]:
        try:
            with open(self.path, "rb") as f:
                if f.seek(0, os.SEEK_END) < self.offset:
                    self.offset = 0
                f.seek(self.offset)
                chunk = f.read(self.max_bytes)
                if len(chunk) == self.max_bytes and b"\n" not in chunk:  # one line longer than a read: take it whole
                    chunk += f.readline()
        except OSError:
            return []
        *lines, _partial = chunk.split(b"\n")
        self.offset += sum(len(line) + 1 for line in lines)
        return lines

    @property
    def caught_up(self) -> bool:
        """Whether the last read reached the end of the file (a huge log takes several reads)."""
        try:
            return self.path.stat().st_size - self.offset < self.max_bytes
        except OSError:
            return True


@dataclass
class MetricsTail(LineTail):
    """The new records of metrics.jsonl on each read; a garbled line is skipped and listed in ``problems``."""

    problems: list[str] = field(default_factory=list)
    _line_no: int = 0

    def read_new(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for raw in self.read_lines():
            self._line_no += 1
            text = raw.strip()
            if not text:
                continue
            try:
                found.append(records.decode_line(text))
            except Malformed as exc:  # a record of the wrong shape says which fields
                why = f" ({exc})" if isinstance(exc, records.WrongFields) else ""
                self.problems.append(f"{self.path.name} line {self._line_no} is garbled and was skipped{why}")
        return found


def iter_metrics(run_dir: Path, problems: list[str]) -> Iterator[dict[str, Any]]:
    """The complete records of a run's metrics log, one at a time (memory flat in the log's length);
    what is wrong with the log is appended to ``problems`` as it is met."""
    tail = MetricsTail(Path(run_dir) / METRICS_LOG)
    while True:
        found = tail.read_new()
        yield from found
        problems.extend(tail.problems)
        tail.problems.clear()
        if tail.caught_up and not found:
            break
    try:
        if tail.path.stat().st_size > tail.offset:  # a line is written whole, so a cut one is not coming
            problems.append(f"{tail.path.name} ends with an incomplete line (the run was cut off mid-write?)")
    except FileNotFoundError:
        pass


def read_metrics(run_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All complete records of a run's metrics log, plus the problems found reading it."""
    problems: list[str] = []
    records = list(iter_metrics(run_dir, problems))
    return records, problems


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the .tmp-* files of atomic writes (files.atomic_write) that a killed process left in a run
    folder and its backup/; call only while holding the run's lock (no live writer owns them then)."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / BACKUP_DIR):
        for path in folder.glob(".tmp-*"):
            try:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed


def report_path(run_dir: Path) -> Path:
    """Where a run's test report is: report.json, or metrics.json in a folder of an earlier version."""
    run_dir = Path(run_dir)
    legacy = run_dir / LEGACY_REPORT_FILE
    return legacy if legacy.exists() and not (run_dir / REPORT_FILE).exists() else run_dir / REPORT_FILE


def has_report(run_dir: Path) -> bool:
    return report_path(run_dir).exists()


def read_report(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The run's test report, checked field by field (records.TestReport), or None and why not."""
    return records.read_report(report_path(run_dir))


def read_config(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The run's config.json, its fields that readers use checked (records.ConfigFields), or None and why not."""
    return records.read_config(Path(run_dir) / CONFIG_FILE)


def read_predictions(run_dir: Path, rows: int | None = None) -> tuple[records.Predictions | None, str | None]:
    """The test-set probabilities behind the report (no pickles), or None and why not."""
    return records.read_predictions(Path(run_dir) / PREDICTIONS_FILE, rows)


def run_kind(config: dict[str, Any]) -> str:
    """'keras' for a run RunLogger recorded from a plain model.fit, 'cifar-tui' for the trainer's runs."""
    return str(config.get("kind") or "cifar-tui")


def no_cifar_model_reason(config: dict[str, Any]) -> str | None:
    """Why a run has no cifar-tui model to evaluate, predict with or resume; None when it has one."""
    if run_kind(config) == KERAS_KIND:
        return ("this run was recorded by RunLogger from a Keras script's model.fit: "
                "cifar-tui can show and export its metrics, but has no model of it to evaluate, predict with or resume")
    return None


def iter_run_dirs(runs_dir: Path) -> Iterator[Path]:
    runs_dir = Path(runs_dir).expanduser()
    if not runs_dir.is_dir():
        return
    for child in sorted(runs_dir.iterdir()):
        if child.is_dir() and ((child / STATUS_FILE).exists() or (child / CONFIG_FILE).exists()):
            yield child
