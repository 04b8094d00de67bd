"""Runs and their metrics logs as flat rows: CSV for a spreadsheet or pandas, settings for TensorBoard's HParams.

No TensorFlow here: it reads run folders only.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable

from . import runreader, runstore

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
    if runstore.run_kind(config) != runstore.KERAS_KIND:
        return flatten(config)
    optimizer: dict[str, Any] = config["optimizer"] if isinstance(config.get("optimizer"), dict) else {}
    settings: dict[str, Scalar] = {"kind": runstore.KERAS_KIND}
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
    for summary in runreader.list_runs(runs_dir):
        config, _ = runstore.read_config(summary.path)
        records, _ = runstore.read_metrics(summary.path)
        rows.append({
            "run": summary.name, "path": str(summary.path), "kind": summary.kind, "state": summary.state,
            "started_at": summary.started_at, "duration_s": summary.duration_s,
            "epochs_done": len(runreader.epoch_records(records)),
            "best_val_accuracy": summary.best_val_accuracy, "test_accuracy": summary.test_accuracy,
            **{k: v for k, v in run_settings(config or {}).items() if k != "kind"},
        })
    return rows


def metrics_rows(run_dir: Path) -> list[dict[str, Scalar]]:
    """The batch and epoch records of a run's log in order (a repeated epoch of a resumed run: the later one)."""
    records, _ = runstore.read_metrics(run_dir)
    kept_epochs = {id(r) for r in runreader.epoch_records(records)}
    lead = ("type", "stage", "epoch", "batch", "time", "wall_time")  # where each row is, then what it measured
    return [{**{k: r[k] for k in lead if k in r}, **flatten(r)} for r in records
            if r.get("type") == "batch" or (r.get("type") == "epoch" and id(r) in kept_epochs)]


def write_csv(rows: Iterable[dict[str, Scalar]], path: Path) -> int:
    """Write rows under the union of their columns (in order of first appearance); returns the row count."""
    rows = list(rows)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    path = Path(path).expanduser()
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns), restval="")
            writer.writeheader()
            writer.writerows(rows)
    except OSError as exc:
        raise runstore.RunStoreError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return len(rows)
