"""Helpers shared by the fault tests: run the real CLI, read run folders, wait for records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tui_cifar.runs import store

CLI_SCRIPT = Path(sys.executable).with_name("cifar-tui")


def cli_command(*args: Any) -> list[str]:
    """`cifar-tui ARGS` through the installed console script (or `python -m tui_cifar`)."""
    head = [str(CLI_SCRIPT)] if CLI_SCRIPT.exists() else [sys.executable, "-m", "tui_cifar"]
    return head + [str(a) for a in args]


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **extra}


def run_cli(*args: Any, timeout: float = 180, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=timeout, env=env or cli_env())


def write_config(path: Path, values: dict) -> Path:
    path.write_text(json.dumps(values))
    return path


def records(run_dir: Path) -> list[dict]:
    recs, problems = store.read_metrics(run_dir)
    assert not problems, problems
    return recs


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen | None = None,
             interval: float = 0.01) -> Any:
    """Poll until predicate() is truthy; fail with `what` on timeout or if proc exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"process exited ({proc.returncode}) before {what}:\n{out[-3000:]}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def find_record(run_dir: Path, match: Callable[[dict], bool]) -> dict | None:
    """The first complete record of metrics.jsonl that matches, or None."""
    recs, _ = store.read_metrics(run_dir)
    return next((r for r in recs if match(r)), None)


def stray_temp_files(folder: Path) -> list[Path]:
    """Temporary files the atomic writers leave behind if they fail to clean up."""
    return [p for p in Path(folder).rglob("*") if p.name.startswith(".tmp-") or p.name.endswith(".tmp")]


def save_png(path: Path, colour=(200, 30, 30), size=(40, 40)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def save_jpeg(path: Path, seed: int = 0, size=(64, 64)) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path, quality=90)
    return path
