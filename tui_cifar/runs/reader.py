"""Reading run folders: what a run did and how far it got, from the files of the store's layout.

One reader for every consumer: the CLI's `runs` table, the app's screens (which poll a
running run and feed new records into a :class:`RunProgress`), the evaluation's report
and the trainer resuming a run. No TensorFlow and no Textual here, so listing and
watching runs stays cheap while another process trains.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ..config import config_file_problems
from . import store
from .records import BOOKKEEPING_KEYS, MAX_COUNT, SHOWN_STATES, ShownState, scalar_items


def record_number(value: Any, finite: bool = False) -> float | None:
    """A record's number as a float; None for a missing, boolean or non-numeric value (never trust a log),
    and with ``finite``, for NaN and infinity too (a diverged epoch's loss)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return None if finite and not math.isfinite(number) else number


def record_count(value: Any) -> int | None:
    """A whole number from a record or a run's config (epochs, steps), or None for anything else (NaN, 1e400, -3)."""
    number = record_number(value, finite=True)
    return int(number) if number is not None and number.is_integer() and 0 <= number <= MAX_COUNT else None


# --- figures from a run's records ----------------------------------------------------------------


def epoch_key(rec: dict[str, Any]) -> tuple[int, int]:
    """(stage, epoch) of an epoch record: a resumed run may log an epoch twice, and the later record wins."""
    return record_count(rec.get("stage")) or 1, record_count(rec.get("epoch")) or 0


def epoch_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-epoch records, keeping only the last one for each (stage, epoch).

    A resumed run may repeat an epoch that was interrupted; the later record wins.
    """
    latest = {epoch_key(rec): rec for rec in records if rec.get("type") == "epoch"}
    return [latest[k] for k in sorted(latest)]


def best_val_accuracy(records: list[dict[str, Any]]) -> float | None:
    """The highest validation accuracy over a run's epochs, or None before the first epoch."""
    vals = [r["val_accuracy"] for r in epoch_records(records) if isinstance(r.get("val_accuracy"), (int, float))]
    return max(vals, default=None)


# Keys of an epoch record that are no metric a model logged: records' bookkeeping, and a TensorBoard run's step.
EPOCH_BOOKKEEPING = BOOKKEEPING_KEYS | {"step"}


def epoch_metric_names(records: list[dict[str, Any]]) -> list[str]:
    """Training metric names in epoch records other than the loss (no val_ ones), first seen first.

    A RunLogger run logs whatever its model compiles (auc, mae...), not only accuracy.
    """
    names: dict[str, None] = {}
    for rec in records:
        for key in scalar_items(rec, EPOCH_BOOKKEEPING):
            if key != "loss" and not key.startswith("val_"):
                names.setdefault(key, None)
    return list(names)


def last_wall_time(records: list[dict[str, Any]]) -> float | None:
    """Seconds since the run started at its latest record (continued across resumes)."""
    walls = [r["wall_time"] for r in records if isinstance(r.get("wall_time"), (int, float))]
    return max(walls, default=None)


def _when(iso: Any) -> float | None:
    """An ISO timestamp (status.json's, a record's "time") as seconds since the epoch, or None."""
    import datetime as _dt

    try:
        return _dt.datetime.fromisoformat(iso).timestamp() if isinstance(iso, str) else None
    except ValueError:
        return None


def run_duration(status: store.RunStatus, wall: float | None, resumed: bool, last_time: str | None, state: str,
                 now: float | None = None) -> float | None:
    """Seconds the run has taken as its user counts them: from its launch, TensorFlow's start-up included
    (status.json's started_at), to its end or, while it runs, to now.

    The log's wall time starts after TensorFlow's import and moves only with a record, so alone it said "2s" of
    a 15-s-old run and "0s" of one that failed in its start-up. A resumed run adds up its sessions from the log
    (the time it lay stopped is not counted), with the current session's time since its last record.
    ``wall``: the log's last wall time; ``resumed``: the log has a run_resume; ``last_time``: its last record's time.
    """
    now = time.time() if now is None else now
    if not resumed:
        start = _when(status.started_at)
        end = now if state == "running" else _when(status.updated_at)
        span = end - start if start is not None and end is not None and end >= start else None
        return max((s for s in (wall, span) if s is not None), default=None)
    if state == "running" and wall is not None:
        since = [t for t in (_when(last_time), _when(status.updated_at)) if t is not None]
        if since:
            wall += max(0.0, now - max(since))
    return wall


def stage_times(records: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds per stage (stage1, stage2) and for feature extraction, as the training log recorded them.

    A record without a number (a log from another version, a hand edit) is skipped, never fatal: the runs
    table and the cost estimate read every run through here.
    """
    times = {f"stage{r.get('stage')}": seconds for r in records
             if r.get("type") == "stage_end" and (seconds := record_number(r.get("seconds"))) is not None}
    return times | {"features": sum(record_number(r.get("seconds")) or 0.0 for r in records if r.get("type") == "features_done")}


@dataclass
class RunSummary:
    path: Path
    name: str
    state: ShownState
    backbone: str | None
    image_size: int | None
    best_val_accuracy: float | None
    test_accuracy: float | None
    started_at: str | None
    duration_s: float | None
    problems: list[str]
    stage_times: dict[str, float] = field(default_factory=dict)
    kind: str = "cifar-tui"
    model: str | None = None  # the Keras model's name, for a RunLogger run
    last: dict[str, float] = field(default_factory=dict)  # the last epoch's metrics (loss, val_loss, top3...)


def last_values(records: list[dict[str, Any]]) -> dict[str, float]:
    """The metrics of a run's last epoch record, bookkeeping left out."""
    epochs = epoch_records(records)
    if not epochs:
        return {}
    return {k: n for k, v in epochs[-1].items() if k not in EPOCH_BOOKKEEPING and (n := record_number(v)) is not None}


def summarize_run(run_dir: Path) -> RunSummary:
    """What the runs table shows of a run folder; whatever cannot be read is listed in ``problems``."""
    run_dir = Path(run_dir)
    problems: list[str] = []
    status = store.read_status(run_dir)
    if status.problem:
        problems.append(status.problem)
    config, problem = store.read_config(run_dir)
    if problem:
        problems.append(problem)
    config = config or {}
    problems.extend(config_file_problems(config))
    figures = _LogFigures()
    log_problems: list[str] = []
    for record in store.iter_metrics(run_dir, log_problems):  # streamed: a long log is never held
        figures.add(record)
    problems.extend(log_problems)
    report, problem = store.read_report(run_dir)
    if problem and store.has_report(run_dir):  # a missing report is a run not evaluated yet, no problem
        problems.append(problem)
    return RunSummary(
        path=run_dir,
        name=run_dir.name,
        state=store.effective_state(status),
        backbone=config.get("backbone"),
        image_size=config.get("image_size"),  # both checked by read_config
        best_val_accuracy=figures.best_val_accuracy(),
        test_accuracy=(report or {}).get("test_accuracy"),
        started_at=status.started_at,
        duration_s=run_duration(status, figures.wall_time, figures.resumed, figures.last_time,
                                store.effective_state(status)),
        stage_times=stage_times(figures.stage_records),
        problems=problems,
        kind=store.run_kind(config),
        model=config.get("model") if isinstance(config.get("model"), str) else None,
        last=last_values(list(figures.epochs.values())),
    )


def summarize_tensorboard_run(run_dir: Path) -> RunSummary:
    """A folder of TensorBoard event files as the runs table shows it: live or not, its last values."""
    from . import tbreader

    tail = tbreader.TensorBoardTail(run_dir)
    records = tail.read_new()
    state: ShownState = tail.state()
    started = None  # the first event's time, as status.json writes started_at: such runs sort among the others
    if tail.first_wall is not None and math.isfinite(tail.first_wall):
        try:
            started = datetime.fromtimestamp(tail.first_wall, UTC).astimezone().isoformat(timespec="seconds")
        except (OverflowError, OSError, ValueError):  # a wall time from a damaged or hostile file
            started = None
    return RunSummary(
        path=Path(run_dir), name=Path(run_dir).name, state=state, backbone=None, image_size=None,
        best_val_accuracy=best_val_accuracy(records), test_accuracy=None, started_at=started,
        duration_s=last_wall_time(records), problems=list(tail.problems), kind=tbreader.KIND,
        last=last_values(records))


def is_tensorboard_dir(run_dir: Path) -> bool:
    """A folder of TensorBoard event files rather than a run folder with its own metrics log."""
    from . import tbreader

    return not (Path(run_dir) / store.METRICS_LOG).exists() and tbreader.is_tensorboard_run(run_dir)


def no_model_reason(run_dir: Path) -> str | None:
    """Why a run folder holds no cifar-tui model to evaluate, predict with or resume; None when it has one."""
    if is_tensorboard_dir(run_dir):
        return ("this is a folder of TensorBoard event files: cifar-tui can show and compare its scalars, "
                "but has no model of it to evaluate, predict with or resume")
    return store.no_cifar_model_reason(store.read_json(Path(run_dir) / store.CONFIG_FILE)[0] or {})


def summarize(run_dir: Path) -> RunSummary:
    """A run folder's summary, whichever kind it is (cifar-tui, RunLogger, TensorBoard event files)."""
    return summarize_tensorboard_run(run_dir) if is_tensorboard_dir(run_dir) else summarize_run(run_dir)


class _LogFigures:
    """What a summary needs from a metrics log, folded one record at a time (best_val_accuracy,
    last_wall_time and stage_times of the whole log, without holding it)."""

    def __init__(self) -> None:
        self.epochs: dict[tuple[int, int], dict[str, Any]] = {}  # (stage, epoch) -> record; a repeated epoch: the later
        self.wall_time: float | None = None
        self.stage_records: list[dict[str, Any]] = []
        self.resumed = False  # a run_resume record: the run's duration is its sessions' (run_duration)
        self.last_time: str | None = None

    def add(self, rec: dict[str, Any]) -> None:
        kind = rec.get("type")
        if kind == "epoch":
            self.epochs[epoch_key(rec)] = rec
        elif kind in ("stage_end", "features_done"):
            self.stage_records.append(rec)
        self.resumed = self.resumed or kind == "run_resume"
        self.last_time = rec.get("time") if isinstance(rec.get("time"), str) else self.last_time
        wall = rec.get("wall_time")
        if isinstance(wall, (int, float)) and not isinstance(wall, bool):
            self.wall_time = wall if self.wall_time is None else max(self.wall_time, wall)

    def best_val_accuracy(self) -> float | None:
        """As best_val_accuracy() of the whole log."""
        return best_val_accuracy(list(self.epochs.values()))


def _file_signature(path: Path) -> list | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, str(st.st_mtime_ns)]  # a string: the cache's JSON reader reads 19-digit ints as floats


def _signature(run_dir: Path) -> list:
    """What changes when a run folder changes: sizes and times of the files a summary reads (status.json first)."""
    return [_file_signature(run_dir / name) for name in (
        store.STATUS_FILE, store.CONFIG_FILE, store.METRICS_LOG, store.REPORT_FILE,
        store.LEGACY_REPORT_FILE)]


def _mtime_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _events_live(sig: list) -> bool:
    """Whether an event signature's newest file is still recent enough to call its run running."""
    from . import tbreader

    mtimes = [int(entry[1]) for entry in sig[1:] if entry]
    return bool(mtimes) and time.time() - max(mtimes) / 1e9 < tbreader.LIVE_SECONDS


def _event_signature(run_dir: Path) -> list:
    """What changes when a folder of TensorBoard event files changes: its event files' sizes and times."""
    from . import tbreader

    return ["tensorboard", *(_file_signature(path) for path in tbreader.event_files(run_dir))]


class SummaryCache:
    """Summaries of run folders, recomputed only when a run's files change (sizes and mtimes).

    A run that read as running is re-checked by its lock alone (a trainer that died changes no
    file); nothing else is read again. With ``path`` (the user's own cache folder) the summaries
    outlive the process, so `cifar-tui runs` over thousands of runs reads only what changed.
    """

    #: How often a periodic refresh looks at every run's status.json (a resume in another terminal
    #: changes it); in between it re-reads the running runs only, and the whole listing when a run
    #: folder comes or goes (the runs folder's own mtime).
    STATUS_LOOK_EVERY_S = 30.0

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._cache: dict[str, tuple[list, RunSummary]] = {}
        self._changed = False
        # runs folder -> (its mtime_ns, when its status files were last looked at, the keys listed then)
        self._listings: dict[str, tuple[int, float, list[str]]] = {}
        if path is not None:
            self._load(path)

    def list_runs(self, runs_dir: Path, live_only: bool = False, tensorboard: bool = False) -> list[RunSummary]:
        """Every run's summary. ``live_only`` (a periodic refresh): the running runs are re-read; of the
        others only status.json is looked at, every STATUS_LOOK_EVERY_S or when a folder comes or goes;
        their other files wait for the next full listing. ``tensorboard``: the folders of TensorBoard
        event files too (after the run folders; the runs folder itself when its own files are events),
        re-read when their event files change."""
        runs_dir = Path(runs_dir).expanduser()
        listing_key = f"{runs_dir.absolute()}|{tensorboard}"
        mtime = _mtime_ns(runs_dir)
        listing = self._listings.get(listing_key)
        if (live_only and listing is not None and mtime is not None and listing[0] == mtime
                and time.monotonic() - listing[1] < self.STATUS_LOOK_EVERY_S
                and all(key in self._cache for key in listing[2])):
            return [self._running_again(key) for key in listing[2]]
        out = self._list(runs_dir, live_only, tensorboard)
        if mtime is not None:
            self._listings[listing_key] = (mtime, time.monotonic(), [str(s.path.absolute()) for s in out])
        return out

    def _running_again(self, key: str) -> RunSummary:
        """The cached summary of a listed run; one that read as running is checked again."""
        sig, summary = self._cache[key]
        if summary.state != "running":
            return summary
        run_dir = Path(key)
        tensorboard = bool(sig) and sig[0] == "tensorboard"
        return self._summary(key, run_dir, _event_signature(run_dir) if tensorboard else _signature(run_dir))

    def _summary(self, key: str, run_dir: Path, sig: list) -> RunSummary:
        """The run's summary: the cached one while its files' signature holds and, if it read as running,
        its trainer still holds the lock (a TensorBoard run: its newest event file is still recent);
        otherwise read again and cached."""
        tensorboard = bool(sig) and sig[0] == "tensorboard"
        cached = self._cache.get(key)
        if cached is not None and cached[0] == sig and (
                cached[1].state != "running" or (_events_live(sig) if tensorboard else store.lock_held(run_dir))):
            return cached[1]
        summary = summarize_tensorboard_run(run_dir) if tensorboard else summarize_run(run_dir)
        self._cache[key] = (sig, summary)
        self._changed = True
        return summary

    def _list(self, runs_dir: Path, live_only: bool, tensorboard: bool) -> list[RunSummary]:
        out, seen = [], set()
        try:
            entries = sorted((e for e in os.scandir(runs_dir) if e.is_dir()), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            entries = []
        for entry in entries:
            run_dir = Path(entry.path)
            key = str(run_dir.absolute())
            cached = self._cache.get(key)
            if cached is not None and live_only and cached[1].state != "running":
                seen.add(key)
                if _file_signature(run_dir / store.STATUS_FILE) == cached[0][0]:
                    out.append(cached[1])
                    continue
            sig = _signature(run_dir)
            if sig[0] is None and sig[1] is None:
                continue  # no status.json, no config.json: not a run folder
            seen.add(key)
            out.append(self._summary(key, run_dir, sig))
        if tensorboard:
            out += self._tensorboard_runs(runs_dir, seen)
        under = str(Path(runs_dir).expanduser().absolute()) + os.sep
        for gone in [k for k in self._cache if k.startswith(under) and k not in seen]:
            del self._cache[gone]
            self._changed = True
        return out

    def _tensorboard_runs(self, runs_dir: Path, seen: set[str]) -> list[RunSummary]:
        from . import tbreader

        out = []
        for run_dir in tbreader.iter_tensorboard_runs(runs_dir, skip=frozenset(seen)):
            if any((run_dir / name).exists() for name in (store.METRICS_LOG, store.STATUS_FILE,
                                                          store.CONFIG_FILE)):
                continue  # a run folder of ours (listed above) that also holds event files
            key = str(run_dir.absolute())
            seen.add(key)
            out.append(self._summary(key, run_dir, _event_signature(run_dir)))
        return out

    def save(self) -> None:
        """Keep the summaries for the next process; a cache that cannot be written costs only time."""
        if self.path is None or not self._changed:
            return
        data = {"version": _SUMMARY_CACHE_VERSION,
                "runs": {k: [sig, {**s.__dict__, "path": str(s.path)}] for k, (sig, s) in self._cache.items()}}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            store.atomic_write_text(self.path, json.dumps(data))
            self._changed = False
        except OSError:
            pass

    def _load(self, path: Path) -> None:
        data, _ = store.read_json(path)
        if not data or data.get("version") != _SUMMARY_CACHE_VERSION or not isinstance(data.get("runs"), dict):
            return
        for key, entry in data["runs"].items():
            try:
                sig, fields = entry
                self._cache[key] = (sig, RunSummary(**{**fields, "path": Path(fields["path"])}))
            except (TypeError, ValueError, KeyError):
                continue  # an entry of another version: summarised again


_SUMMARY_CACHE_VERSION = 1


def list_runs(runs_dir: Path, tensorboard: bool = False) -> list[RunSummary]:
    """Every run folder in ``runs_dir`` (through the summary cache in the user's cache folder); with
    ``tensorboard``, also its folders of TensorBoard event files."""
    from ..paths import cache_dir

    cache = SummaryCache(cache_dir() / "run-summaries.json")
    runs = cache.list_runs(runs_dir, tensorboard=tensorboard)
    cache.save()
    return runs


def newest_first(runs_dir: Path) -> list[Path]:
    """The run folders, the latest started first (by status.json's started_at, then by name)."""
    def started(run_dir: Path) -> tuple[str, str]:
        return store.read_status(run_dir).started_at or "", run_dir.name

    return sorted(store.iter_run_dirs(runs_dir), key=started, reverse=True)


def runs_with_report(runs_dir: Path) -> list[Path]:
    """Run folders with a test report, newest first (what the evaluate screen can show)."""
    return [run_dir for run_dir in newest_first(runs_dir) if store.has_report(run_dir)]


def latest_run(runs_dir: Path, want: Literal["any", "running", "finished"] = "any") -> Path | None:
    """The newest run folder: 'running' (its process alive), 'finished' (with a test report) or 'any'."""
    for run_dir in newest_first(runs_dir):
        if want == "any":
            return run_dir
        if want == "running" and store.effective_state(store.read_status(run_dir)) == "running":
            return run_dir
        if want == "finished" and store.has_report(run_dir):
            return run_dir
    return None


# --- a live model of one run -------------------------------------------------------------------

PHASE_LABELS = {
    "load_data": "loading data",
    "extract_features": "extracting features",
    "train_head": "stage 1: training the head",
    "fine_tune": "stage 2: fine-tuning",
    "evaluate": "evaluating on the test set",
}

# The batch-loss curve keeps at most this many points (older ones are thinned).
MAX_BATCH_POINTS = 2000
MAX_TELEMETRY = 120  # samples kept: ten minutes at the trainer's five seconds


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
    pid: int | None = None  # the training process that wrote the latest run_start or run_resume
    phase: str | None = None
    phase_message: str = ""
    extract_done: int | None = None
    extract_total: int | None = None
    test_done: int | None = None  # forward passes over the test set (twice the images with flip TTA)
    test_total: int | None = None
    stage: int | None = None
    stages: dict[int, StageInfo] = field(default_factory=dict)
    _epochs: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    batch_points: list[tuple[float, float]] = field(default_factory=list)
    batch: int | None = None
    steps: int | None = None
    batch_epoch: int | None = None
    end: dict[str, Any] | None = None
    last_batch: dict[str, Any] | None = None  # the latest batch record (the alerts' NaN rule reads its loss)
    wall_time: float | None = None
    records_seen: int = 0
    telemetry: list[dict[str, Any]] = field(default_factory=list)  # the latest telemetry samples (tui_cifar.engine.telemetry)
    # per phase ("extract_features", "evaluate", "stage1", "stage2"): (first wall, first count, last wall, last count),
    # counts in images (progress records) or optimizer steps (batch records); each phase's speed from its own records
    _marks: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    # bumped when something the epoch charts / batch chart show changed
    epoch_version: int = 0
    batch_version: int = 0
    _wall_seen_at: float | None = None
    _derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # see _per_epochs
    _derived_version: int = field(default=-1, repr=False, compare=False)

    # ---------------------------------------------------------------- feeding
    def feed(self, records: list[dict[str, Any]]) -> None:
        for rec in records:
            self._feed_one(rec)

    def _mark(self, phase: str, wall: float | None, count: float) -> None:
        if wall is None:
            return
        first = self._marks.get(phase)
        if first is None or count < first[3]:  # a resumed phase starts counting again
            self._marks[phase] = (wall, count, wall, count)
        else:
            self._marks[phase] = (first[0], first[1], wall, count)

    def _feed_one(self, rec: dict[str, Any]) -> None:
        self.records_seen += 1
        kind = rec.get("type")
        wall = record_number(rec.get("wall_time"))
        if wall is not None:
            self.wall_time = wall
            self._wall_seen_at = time.monotonic()
        if kind in ("run_start", "run_resume"):
            if isinstance(rec.get("config"), dict):
                self.config = rec["config"]
            self.device = rec.get("device") or self.device
            self.pid = record_count(rec.get("pid")) or None
            # A resumed run goes on in the same log: the earlier stop's end, phase and batch no longer hold.
            self.end = None
            self.phase, self.phase_message = None, ""
            self.batch = self.batch_epoch = None
        elif kind == "phase":
            self.phase = rec.get("phase")
            self.phase_message = str(rec.get("message") or "")
            if self.phase == "train_head":
                self.stage = 1
            elif self.phase == "fine_tune":
                self.stage = 2
        elif kind == "progress":
            done, total = record_count(rec.get("done")) or 0, record_count(rec.get("total")) or None
            if rec.get("phase", "extract_features") == "extract_features":
                self.extract_done, self.extract_total = done, total
                self._mark("extract_features", wall, done)
            elif rec.get("phase") == "evaluate":
                self.test_done, self.test_total = done, total
                self._mark("evaluate", wall, done)
        elif kind == "stage_start":
            stage = record_count(rec.get("stage")) or 1
            self.stage = stage
            self.stages[stage] = StageInfo(
                stage=stage,
                epochs=record_count(rec.get("epochs")) or 0,
                steps_per_epoch=record_count(rec.get("steps_per_epoch")) or None,
                lr=record_number(rec.get("lr")),
                trainable_params=record_count(rec.get("trainable_params")) or None,
            )
            self.batch = None
            self.steps = self.stages[stage].steps_per_epoch
            self.epoch_version += 1  # the stage boundary moves
        elif kind == "batch":
            stage = record_count(rec.get("stage")) or self.stage or 1
            epoch = record_count(rec.get("epoch")) or 1
            self.stage = stage
            self.batch = record_count(rec.get("batch")) or 0
            self.steps = record_count(rec.get("steps")) or self.steps
            self.batch_epoch = epoch
            self.last_batch = rec
            loss = record_number(rec.get("loss"))
            if self.steps:
                self._mark(f"stage{stage}", wall, (epoch - 1) * self.steps + self.batch)
            if loss is not None and self.steps:
                x = self.epoch_offset(stage) + (epoch - 1) + self.batch / self.steps
                self.batch_points.append((x, loss))
                if len(self.batch_points) > MAX_BATCH_POINTS:
                    self.batch_points = self.batch_points[::2]
                self.batch_version += 1
        elif kind == "epoch":
            stage, _epoch = key = epoch_key(rec)
            self.stage = stage
            self._epochs[key] = rec
            epochs = record_count(rec.get("epochs"))
            if epochs and stage not in self.stages:
                self.stages[stage] = StageInfo(stage=stage, epochs=epochs)
            self.epoch_version += 1
        elif kind == "run_end":
            self.end = rec
        elif kind == "telemetry":
            self.telemetry.append(rec)
            del self.telemetry[:-MAX_TELEMETRY]

    # ---------------------------------------------------------------- derived
    def _per_epochs(self, name: str, compute: Callable[[], Any]) -> Any:
        """What the epochs give, computed once per epoch_version: the Train screen asks on every poll, and a
        TensorBoard run can log hundreds of thousands of steps."""
        if self._derived_version != self.epoch_version:
            self._derived.clear()
            self._derived_version = self.epoch_version
        if name not in self._derived:
            self._derived[name] = compute()
        return self._derived[name]

    @property
    def epochs(self) -> list[dict[str, Any]]:
        return self._per_epochs("epochs", lambda: [self._epochs[k] for k in sorted(self._epochs)])

    def stage_epochs_done(self, stage: int) -> int:
        return self._per_epochs(f"stage{stage}_epochs", lambda: sum(1 for (s, _e) in self._epochs if s == stage))

    def planned_epochs(self, stage: int) -> int:
        """Epochs planned for a stage: as announced, from the config, or 0."""
        info = self.stages.get(stage)
        if info is not None and info.epochs is not None:
            planned = info.epochs
        else:
            planned = record_count(self.config.get("epochs_head" if stage == 1 else "epochs_fine")) or 0
        # A stage that has ended early (early stopping) counts as the epochs it ran.
        if stage == 1 and (2 in self.stages or self.stage == 2):
            return self.stage_epochs_done(1)
        if self.end is not None and self.end.get("state") == "finished":
            return self.stage_epochs_done(stage)  # a finished run's stage that stopped early ran what it ran
        return max(planned, self.stage_epochs_done(stage))  # a stopped run still has its planned epochs to go

    def epoch_offset(self, stage: int) -> int:
        """Global epoch number before the first epoch of `stage` (stage 2 continues after stage 1)."""
        return self.stage_epochs_done(1) if stage == 2 else 0

    @property
    def stage_boundary(self) -> float | None:
        """x position of the stage 1 / stage 2 boundary on the epoch charts, once stage 2 started."""
        if 2 in self.stages or any(s == 2 for (s, _e) in self._epochs):
            return self.stage_epochs_done(1) + 0.5
        return None

    @property
    def metric_names(self) -> list[str]:
        """The training metrics the epochs carry besides the loss ("accuracy", "auc"...), first seen first."""
        return self._per_epochs("metric_names", lambda: epoch_metric_names(self.epochs))

    @property
    def main_metric(self) -> str | None:
        """The metric the second chart shows: accuracy when the run has it, else its first metric."""
        names = self.metric_names
        return "accuracy" if "accuracy" in names else (names[0] if names else None)

    def chart_metric(self, picked: str | None = None) -> str:
        """The metric of the second chart: the one ``picked`` (if the run logs it, or logs nothing yet), else
        the main one."""
        logged = self.logged_metrics
        if picked and (picked in logged or not logged):
            return picked
        return self.main_metric or "accuracy"

    @property
    def logged_metrics(self) -> list[str]:
        """Every metric the epochs carry, val_ ones included, first seen first (for the metric picker)."""
        def logged() -> list[str]:
            names: dict[str, None] = {}
            for rec in self.epochs:
                for key, value in rec.items():
                    if key not in EPOCH_BOOKKEEPING and record_number(value) is not None:
                        names.setdefault(key, None)
            return list(names)

        return self._per_epochs("logged_metrics", logged)

    def epoch_x(self, rec: dict[str, Any], axis: str = "epoch") -> float | None:
        """An epoch record's place on the x axis: global epoch, optimizer step, or wall time in seconds."""
        stage = int(record_number(rec.get("stage")) or 1)
        epoch = int(record_number(rec.get("epoch")) or 0)
        if axis == "wall time":
            return record_number(rec.get("wall_time"))
        if axis == "step":
            if record_number(rec.get("step")) is not None:  # a TensorBoard run's own step
                return record_number(rec.get("step"))
            steps = lambda s: (self.stages[s].steps_per_epoch if s in self.stages else None) or 0
            before = self.stage_epochs_done(1) * steps(1) if stage == 2 else 0
            return float(before + epoch * steps(stage)) if steps(stage) else None
        return float(self.epoch_offset(stage) + epoch)

    def epoch_series(self, names: list[str] | None = None, axis: str = "epoch") -> dict[str, list[tuple[float, float]]]:
        """Series of each metric and its val_ twin (default: loss and accuracy) over the x ``axis``
        (curves.X_AXES: "epoch", the global epoch; "step"; "wall time", seconds)."""
        names = names or ["loss", "accuracy"]
        series: dict[str, list[tuple[float, float]]] = {
            key: [] for name in names for key in (name, f"val_{name}")}
        for rec in self.epochs:
            x = self.epoch_x(rec, axis)
            if x is None:
                continue
            for key in series:
                value = record_number(rec.get(key))
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
        return self._per_epochs("best_val_accuracy", lambda: best_val_accuracy(self.epochs))

    @property
    def lr(self) -> float | None:
        last = self.last_epoch
        if last is not None and self.stage == epoch_key(last)[0] and record_number(last.get("lr")) is not None:
            return record_number(last.get("lr"))
        info = self.stages.get(self.stage or 0)
        return info.lr if info else None

    @property
    def images_per_sec(self) -> float | None:
        """The speed of the phase running now (speed()); once the run ended, its last epoch's."""
        if self.end is None:
            return self.speed()[1]
        last = self.last_epoch
        return record_number(last.get("images_per_sec")) if last else None

    def _batch_size(self, stage: int) -> float | None:
        cfg = self.config or {}
        size = record_number(cfg.get("head_batch_size")) if stage == 1 else None
        return size or record_number(cfg.get("batch_size"))

    def _rate(self, phase: str) -> float | None:
        """Units (images, or optimizer steps) per second over a phase's own records."""
        mark = self._marks.get(phase)
        if mark is None or mark[2] <= mark[0] or mark[3] <= mark[1]:
            return None
        return (mark[3] - mark[1]) / (mark[2] - mark[0])

    def speed(self) -> tuple[str, float | None, float | None]:
        """(phase, images/s, seconds left in it) for the phase running now, each from that phase's own records.

        Feature extraction and the test report from their progress records; a training stage from its
        epochs' images/s and times, or, in its first epoch, from its batch records, never from the stage before.
        """
        if self.end is not None:
            return "", None, None
        if self.phase in ("load_data", "extract_features") and not self._epochs and self.extract_total:
            rate = self._rate("extract_features")
            left = self.extract_total - (self.extract_done or 0)
            return "features", rate, (left / rate if rate else None)
        if self.phase == "evaluate" and self.test_total:
            rate = self._rate("evaluate")
            left = self.test_total - (self.test_done or 0)
            return "test set", rate, (left / rate if rate else None)
        if self.stage is None:
            return "", None, None
        stage = self.stage
        label = f"stage {stage}" if self.config.get("kind") is None else "training"
        epochs = [r for r in self.epochs if int(r.get("stage", 0)) == stage]
        ips = record_number(epochs[-1].get("images_per_sec")) if epochs else None
        step_rate = self._rate(f"stage{stage}")
        batch_size = self._batch_size(stage)
        if ips is None and step_rate and batch_size:
            ips = step_rate * batch_size
        return label, ips, self.stage_eta(stage, step_rate)

    def stage_eta(self, stage: int, step_rate: float | None = None) -> float | None:
        """Seconds left in a stage: its own mean epoch time x its epochs left, else its batch rate."""
        times = [t for r in self.epochs if int(r.get("stage", 0)) == stage
                 and (t := record_number(r.get("epoch_time")))]
        left = self.planned_epochs(stage) - self.stage_epochs_done(stage)
        partly = (self.batch / self.steps if self.batch is not None and self.steps and self.batch_epoch is not None
                  and self.stage == stage and (stage, self.batch_epoch) not in self._epochs else 0.0)
        if times:
            per_epoch = sum(times[-3:]) / len(times[-3:])
            return max(0.0, (left - partly) * per_epoch)
        step_rate = step_rate or self._rate(f"stage{stage}")
        if step_rate and self.steps:
            return max(0.0, (left - partly) * self.steps / step_rate)
        return None

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
        times = [t for r in self.epochs if epoch_key(r)[0] == stage if (t := record_number(r.get("epoch_time")))]
        if not times:  # a stage's first epoch: its own batches' pace, never the stage before's epochs
            return self.stage_eta(stage)
        per_epoch = sum(times[-3:]) / len(times[-3:])
        left: float = self.epochs_total - self.epochs_done
        if self.batch is not None and self.steps and self.batch_epoch is not None:
            # the current epoch is partly done
            if (stage, self.batch_epoch) not in self._epochs:
                left -= self.batch / self.steps
        return max(0.0, left * per_epoch)

    def elapsed(self, running: bool = True) -> float | None:
        """Seconds since the run started, extrapolated from the last record while it is ``running`` (a killed
        run, or a TensorBoard run whose files stopped growing, has no end record: its clock stops too)."""
        if self.wall_time is None:
            return None
        if running and self.end is None and self._wall_seen_at is not None:
            return self.wall_time + (time.monotonic() - self._wall_seen_at)
        return self.wall_time

    def phase_label(self) -> str:
        if self.end is not None:
            return f"run {self.end.get('state', 'ended')}"
        return PHASE_LABELS.get(self.phase or "", self.phase or "starting")


def watched_state(status: store.RunStatus | None, progress: RunProgress) -> ShownState:
    """A watched run's state: status.json's, as the runs list reads it; the log's run_end only while status.json
    still says running and no other live process has taken the run up since (a resume starting).

    A run whose process died reads "killed" here as in the list, even after the run_end of an earlier attempt.
    """
    state: ShownState = store.effective_state(status) if status else "unknown"
    end = progress.end
    resumed = (status is not None and state == "running" and progress.pid is not None
               and status.pid != progress.pid)
    if end is not None and state in ("running", "unknown") and not resumed:
        ended = end.get("state")
        if ended in SHOWN_STATES:
            state = ended
        if state == "running":  # a run_end record always ends the run
            state = "finished"
    return state


def end_banner(state: str, progress: RunProgress, run_dir: Path) -> str:
    """What to tell someone watching a run that ended: how, its test accuracy, and what they can do next."""
    end = progress.end or {}
    acc = end.get("test_accuracy")
    parts = [f"Run {state}."]
    if state == "killed":
        parts = ["The training process is gone without a final record (killed?)."]
        if (run_dir / store.BACKUP_DIR).exists():
            parts.append(f"Resume it with R (or: cifar-tui train --resume {run_dir}).")
    message = str(end.get("message") or "").strip()
    shown_below = isinstance(acc, (int, float)) and message.lower().startswith("test accuracy")
    if message and not shown_below and message.lower() not in ("done", "finished", state):
        parts.append(message if message.endswith(".") else message + ".")
    if isinstance(acc, (int, float)):
        parts.append(f"Test accuracy {100 * acc:.2f}%.")
    if store.has_report(run_dir):
        parts.append("Press e to evaluate.")
    return " ".join(parts)


def read_progress(run_dir: Path) -> tuple[RunProgress, list[str]]:
    """A finished (or paused) run's progress at once, with the problems met reading its log
    (or its TensorBoard event files)."""
    if is_tensorboard_dir(run_dir):
        from . import tbreader

        records, problems = tbreader.read_records(run_dir)
    else:
        records, problems = store.read_metrics(run_dir)
    progress = RunProgress()
    progress.feed(records)
    return progress, problems


# --- following a run's text log -----------------------------------------------------------------


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
    """Follows train.log: its last lines at first, then the whole new lines of each poll (store.LineTail)."""

    def __init__(self, path: Path, initial_lines: int = 200):
        self.tail = store.LineTail(Path(path))
        self.initial_lines = initial_lines
        self.started = False

    def read_new(self) -> list[str]:
        if not self.started:
            self.started = True
            lines, self.tail.offset = tail_lines(self.tail.path, self.initial_lines)
            return [_strip_cr(line) for line in lines]
        return [_strip_cr(line.decode("utf-8", errors="replace")) for line in self.tail.read_lines()]


def _strip_cr(line: str) -> str:
    # progress bars in a captured log rewrite themselves with \r: keep the last state
    return line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r")
