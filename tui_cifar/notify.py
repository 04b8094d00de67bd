"""`cifar-tui train --notify CMD`: run a command of the user's when a run ends (mail, a chat message, a sound).

The command gets the run's outcome in its environment, so a one-liner such as
``--notify 'notify-send "$CIFAR_TUI_RUN_NAME $CIFAR_TUI_STATE $CIFAR_TUI_TEST_ACCURACY"'`` works.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from . import runreader, runstore

# The command may hang (a mail server); a finished run must not wait on it for ever.
NOTIFY_TIMEOUT_S = 120


def notify_env(run_dir: Path) -> dict[str, str]:
    """CIFAR_TUI_* variables describing how the run in ``run_dir`` ended ("" where unknown)."""
    run_dir = Path(run_dir)
    status = runstore.read_status(run_dir)
    records, _ = runstore.read_metrics(run_dir)
    report, _ = runstore.read_report(run_dir)
    test_acc = (report or {}).get("test_accuracy")
    best = runreader.best_val_accuracy(records)
    wall = runreader.last_wall_time(records)
    return {
        "CIFAR_TUI_STATE": runstore.effective_state(status),
        "CIFAR_TUI_RUN": str(run_dir.resolve()),
        "CIFAR_TUI_RUN_NAME": run_dir.name,
        "CIFAR_TUI_MESSAGE": status.message,
        "CIFAR_TUI_TEST_ACCURACY": f"{test_acc:.4f}" if isinstance(test_acc, (int, float)) else "",
        "CIFAR_TUI_BEST_VAL_ACCURACY": f"{best:.4f}" if best is not None else "",
        "CIFAR_TUI_WALL_TIME_S": f"{wall:.0f}" if wall is not None else "",
    }


def run_notify_command(command: str, run_dir: Path) -> int | None:
    """Run ``command`` through the shell with notify_env; its exit code, or None if it could not run.

    A failing command is reported on stderr and never changes the run's own exit status.
    """
    try:
        result = subprocess.run(command, shell=True, env={**os.environ, **notify_env(run_dir)},
                                stdin=subprocess.DEVNULL, timeout=NOTIFY_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"cifar-tui: the --notify command did not complete: {exc}", file=sys.stderr)
        return None
    if result.returncode != 0:
        print(f"cifar-tui: the --notify command exited with status {result.returncode}", file=sys.stderr)
    return result.returncode
