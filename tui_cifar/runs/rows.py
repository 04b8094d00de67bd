"""Runs and their metrics logs as flat rows: CSV for a spreadsheet or pandas, settings for TensorBoard's HParams.

No TensorFlow here: it reads run folders only.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..files import atomic_write_csv
from . import reader, store

Scalar = str | int | float | bool | None


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Scalar]:
    """Nested dicts as dotted keys ({"memory": {"rss": 1}} -> {"memory.rss": 1}); lists become their text."""
    flat: dict[str, Scalar] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = str(value)
        else:
            flat[name] = value
    return flat


def run_settings(config: dict[str, Any]) -> dict[str, Scalar]:
    """The settings of a run as flat scalars: the TrainConfig, or what RunLogger saw of a Keras script.

    A Keras run's own ``hparams`` keep their names, so they line up with what the script calls them.
    """
    if store.run_kind(config) != store.KERAS_KIND:
        return flatten(config)
    optimizer: dict[str, Any] = config["optimizer"] if isinstance(config.get("optimizer"), dict) else {}
    settings: dict[str, Scalar] = {"kind": store.KERAS_KIND}
    for key in ("model", "loss", "batch_size", "epochs", "steps_per_epoch", "total_params", "trainable_params"):
        value = config.get(key)
        settings[key] = value if not isinstance(value, (dict, list)) else str(value)
    for key, value in flatten(optimizer).items():
        if value is not None:  # Keras lists every option; the unset ones say nothing
            settings[f"optimizer.{key}"] = value
    hparams: dict[str, Any] = config["hparams"] if isinstance(config.get("hparams"), dict) else {}
    for key, value in flatten(hparams).items():
        settings.setdefault(key, value)
    return settings


def runs_rows(runs_dir: Path) -> list[dict[str, Scalar]]:
    """One row per run: where it is, how it ended and scored, then its settings."""
    rows = []
    for summary in reader.list_runs(runs_dir):
        config, _ = store.read_config(summary.path)
        records, _ = store.read_metrics(summary.path)
        rows.append({
            "run": summary.name, "path": str(summary.path), "kind": summary.kind, "state": summary.state,
            "started_at": summary.started_at, "duration_s": summary.duration_s,
            "epochs_done": len(reader.epoch_records(records)),
            "best_val_accuracy": summary.best_val_accuracy, "test_accuracy": summary.test_accuracy,
            **{k: v for k, v in run_settings(config or {}).items() if k != "kind"},
        })
    return rows


_LEAD = ("type", "stage", "epoch", "batch", "time", "wall_time")  # where each row is, then what it measured


def _metrics_pass(run_dir: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """(position, record) of the batch and epoch records, streamed from the log."""
    for n, record in enumerate(store.iter_metrics(run_dir, [])):
        if record.get("type") in ("batch", "epoch"):
            yield n, record


def write_metrics_csv(run_dir: Path, path: Path) -> int:
    """The batch and epoch records of a run's log as CSV, in order (a repeated epoch of a resumed run: the
    later one); returns the row count. Two streamed passes (the columns, then the rows): memory stays
    flat in the log's length."""
    columns: dict[str, None] = {}
    last_epoch: dict[tuple[int, int], int] = {}
    for n, record in _metrics_pass(run_dir):
        columns.update(dict.fromkeys(k for k in _LEAD if k in record))
        columns.update(dict.fromkeys(flatten(record)))
        if record.get("type") == "epoch":
            last_epoch[reader.epoch_key(record)] = n
    kept = set(last_epoch.values())
    rows = ((flatten(r).get(c, "") for c in columns) for n, r in _metrics_pass(run_dir)
            if r.get("type") == "batch" or n in kept)
    path = Path(path).expanduser()
    try:
        return atomic_write_csv(path, list(columns), rows)
    except OSError as exc:
        raise store.RunStoreError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_csv(rows: Iterable[dict[str, Scalar]], path: Path) -> int:
    """Write rows under the union of their columns (in order of first appearance); returns the row count.

    Whole or not at all, each cell neutralised as files.csv_cell says (run names and settings come from
    run folders, which may be anyone's).
    """
    rows = list(rows)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    path = Path(path).expanduser()
    try:
        return atomic_write_csv(path, list(columns), ([row.get(c, "") for c in columns] for row in rows))
    except OSError as exc:
        raise store.RunStoreError(f"cannot write {path}: {exc.strerror or exc}") from exc
