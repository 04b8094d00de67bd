"""Sweeps over training settings: an Optuna study whose every trial is an ordinary run folder.

The search space is declared on top of the settings' own declarations (``config.SETTINGS``: ranges,
choices, types), so a space can only hold values `cifar-tui train` accepts. Trials are selected on
validation accuracy only: a trial's run ends before its test report, and ``finish`` scores the winner
on the test set once. Each epoch's validation accuracy is reported to the trial, so a pruner can stop a
poor trial after any epoch (through the run's own stop request: the run ends cleanly, "stopped").

Storage: an SQLite file in the runs folder by default (no server; Optuna's RDB storage, which is the one
with heartbeats, so a killed worker's trial is failed and retried even on one machine), or any URL
Optuna accepts (``postgresql://...``) for workers on several machines. Every trial records its host,
worker, run folder and settings as user attributes, so a machine that cannot see another's run
folders still sees every trial, and optuna-dashboard shows them unchanged.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from .config import SETTING_BY_NAME, ConfigError, TrainConfig, load_config_file, make_config
from .runs import store

DEFAULT_STUDY = "cifar-tui"
STORAGE_FILE = "sweep.db"  # in the runs folder

# The default search space: the settings that matter most for accuracy against time (see the README's
# "Sweeps"), each within its declared range. A --space file replaces entries; --set fixes a setting.
DEFAULT_SPACE: dict[str, Any] = {
    "image_size": {"low": 96, "high": 224, "step": 32},
    "fine_tune_blocks": {"low": 1, "high": 6},
    "epochs_fine": {"low": 2, "high": 8},
    "lr_fine": {"low": 1e-4, "high": 2e-3, "log": True},
    "dropout": {"low": 0.1, "high": 0.5},
    "label_smoothing": {"low": 0.0, "high": 0.2},
    "augment": {"choices": [False, True]},
}

# Settings that say where and on what a worker runs, not what is trained: they may differ between the
# machines of one study, and are never part of its signature.
MACHINE_SETTINGS = ("data_dir", "runs_dir", "cache_dir", "devices", "runtime")

# Pruners on offer, given the trials' stage-1 epochs (the steps before fine-tuning). The default was chosen by
# replaying 15 unpruned trials on real CIFAR-10 (bench/pruner_replay.py, bench/pruner_replay.json): the median
# rule from the last stage-1 epoch on (warm-up: the stage-1 epochs) kept the best trial and ran 80% of the
# epoch-seconds; from step 1 it pruned the best trial (stage-1 accuracy says little about where fine-tuning
# ends); Hyperband kept it too, at 72%, 88% and 81% in three replays (its brackets vary), and splits few trials into
# brackets that compare only among themselves.
PRUNERS: dict[str, Callable[[int], optuna.pruners.BasePruner]] = {
    "median": lambda stage1: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=stage1),
    "hyperband": lambda stage1: optuna.pruners.HyperbandPruner(min_resource=1),
    "none": lambda stage1: optuna.pruners.NopPruner(),
}
DEFAULT_PRUNER = "median"

# Heartbeat: a worker's running trial is marked failed (and retried) when its worker has been silent
# for twice this long.
DEFAULT_HEARTBEAT_S = 60
MAX_RETRY = 2

# Study user attributes: what the study was started with (a rerun must ask for the same), and the winner's test score.
SPACE_ATTR, FIXED_ATTR, FINISHED_ATTR = "cifar_tui_space", "cifar_tui_fixed", "cifar_tui_finished"
# Trial user attributes.
HOST_ATTR, WORKER_ATTR, RUN_ATTR, SETTINGS_ATTR, MESSAGE_ATTR = "host", "worker", "run_dir", "settings", "message"
STOPPED_BY = "the sweep's pruner"


class SweepStopped(Exception):
    """The user stopped the sweep (Ctrl-C, SIGTERM): its trial is marked failed and the worker ends."""


class TrialRunFailed(Exception):
    """A trial's run failed (e.g. its loss diverged): the trial is failed, the sweep goes on."""


# -- the search space ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    """One searched setting: a range (low, high, step, log) or a list of choices."""

    name: str
    low: float = 0.0  # low, high: unused with choices
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        if SETTING_BY_NAME[self.name].kind in ("int", "blocks"):
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def describe(self) -> str:
        if self.choices:
            return "{" + ", ".join(json.dumps(c) for c in self.choices) + "}"
        return f"{self.low:g}..{self.high:g}" + (f" step {self.step:g}" if self.step else "") + (" log" if self.log else "")

    def to_json(self) -> dict[str, Any]:
        if self.choices:
            return {"choices": list(self.choices)}
        # A low of 0 is left out, as the bench studies recorded it (a rerun compares this form).
        return {k: v for k, v in (("low", self.low), ("high", self.high), ("step", self.step), ("log", self.log)) if v}


def _dimension(name: str, entry: Any) -> Dimension:
    """A Dimension from a space entry, checked against the setting's declaration; a ConfigError names the problem."""
    s = SETTING_BY_NAME.get(name)
    if s is None:
        raise ConfigError(f"unknown setting {name!r} in the search space")
    if name in MACHINE_SETTINGS:
        raise ConfigError(f"{name} says where a worker runs, not what it trains: fix it with --set, not in the space")
    if isinstance(entry, list):
        entry = {"choices": entry}
    if not isinstance(entry, dict) or not (set(entry) <= {"low", "high", "step", "log", "choices"}):
        raise ConfigError(f"{name}: a space entry is a value, a list of choices or {{low, high[, step, log]}}, "
                          f"not {entry!r}")
    if "choices" in entry:
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{name}: choices must be a non-empty list")
        for value in choices:
            make_config({name: value})  # each choice must be a value `train` accepts
        return Dimension(name, choices=tuple(choices))
    if s.kind not in ("int", "float", "blocks"):
        raise ConfigError(f"{name} is not a number: give it choices, e.g. [{', '.join(json.dumps(v) for v in s.values)}]")
    try:
        low, high = entry["low"], entry["high"]
    except KeyError:
        raise ConfigError(f"{name}: a range needs both low and high") from None
    for value in (low, high):
        make_config({name: value})  # within the declared range, of the declared type
    if not low < high:
        raise ConfigError(f"{name}: low ({low}) must be below high ({high})")
    log = bool(entry.get("log", False))
    if log and low <= 0:
        raise ConfigError(f"{name}: a log range must start above 0")
    return Dimension(name, low, high, entry.get("step"), log)


@dataclass
class SearchSpace:
    """What a sweep searches (dimensions) and what it fixes (settings every trial shares)."""

    dimensions: dict[str, Dimension]
    fixed: dict[str, Any]

    def config(self, params: dict[str, Any]) -> TrainConfig:
        """A trial's settings: the fixed ones plus its sampled values; a ConfigError if the combination is invalid."""
        return make_config({**self.fixed, **params})

    def signature(self) -> tuple[dict, dict]:
        """The space and the fixed settings a study must keep across reruns and machines (paths and devices left out)."""
        fixed = {k: v for k, v in self.fixed.items() if k not in MACHINE_SETTINGS}
        return {n: d.to_json() for n, d in self.dimensions.items()}, fixed

    def defaults_trial(self) -> dict[str, Any] | None:
        """The settings' defaults as a first trial (the baseline a sweep must beat), if the space holds them."""
        base = make_config(self.fixed)
        params = {n: getattr(base, n) for n in self.dimensions}
        return params if all(d.contains(params[n]) for n, d in self.dimensions.items()) else None


def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set name=value`` pairs as settings; a value is read as JSON (160, 3e-4, true) or else as text."""
    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ConfigError(f"--set takes name=value, not {item!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if name not in SETTING_BY_NAME:
            raise ConfigError(f"--set: unknown setting {name!r}")
        out[name] = value
    return out


def build_space(fixed: dict[str, Any], space_file: Path | None = None) -> SearchSpace:
    """The default space, its entries replaced by the file's (a plain value there fixes the setting), minus what
    ``fixed`` (--set) fixes; every value checked against the settings' declarations."""
    entries: dict[str, Any] = dict(DEFAULT_SPACE)
    fixed = dict(fixed)
    if space_file is not None:
        for name, entry in load_config_file(space_file).items():
            if isinstance(entry, (dict, list)):
                entries[name] = entry
            else:
                entries.pop(name, None)
                fixed.setdefault(name, entry)
    dimensions = {name: _dimension(name, entry) for name, entry in entries.items() if name not in fixed}
    make_config(fixed)  # the fixed settings alone must be valid
    return SearchSpace(dimensions, fixed)


# -- storage and study --------------------------------------------------------------------------------


def default_storage(runs_dir: Path) -> str:
    return f"sqlite:///{(Path(runs_dir) / STORAGE_FILE).resolve()}"


def open_storage(url: str, heartbeat_s: int | None = None) -> optuna.storages.BaseStorage:
    """Optuna's RDB storage for the URL; with ``heartbeat_s`` a stale trial is failed and retried (MAX_RETRY times)."""
    import warnings

    kwargs: dict[str, Any] = {}
    if url.startswith(("postgresql://", "postgres://")):
        # The driver cifar-tui[postgres] installs (psycopg 3); SQLAlchemy before 2.1 would look for psycopg2.
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}  # several local workers wait for the file lock
    import sqlalchemy.exc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: experimental since 2.8
        if heartbeat_s:
            kwargs.update(heartbeat_interval=heartbeat_s, grace_period=2 * heartbeat_s,
                          heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(MAX_RETRY))
        attempts = 0
        while True:
            try:
                return optuna.storages.RDBStorage(url, **kwargs)
            except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
                attempts += 1
                if isinstance(exc, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)) and attempts < 3:
                    # Workers starting together on a new database race to create its tables: the loser finds them made.
                    time.sleep(1.0)
                    continue
                # A damaged file, an unreachable server, a driver missing: one line, naming the storage.
                reason = getattr(exc, "orig", None) or exc.__cause__ or exc
                raise store.RunStoreError(f"cannot open the study storage {describe_storage(url)}: "
                                             f"{str(reason).strip().splitlines()[0]}") from None


def open_study(storage: optuna.storages.BaseStorage, name: str, space: SearchSpace, pruner: str) -> optuna.Study:
    """Create the study, or continue it when it was started with the same space and fixed settings.

    Only the worker that creates the study records its space and queues the baseline (the settings' defaults),
    so workers started together on several machines queue it once.
    """
    sampler = optuna.samplers.TPESampler(multivariate=True, constant_liar=True)  # constant liar: parallel workers
    dims, fixed = space.signature()
    # The median rule waits for the end of stage 1 (the fewest stage-1 epochs, when the space searches them).
    head = space.dimensions.get("epochs_head")
    stage1 = int(head.low) if head is not None and not head.choices else make_config(space.fixed).epochs_head
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize", sampler=sampler,
                                    pruner=PRUNERS[pruner](stage1))
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=PRUNERS[pruner](stage1))
        attrs = study.user_attrs
        if SPACE_ATTR in attrs and [attrs[SPACE_ATTR], attrs.get(FIXED_ATTR)] != _plain([dims, fixed]):
            raise ConfigError(f"study {name!r} was started with another search space or other fixed settings "
                              f"(space {attrs[SPACE_ATTR]}, fixed {attrs.get(FIXED_ATTR)}); give the same ones, "
                              "or --study NEW for a new study") from None
        return study
    study.set_user_attr(SPACE_ATTR, dims)
    study.set_user_attr(FIXED_ATTR, fixed)
    baseline = space.defaults_trial()
    if baseline is not None:
        study.enqueue_trial(baseline, user_attrs={"baseline": True})
    return study


def _plain(value: Any) -> Any:
    """A value as it reads back from the storage's JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


# -- the worker ---------------------------------------------------------------------------------------


def epoch_step(record: dict[str, Any], config: TrainConfig) -> int:
    """An epoch record's step in the trial: stage-1 epochs 1..epochs_head, then stage 2's after them."""
    return int(record["epoch"]) + (config.epochs_head if int(record["stage"]) == 2 else 0)


class TrialReporter:
    """A run's listener: each full epoch's validation accuracy goes to the trial; when the pruner says so, the
    run is asked to stop (its STOP file), so it ends cleanly after that epoch.

    A fine-tuning epoch below half the head's best validation accuracy has diverged (on full CIFAR-10 a
    too-high fine-tuning rate fell from 85% to chance and stayed there): it is pruned at once, whatever the
    pruner, which cannot judge until a few trials have finished."""

    def __init__(self, trial: optuna.Trial, config: TrainConfig, run_dir: Path):
        self.trial, self.config, self.run_dir = trial, config, run_dir
        self.pruned_at: int | None = None
        self.diverged = False
        self._head_best = 0.0

    def __call__(self, record: dict[str, Any]) -> None:
        if record.get("type") != "epoch" or record.get("partial") or self.pruned_at is not None:
            return
        value = record.get("val_accuracy")
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        step = epoch_step(record, self.config)
        self.trial.report(float(value), step)
        if int(record["stage"]) == 1:
            self._head_best = max(self._head_best, float(value))
        self.diverged = int(record["stage"]) == 2 and value < self._head_best / 2
        # The last epoch is never pruned: stopping then saves nothing, and the trial's value is whole.
        last = step >= self.config.epochs_head + (self.config.epochs_fine if self.config.fine_tune_blocks else 0)
        if self.diverged or (not last and self.trial.should_prune()):
            self.pruned_at = step
            why = "fine-tuning diverged" if self.diverged else STOPPED_BY
            (self.run_dir / store.STOP_FILE).write_text(f"{why} (trial {self.trial.number})", encoding="utf-8")


def run_trial(trial: optuna.Trial, space: SearchSpace, listeners: Sequence[Callable] = ()) -> float:
    """One trial: a run folder made as `cifar-tui train` makes it, trained without its test report.

    Returns the run's best validation accuracy; raises TrialPruned, TrialRunFailed or SweepStopped.
    """
    import gc

    import keras

    from .engine.launcher import create_run
    from .engine.training import train_run
    from .runs import reader

    params = {name: dim.suggest(trial) for name, dim in space.dimensions.items()}
    config = space.config(params)
    run_dir = create_run(config)
    trial.set_user_attr(HOST_ATTR, socket.gethostname())
    trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
    trial.set_user_attr(RUN_ATTR, str(run_dir.resolve()))
    trial.set_user_attr(SETTINGS_ATTR, {k: v for k, v in config.to_json().items() if k not in MACHINE_SETTINGS})
    reporter = TrialReporter(trial, config, run_dir)
    try:
        state = train_run(config, run_dir, listeners=[*listeners, reporter], test_report=False, finish_epoch=True)
    finally:
        # train_run's stop handlers answer for its run only: between trials Ctrl-C interrupts as usual.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        keras.backend.clear_session()  # the next trial builds its own model in this process
        gc.collect()
    status = store.read_status(run_dir)
    trial.set_user_attr(MESSAGE_ATTR, status.message)
    if reporter.pruned_at is not None:
        why = "fine-tuning diverged" if reporter.diverged else "pruned"
        raise optuna.TrialPruned(f"{why} after step {reporter.pruned_at}")
    if state == "stopped":
        raise SweepStopped(status.message)
    if state != "finished":
        raise TrialRunFailed(status.message)
    records, _ = store.read_metrics(run_dir)
    best = reader.best_val_accuracy(records)
    if best is None:
        raise TrialRunFailed("the run logged no validation accuracy")
    return best


def finished_count(study: optuna.Study) -> int:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def run_worker(study: optuna.Study, space: SearchSpace, trials: int | None, budget_s: float | None,
               listeners: Sequence[Callable] = (), say: Callable[[str], None] = print) -> str:
    """Run trials until the study holds ``trials`` finished (complete or pruned) ones, counting every worker's,
    or until ``budget_s`` seconds have passed here (no trial starts after that; the running one ends).

    Returns why it ended: "done", "budget" or "stopped".
    """
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = []
    if trials is not None:
        if finished_count(study) >= trials:
            return "done"
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        callbacks.append(optuna.study.MaxTrialsCallback(trials, states=states))

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        values = [trial.value] if trial.value is not None else list(trial.intermediate_values.values())
        value = f"{max(values):.4f}" if values else "-"
        try:
            best = study.best_trial
        except ValueError:  # no complete trial yet
            best = None
        why = "" if trial.state == optuna.trial.TrialState.COMPLETE else f" ({trial.user_attrs.get(MESSAGE_ATTR, '')})"
        say(f"trial {trial.number} {trial.state.name.lower()}{why}: val acc {value} {json.dumps(trial.params)}"
            + (f"; best so far trial {best.number} {best.value:.4f}" if best else ""))

    callbacks.append(report)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the line above says what Optuna's INFO lines would
    started = time.monotonic()
    try:
        study.optimize(lambda t: run_trial(t, space, listeners), timeout=budget_s, callbacks=callbacks,
                       catch=(TrialRunFailed, ConfigError), gc_after_trial=False)
    except SweepStopped as exc:
        say(f"sweep stopped: {exc}; the trial is marked failed; run the same command to continue the study")
        return "stopped"
    if budget_s is not None and time.monotonic() - started >= budget_s:
        return "budget"
    return "done"


def parse_budget(text: str) -> float:
    """``30m``, ``2h``, ``90s`` or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise ConfigError(f"--budget takes a time such as 30m, 2h or 900s, not {text!r}")
    return seconds


# -- reading a study ----------------------------------------------------------------------------------


@dataclass
class TrialRow:
    number: int
    state: str  # running, complete, pruned, fail, waiting
    params: dict[str, Any]
    value: float | None  # best validation accuracy (so far, for a running, pruned or failed trial)
    host: str | None
    run_dir: str | None
    curve: list[tuple[int, float]]  # (step, validation accuracy)
    duration_s: float | None
    message: str


@dataclass
class StudySummary:
    name: str
    trials: list[TrialRow]
    best: TrialRow | None
    importances: dict[str, float] | None  # which settings mattered (None: not computable yet)
    importance_note: str
    finished: dict[str, Any] | None  # the winner's test score, once `sweep --finish` ran
    param_names: list[str] = field(default_factory=list)


def read_study(storage: optuna.storages.BaseStorage | str, name: str, importances: bool = True) -> StudySummary:
    """What a study holds now, for `sweep --status` and the app: a KeyError if there is no such study."""
    study = optuna.load_study(study_name=name, storage=storage)
    now = time.time()
    rows = []
    for t in study.get_trials(deepcopy=False):
        end = t.datetime_complete.timestamp() if t.datetime_complete else now
        duration = end - t.datetime_start.timestamp() if t.datetime_start else None
        done = t.state == optuna.trial.TrialState.COMPLETE
        value = t.value if done else max(t.intermediate_values.values(), default=None)
        rows.append(TrialRow(t.number, t.state.name.lower(), dict(t.params), value, t.user_attrs.get(HOST_ATTR),
                             t.user_attrs.get(RUN_ATTR), sorted(t.intermediate_values.items()), duration,
                             t.user_attrs.get(MESSAGE_ATTR, "")))
    complete = [r for r in rows if r.state == "complete" and r.value is not None]
    best = max(complete, key=lambda r: r.value or 0.0) if complete else None
    scores, note = None, ""
    if importances:
        scores, note = _importances(study, len(complete))
    names = sorted({p for r in rows for p in r.params})
    return StudySummary(name, rows, best, scores, note, study.user_attrs.get(FINISHED_ATTR), names)


def _importances(study: optuna.Study, complete: int) -> tuple[dict[str, float] | None, str]:
    if complete < 2:
        return None, f"parameter importances need 2 finished trials ({complete} so far)"
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "importances will be equal" for a handful of trials: shown as such
            return optuna.importance.get_param_importances(study), ""
    except (ValueError, RuntimeError) as exc:  # e.g. every trial had the same values
        return None, f"parameter importances: {exc}"


def study_names(storage: optuna.storages.BaseStorage | str) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def close_storage(storage: optuna.storages.BaseStorage) -> None:
    """Give a storage's database connections back now: Optuna keeps them until its engine is garbage-collected,
    and a watcher opening one per refresh would fill a shared server's connection slots (the workers' too)."""
    if isinstance(storage, optuna.storages.RDBStorage):
        storage.remove_session()
        storage.engine.dispose()


def look_at_study(url: str, name: str | None) -> tuple[StudySummary | None, str | None]:
    """The study ``name`` (default: the newest) at ``url``, or why there is none to show; every connection
    it opened closed again (the Sweep screen calls it every few seconds)."""
    storage = open_storage(url)
    try:
        names = study_names(storage)
        if not names:
            return None, "no study in this storage yet"
        return read_study(storage, name if name in names else names[-1]), None
    finally:
        close_storage(storage)


def finish(storage: optuna.storages.BaseStorage | str, name: str, data_dir: str | None = None) -> dict[str, Any]:
    """Score the study's best trial on the test set, once (`cifar-tui evaluate` on its run folder); recorded in the study.

    The test set comes from ``data_dir`` (the user's, as for `evaluate`), never from the trial's config.json."""
    from .engine.evaluation import evaluate_run

    study = optuna.load_study(study_name=name, storage=storage)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise store.RunStoreError(f"study {name!r} has no finished trial yet")
    best = study.best_trial
    run_dir = Path(best.user_attrs.get(RUN_ATTR, ""))
    if not (run_dir / store.MODEL_FILE).is_file():
        raise store.RunStoreError(
            f"trial {best.number}'s run folder {run_dir} (on {best.user_attrs.get(HOST_ATTR, '?')}) has no model here: "
            "run `cifar-tui sweep --finish` on that machine")
    report, _ = store.read_report(run_dir)
    if report is None:
        report = evaluate_run(run_dir, data_dir=data_dir)
    result = {"trial": best.number, "run_dir": str(run_dir), "val_accuracy": best.value,
              "test_accuracy": report["test_accuracy"], "params": best.params}
    study.set_user_attr(FINISHED_ATTR, result)
    return result


def describe_storage(url: str) -> str:
    """The URL without a password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an URL sqlalchemy cannot parse: Optuna will say so when it opens it
        return url


def print_status(summary: StudySummary, out=None) -> None:
    """`sweep --status`: one line per trial, the best so far and the importances."""
    from .formatting import ASCII_DASH, fmt

    out = out or sys.stdout
    names = summary.param_names
    header = ["trial", "state", "val acc", "epochs", "time", "host", *names]
    rows = [[str(r.number), r.state, fmt(r.value, ".4f", ASCII_DASH), str(len(r.curve)),
             f"{r.duration_s / 60:.1f}m" if r.duration_s else ASCII_DASH, r.host or ASCII_DASH,
             *[_param_text(r.params.get(n)) for n in names]] for r in summary.trials]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    for line in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip(), file=out)
    if summary.best:
        b = summary.best
        print(f"best: trial {b.number}, val acc {b.value:.4f}, {json.dumps(b.params)}, run {b.run_dir}", file=out)
    else:
        print("best: no finished trial yet", file=out)
    if summary.finished:
        f = summary.finished
        print(f"finished: trial {f['trial']} test accuracy {f['test_accuracy']:.4f} ({f['run_dir']})", file=out)
    if summary.importances:
        print("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in summary.importances.items()), file=out)
    elif summary.importance_note:
        print(summary.importance_note, file=out)


def _param_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
