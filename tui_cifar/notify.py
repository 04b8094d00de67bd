"""`--notify CMD`: run a command of the user's when a run ends (`train`) or an alert fires (`watch`).

The command gets the run's outcome, or the alert, in its environment, so a one-liner such as
``--notify 'notify-send "$CIFAR_TUI_RUN_NAME $CIFAR_TUI_STATE $CIFAR_TUI_TEST_ACCURACY"'`` works.
An alert sets CIFAR_TUI_ALERT (its rule) and CIFAR_TUI_MESSAGE (its one line), so
``--notify 'notify-send "$CIFAR_TUI_RUN_NAME" "$CIFAR_TUI_MESSAGE"'`` serves both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .runs import reader, store

if TYPE_CHECKING:
    from .runs.diagnostics import Alert

# The command may hang (a mail server); a finished run must not wait on it for ever.
NOTIFY_TIMEOUT_S = 120


def notify_env(run_dir: Path) -> dict[str, str]:
    """CIFAR_TUI_* variables describing how the run in ``run_dir`` ended ("" where unknown)."""
    run_dir = Path(run_dir)
    status = store.read_status(run_dir)
    records, _ = store.read_metrics(run_dir)
    report, _ = store.read_report(run_dir)
    test_acc = (report or {}).get("test_accuracy")
    best = reader.best_val_accuracy(records)
    wall = reader.last_wall_time(records)
    return {
        "CIFAR_TUI_STATE": store.effective_state(status),
        "CIFAR_TUI_RUN": str(run_dir.resolve()),
        "CIFAR_TUI_RUN_NAME": run_dir.name,
        "CIFAR_TUI_MESSAGE": status.message,
        "CIFAR_TUI_TEST_ACCURACY": f"{test_acc:.4f}" if isinstance(test_acc, (int, float)) else "",
        "CIFAR_TUI_BEST_VAL_ACCURACY": f"{best:.4f}" if best is not None else "",
        "CIFAR_TUI_WALL_TIME_S": f"{wall:.0f}" if wall is not None else "",
    }


def alert_env(run_dir: Path, alert: Alert) -> dict[str, str]:
    """CIFAR_TUI_* variables describing an alert on the run in ``run_dir`` (a run folder or a TensorBoard run)."""
    run_dir = Path(run_dir)
    return {
        "CIFAR_TUI_ALERT": alert.rule,  # nonfinite, diverging, plateau, overfitting
        "CIFAR_TUI_RUN": str(run_dir.resolve()),
        "CIFAR_TUI_RUN_NAME": run_dir.name,
        "CIFAR_TUI_MESSAGE": alert.line,
        "CIFAR_TUI_ALERT_WHY": alert.why,
        "CIFAR_TUI_ALERT_ADVICE": alert.advice,
        "CIFAR_TUI_STAGE": str(alert.stage),
        "CIFAR_TUI_EPOCH": str(alert.epoch),
    }


def run_notify_command(command: str, run_dir: Path, alert: Alert | None = None, quiet: bool = False) -> int | None:
    """Run ``command`` through the shell with notify_env (or alert_env for an alert); its exit code, or None
    if it could not run. ``quiet``: its output goes nowhere (the app's screen is no place for it).

    A failing command is reported on stderr and never changes the run's own exit status.
    """
    env = alert_env(run_dir, alert) if alert is not None else notify_env(run_dir)
    out = subprocess.DEVNULL if quiet else None
    try:
        result = subprocess.run(command, shell=True, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, timeout=NOTIFY_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"cifar-tui: the --notify command did not complete: {exc}", file=sys.stderr)
        return None
    if result.returncode != 0:
        print(f"cifar-tui: the --notify command exited with status {result.returncode}", file=sys.stderr)
    return result.returncode
