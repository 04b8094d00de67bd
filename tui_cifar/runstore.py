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

This module imports neither TensorFlow nor Textual, so the CLI and the TUI can
list and tail runs cheaply while another process trains. What a run's records
mean (epochs, best validation accuracy, summaries, live progress) is runreader's.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from . import records
from .errors import CifarTuiError
from .files import atomic_write_json, atomic_write_text, read_json  # noqa: F401  (part of the run-folder API)
from .records import (  # noqa: F401  (the run-folder API)
    ENDED_STATES, RESUMABLE_STATES, SHOWN_STATES, STATES, Malformed, RunState, ShownState,
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

# config.json "kind" of a run that RunLogger recorded from a plain model.fit (the trainer writes none).
KERAS_KIND = "keras"


class RunStoreError(CifarTuiError):
    """A run folder or runs folder cannot be used; the message says why."""


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


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


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "problem"}
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
    atomic_write_json(Path(run_dir) / STATUS_FILE, status.to_json())
    return status


def read_status(run_dir: Path) -> RunStatus:
    """Read status.json; a missing or garbled file gives state 'unknown' with a reason, never raises."""
    data, problem = read_json(Path(run_dir) / STATUS_FILE)
    if data is None:
        return RunStatus(state="unknown", problem=problem)
    if data.get("state") not in STATES:
        return RunStatus(state="unknown", problem="status.json is unreadable (no valid 'state' field)")
    bad = records.invalid_fields(data, records.StatusFile)
    if bad:  # never trust a field's type: a pid of "abc" (or -1) would reach os.kill
        return RunStatus(state="unknown", problem=f"status.json has invalid {', '.join(bad)}")
    known = {k: data[k] for k in RunStatus.__dataclass_fields__ if k in data and k != "problem"}
    status = RunStatus(**known)
    if status.version > FORMAT_VERSION:
        status.problem = f"written by a newer cifar-tui (format {status.version}); upgrade to read it fully"
    return status


def effective_state(status: RunStatus) -> ShownState:
    """'running' only while the recorded process lives on this host; a dead one reads as 'killed'."""
    if status.state == "running" and status.host == socket.gethostname() and not pid_alive(status.pid):
        return "killed"
    return status.state


class MetricsWriter:
    """Append one JSON record per line and flush it, so a tailing reader sees every record at once."""

    def __init__(self, run_dir: Path, listeners: list[Callable[[Any], None]] | None = None):
        self.path = Path(run_dir) / METRICS_LOG
        self._file = open(self.path, "a", encoding="utf-8")
        self.listeners = list(listeners or [])  # e.g. the CLI's progress display

    def write(self, record: records.Record) -> None:
        record.setdefault("time", now_iso())
        self._file.write(json.dumps(record, allow_nan=True) + "\n")
        self._file.flush()
        for listener in list(self.listeners):
            try:
                listener(record)
            except OSError:  # e.g. EIO once the terminal is closed: the run goes on, the log has it all
                self.listeners.remove(listener)

    def close(self) -> None:
        self._file.close()


@dataclass
class LineTail:
    """The whole new lines of a growing file (metrics.jsonl, train.log), read from a byte offset.

    A half-written last line waits for the next read; a file that shrank (replaced or
    truncated) is read again from its start.
    """

    path: Path
    offset: int = 0

    def read_lines(self) -> list[bytes]:
        try:
            with open(self.path, "rb") as f:
                if f.seek(0, os.SEEK_END) < self.offset:
                    self.offset = 0
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return []
        *lines, _partial = chunk.split(b"\n")
        self.offset += sum(len(line) + 1 for line in lines)
        return lines


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


def read_metrics(run_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All complete records of a run's metrics log, plus the problems found reading it."""
    tail = MetricsTail(Path(run_dir) / METRICS_LOG)
    records = tail.read_new()
    problems = list(tail.problems)
    try:
        if tail.path.stat().st_size > tail.offset:  # a line is written whole, so a cut one is not coming
            problems.append(f"{tail.path.name} ends with an incomplete line (the run was cut off mid-write?)")
    except FileNotFoundError:
        pass
    return records, problems


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
