"""Comparing runs: the settings that differ between them and what each reached (no TensorFlow, no Textual)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import SETTINGS
from . import reader, store


@dataclass
class ComparedRun:
    name: str
    # as its config.json says, a missing key read as the setting's default; {} for a run with no cifar-tui
    # settings (a RunLogger run's Keras script, a folder of TensorBoard event files)
    config: dict[str, Any]
    best_val_accuracy: float | None
    test_accuracy: float | None
    duration_s: float | None


def load_compared(run_dir: Path) -> ComparedRun:
    """A run as the comparison shows it; a RunLogger run or a folder of TensorBoard event files too (its
    scores, no settings)."""
    run_dir = Path(run_dir)
    summary = reader.summarize(run_dir)
    config: dict[str, Any] = {}
    if summary.kind == "cifar-tui":
        read, _ = store.read_config(run_dir)
        config = {s.name: s.default for s in SETTINGS} | (read or {})
    return ComparedRun(run_dir.name, config, summary.best_val_accuracy, summary.test_accuracy, summary.duration_s)


def differing_settings(runs: list[ComparedRun]) -> list[str]:
    """The settings (in the form's order) whose values are not the same in all the runs that have settings
    (a RunLogger or TensorBoard run has none: it neither differs nor agrees).

    Folders (data, runs, cache) are where a run was made, not how: they are left out.
    """
    names = [s.name for s in SETTINGS if s.kind != "path"]
    with_settings = [run for run in runs if run.config]
    return [name for name in names if len({repr(run.config.get(name)) for run in with_settings}) > 1]
