"""The run-folder contract in code: what status.json, config.json, report.json, predictions.npz and each
metrics.jsonl record hold.

Writers (training, callbacks, the logger) build every record with the constructor of its kind here;
readers (the store's readers and tails, reader, console, rows, tbexport, estimate, the app) get
files and records through the one decoder here. A run folder may come from anyone: the decoder bounds
size, nesting and numbers (files.loads), checks each declared field's type, and turns anything malformed into a
one-line reason ("config.json is unreadable (nested more than 32 levels deep)"), never an exception,
so one bad folder leaves every other run alone. No TensorFlow and no Textual here.
"""

from __future__ import annotations

import math
import types
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    NotRequired,
    TypedDict,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

from ..files import Malformed, atomic_write, loads, read_json

if TYPE_CHECKING:
    import numpy as np  # only predictions.npz needs it: listing runs stays light

# --- states -----------------------------------------------------------------------------------------

RunState = Literal["running", "finished", "stopped", "failed"]  # what status.json and a run_end record say
# What a reader shows: "killed" is a running status whose process is gone; "unknown" an unreadable status.
ShownState = Literal[RunState, "killed", "unknown"]
STATES: tuple[RunState, ...] = get_args(RunState)
SHOWN_STATES: tuple[ShownState, ...] = get_args(ShownState)
ENDED_STATES: tuple[ShownState, ...] = tuple(s for s in SHOWN_STATES if s not in ("running", "unknown"))
RESUMABLE_STATES: tuple[ShownState, ...] = ("stopped", "killed")  # `train --resume` continues these

# --- field types the decoder checks (beyond the plain JSON ones) -------------------------------------

Count = Annotated[int, "count"]  # a whole number from 0 to 2**53
Pid = Annotated[int, "pid"]  # a process id the kernel could hold: 1 to 2**31 - 1
Finite = Annotated[float, "finite"]  # a finite number (seconds, rates, learning rates)
Metric = float | None  # what a model logged: NaN and infinity say it diverged

MAX_COUNT = 2**53
MAX_PID = 2**31 - 1
MAX_LINE_BYTES = 2**20  # one metrics.jsonl record (an epoch record is ~1 KB)

# The one definition of what in a batch or epoch record is not a metric the model logged:
# where the record is (never a chart or a scalar), and what the trainer measured of the run
# (TensorBoard gets these as scalars, as Keras' TensorBoard callback logs the learning rate).
POSITION_KEYS = frozenset({"type", "stage", "epoch", "epochs", "batch", "steps", "wall_time", "time", "partial",
                           "memory"})
RUN_MEASURES = frozenset({"lr", "learning_rate", "images_per_sec", "epoch_time"})
BOOKKEEPING_KEYS = POSITION_KEYS | RUN_MEASURES


# --- the records of metrics.jsonl --------------------------------------------------------------------

class _Record(TypedDict, total=False):
    time: str  # ISO time, added by the writer
    wall_time: Finite  # seconds since the run started, continued across resumes


class RunStartRecord(_Record):
    type: Literal["run_start", "run_resume"]
    config: dict[str, Any]
    device: str
    versions: NotRequired[dict[str, Any]]
    pid: Pid


class PhaseRecord(_Record):
    type: Literal["phase"]
    phase: str
    message: str


class DataRecord(_Record):
    type: Literal["data"]
    source: str
    train: Count
    val: Count
    test: Count


class ProgressRecord(_Record):
    type: Literal["progress"]
    phase: str
    done: Count
    total: Count


class FeaturesDoneRecord(_Record):
    type: Literal["features_done"]
    images: Count
    seconds: Finite
    cache_hits: Count
    runtime: str | None
    runtime_note: str | None
    cache_keys: list[str]
    images_per_sec: Finite | None


class StageStartRecord(_Record):
    type: Literal["stage_start"]
    stage: Count
    epochs: Count | None
    steps_per_epoch: Count | None
    lr: Finite | None
    trainable_params: Count | None


class BatchRecord(_Record):
    """Plus one key per metric the model logged (loss, accuracy, auc…), each a Metric."""

    type: Literal["batch"]
    stage: Count
    epoch: Count
    batch: Count
    steps: Count | None


class EpochRecord(_Record):
    """Plus one key per metric the model logged (loss, val_loss, accuracy, val_accuracy…), each a Metric."""

    type: Literal["epoch"]
    stage: Count
    epoch: Count
    epochs: Count | None
    lr: Finite | None
    images_per_sec: Finite | None
    epoch_time: Finite
    partial: bool
    memory: dict[str, Any] | None


class StageEndRecord(_Record):
    type: Literal["stage_end"]
    stage: Count
    seconds: Finite


class RunEndRecord(_Record):
    type: Literal["run_end"]
    state: RunState
    message: str
    test_accuracy: NotRequired[Finite | None]


class GpuSample(TypedDict, total=False):
    index: Count
    name: str
    util: Finite | None  # percent busy
    mem_used: Count | None  # bytes
    mem_total: Count | None
    power_w: Finite | None


class TelemetryRecord(_Record):
    """Where the time goes, every few seconds (tui_cifar.engine.telemetry): this process's CPU and memory, each GPU's use."""

    type: Literal["telemetry"]
    cpu_pct: Finite | None  # CPU time over wall time, 100 = one core
    cpus: Count | None
    rss: Count | None  # bytes
    gpus: NotRequired[list[GpuSample]]
    gpu_problem: NotRequired[str]  # "no GPU telemetry (...)" instead of gpus


Record = (RunStartRecord | PhaseRecord | DataRecord | ProgressRecord | FeaturesDoneRecord | StageStartRecord
          | BatchRecord | EpochRecord | StageEndRecord | RunEndRecord | TelemetryRecord)
RECORD_TYPES: dict[str, type] = {kind: cls for cls in get_args(Record) for kind in get_args(get_type_hints(cls)["type"])}


def run_start_record(config: dict[str, Any], device: str, pid: int, resume: bool = False,
                     versions: dict[str, Any] | None = None) -> RunStartRecord:
    rec = RunStartRecord(type="run_resume" if resume else "run_start", config=config, device=device, pid=pid)
    if versions is not None:
        rec["versions"] = versions
    return rec


def phase_record(phase: str, message: str) -> PhaseRecord:
    return PhaseRecord(type="phase", phase=phase, message=message)


def data_record(source: str, train: int, val: int, test: int) -> DataRecord:
    return DataRecord(type="data", source=source, train=train, val=val, test=test)


def progress_record(phase: str, done: int, total: int) -> ProgressRecord:
    return ProgressRecord(type="progress", phase=phase, done=done, total=total)


def features_done_record(images: int, seconds: float, cache_hits: int, runtime: str | None, runtime_note: str | None,
                         cache_keys: list[str], images_per_sec: float | None) -> FeaturesDoneRecord:
    return FeaturesDoneRecord(type="features_done", images=images, seconds=seconds, cache_hits=cache_hits,
                              runtime=runtime, runtime_note=runtime_note, cache_keys=cache_keys,
                              images_per_sec=images_per_sec)


def stage_start_record(stage: int, epochs: int | None, steps_per_epoch: int | None, lr: float | None,
                       trainable_params: int | None) -> StageStartRecord:
    return StageStartRecord(type="stage_start", stage=stage, epochs=epochs, steps_per_epoch=steps_per_epoch, lr=lr,
                            trainable_params=trainable_params)


def batch_record(metrics: dict[str, float | None], stage: int, epoch: int, batch: int, steps: int | None,
                 wall_time: float | None = None) -> BatchRecord:
    """A batch's record: the metrics Keras logged first, then where it is (which wins over a clashing metric)."""
    rec: dict[str, Any] = {**metrics, "type": "batch", "stage": stage, "epoch": epoch, "batch": batch,
                           "steps": steps}
    if wall_time is not None:
        rec["wall_time"] = wall_time
    return rec  # type: ignore[return-value]  # the metrics are the keys a TypedDict cannot declare


def epoch_record(metrics: dict[str, float | None], stage: int, epoch: int, epochs: int | None, lr: float | None,
                 images_per_sec: float | None, epoch_time: float, partial: bool, memory: dict[str, Any] | None,
                 wall_time: float | None = None) -> EpochRecord:
    rec: dict[str, Any] = {**metrics, "type": "epoch", "stage": stage, "epoch": epoch,
                           "epochs": epochs, "lr": lr, "images_per_sec": images_per_sec, "epoch_time": epoch_time}
    if wall_time is not None:
        rec["wall_time"] = wall_time
    rec |= {"partial": partial, "memory": memory}
    return rec  # type: ignore[return-value]


def stage_end_record(stage: int, seconds: float) -> StageEndRecord:
    return StageEndRecord(type="stage_end", stage=stage, seconds=seconds)


def run_end_record(state: RunState, message: str, wall_time: float) -> RunEndRecord:
    """The trainer's runs add ``test_accuracy`` (None without a report)."""
    return RunEndRecord(type="run_end", state=state, message=message, wall_time=wall_time)


def telemetry_record(cpu_pct: float | None, cpus: int | None, rss: int | None,
                     gpus: list[GpuSample] | None = None, gpu_problem: str | None = None) -> TelemetryRecord:
    """A telemetry sample: each GPU's use, or why there is none (``gpu_problem``)."""
    rec = TelemetryRecord(type="telemetry", cpu_pct=cpu_pct, cpus=cpus, rss=rss)
    if gpus is not None:
        rec["gpus"] = gpus
    if gpu_problem is not None:
        rec["gpu_problem"] = gpu_problem
    return rec


def scalar_items(rec: dict[str, Any], leave_out: frozenset[str] = POSITION_KEYS) -> dict[str, float]:
    """The numbers of a batch or epoch record other than its position (the model's metrics and the trainer's
    measures), as floats, finite or not; ``leave_out=BOOKKEEPING_KEYS`` for the model's metrics only."""
    return {k: float(v) for k, v in rec.items()
            if k not in leave_out and isinstance(v, (int, float)) and not isinstance(v, bool)}


# --- the other files -----------------------------------------------------------------------------------

class StatusFile(TypedDict, total=False):
    state: RunState
    pid: Pid | None
    host: str | None
    started_at: str | None
    updated_at: str | None
    message: str
    stage: Count | None
    version: Count


class ConfigFields(TypedDict, total=False):
    """The fields of config.json that readers use directly (a TrainConfig's, or RunLogger's for a Keras run)."""

    kind: str
    backbone: str
    image_size: Count
    model: str
    epochs_head: Count
    epochs_fine: Count
    tta_flip: bool


class ClassRow(TypedDict, total=False):
    precision: Finite
    recall: Finite
    f1: Finite
    support: Count
    roc_auc: Finite | None


class Curve(TypedDict):
    fpr: list[Finite]
    tpr: list[Finite]


class Confusion(TypedDict):
    true: str
    predicted: str
    count: Count


class TestReport(TypedDict, total=False):
    """report.json (metrics.json in earlier versions), as evaluation.report_from_probabilities writes it."""

    test_accuracy: Finite
    test_loss: Finite
    num_test: Count
    classes: list[str]
    per_class: dict[str, ClassRow]
    macro_avg: ClassRow
    weighted_avg: ClassRow
    macro_roc_auc: Finite | None
    confusion_matrix: list[list[Count]]
    roc_curves: dict[str, Curve]
    most_confused: list[Confusion]
    tta_flip: bool
    runtime: str | None
    evaluation_seconds: Finite
    best_val_accuracy: Finite | None
    stage_times: dict[str, Finite]
    wall_time: Finite | None


class Predictions(TypedDict):
    """predictions.npz: the test-set probabilities behind the report, and y_pred read from them."""

    y_true: np.ndarray
    y_prob: np.ndarray
    test_index: np.ndarray
    y_pred: np.ndarray


# --- the decoder -------------------------------------------------------------------------------------

def invalid_fields(data: dict[str, Any], schema: type) -> list[str]:
    """The fields of ``data`` that ``schema`` (a TypedDict) declares and that do not have its type."""
    hints = get_type_hints(schema, include_extras=True)
    return [key for key, tp in hints.items() if key in data and not _fits(data[key], tp)]


def read_typed(path: Path, schema: type) -> tuple[dict[str, Any] | None, str | None]:
    """A run file checked against its schema: None and "NAME is unreadable (invalid FIELD, …)" when a field is off."""
    data, problem = read_json(path)
    if data is None:
        return None, problem
    bad = invalid_fields(data, schema)
    if bad:
        return None, f"{Path(path).name} is unreadable (invalid {', '.join(bad)})"
    return data, None


def read_config(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    return read_typed(path, ConfigFields)


def read_report(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """report.json checked field by field: its figures reach charts, TensorBoard and the notify hook."""
    report, problem = read_typed(path, TestReport)
    if report is not None:
        cm, classes = report.get("confusion_matrix"), report.get("classes")
        if cm is not None and (any(len(row) != len(cm) for row in cm) or (classes is not None and len(classes) != len(cm))):
            return None, f"{Path(path).name} is unreadable (the confusion matrix is not classes x classes)"
    return report, problem


class WrongFields(Malformed):
    """A record that is valid JSON but whose declared fields have the wrong types (the message names them)."""


def decode_record(value: Any) -> dict[str, Any]:
    """A metrics.jsonl record checked against its kind's fields (a Record, or one of a kind this version
    does not know), as a plain dict for the readers; raises Malformed with the reason.

    A kind this version does not know (a newer writer's), or none, passes as it is: readers ignore it.
    """
    if not isinstance(value, dict):
        raise Malformed("not an object")
    kind = value.get("type")
    if kind is not None and not isinstance(kind, str):
        raise WrongFields("record whose type is not a string")
    schema = RECORD_TYPES.get(kind) if kind is not None else None
    bad = invalid_fields(value, schema) if schema is not None else []
    if bad:
        raise WrongFields(f"{kind} record with invalid {', '.join(bad)}")
    return value


def decode_line(line: bytes) -> dict[str, Any]:
    """One metrics.jsonl line as a record; raises Malformed."""
    return decode_record(loads(line, MAX_LINE_BYTES))


def read_predictions(path: Path, rows: int | None = None) -> tuple[Predictions | None, str | None]:
    """predictions.npz as arrays (never pickles), or None and why not; ``rows``: the report's num_test."""
    import numpy as np

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            y_true, y_prob, index = (np.asarray(data[k]) for k in ("y_true", "y_prob", "test_index"))
        if not (y_true.ndim == 1 and y_prob.ndim == 2 and index.ndim == 1 and y_prob.shape[1] > 0):
            raise ValueError("y_true, y_prob and test_index have the wrong shapes")
        if not (len(y_true) == len(y_prob) == len(index)):
            raise ValueError("y_true, y_prob and test_index differ in length")
        if rows is not None and len(y_true) != rows:
            raise ValueError(f"{len(y_true)} rows for a report of {rows} test images")
        if not (np.issubdtype(y_true.dtype, np.integer) and np.issubdtype(index.dtype, np.integer)
                and np.issubdtype(y_prob.dtype, np.floating)):
            raise ValueError("y_true, y_prob and test_index have the wrong types")
        return Predictions(y_true=y_true, y_prob=y_prob, test_index=index, y_pred=y_prob.argmax(axis=1)), None
    except FileNotFoundError:
        return None, f"{path.name} is missing"
    except Exception as exc:  # noqa: BLE001  a garbled zip, a missing array, a pickle refused: say so, never raise
        return None, f"{path.name} is unreadable ({exc})"


def write_predictions(path: Path, y_true: np.ndarray, y_prob: np.ndarray, test_index: np.ndarray) -> None:
    import numpy as np

    atomic_write(Path(path), lambda tmp: np.savez_compressed(
        tmp, y_true=y_true, y_prob=y_prob.astype(np.float32), test_index=test_index))


def _fits(value: Any, tp: Any) -> bool:
    """Whether a JSON value has the declared type (bool is never a number; counts and pids are bounded)."""
    if tp is Any:
        return True
    origin = get_origin(tp)
    if origin is Annotated:
        base, tag = get_args(tp)[:2]
        if not _fits(value, base):
            return False
        if tag == "count":
            return 0 <= value <= MAX_COUNT
        if tag == "pid":
            return 1 <= value <= MAX_PID
        return math.isfinite(value)  # "finite"
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg) for arg in get_args(tp))
    if origin is Literal:
        return isinstance(value, str) and value in get_args(tp)
    if origin is NotRequired:
        return _fits(value, get_args(tp)[0])
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = get_args(tp)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if origin is dict or tp is dict:
        args = get_args(tp)
        return isinstance(value, dict) and (not args or all(_fits(v, args[1]) for v in value.values()))
    if is_typeddict(tp):
        return isinstance(value, dict) and not invalid_fields(value, tp) and all(k in value for k in tp.__required_keys__)
    raise TypeError(f"records cannot check {tp!r}")
