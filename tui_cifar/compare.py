"""Comparing runs: the settings that differ between them and what each reached (no TensorFlow, no Textual)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import runreader, runstore
from .config import SETTINGS


@dataclass
class ComparedRun:
    name: str
    config: dict[str, Any]  # as its config.json says, a missing key read as the setting's default
    best_val_accuracy: float | None
    test_accuracy: float | None
    duration_s: float | None


def load_compared(run_dir: Path) -> ComparedRun:
    run_dir = Path(run_dir)
    summary = runreader.summarize_run(run_dir)
    config, _ = runstore.read_config(run_dir)
    config = {s.name: s.default for s in SETTINGS} | (config or {})
    return ComparedRun(run_dir.name, config, summary.best_val_accuracy, summary.test_accuracy, summary.duration_s)


def differing_settings(runs: list[ComparedRun]) -> list[str]:
    """The settings (in the form's order) whose values are not the same in all these runs.

    Folders (data, runs, cache) are where a run was made, not how: they are left out.
    """
    names = [s.name for s in SETTINGS if s.kind != "path"]
    return [name for name in names if len({repr(run.config.get(name)) for run in runs}) > 1]
