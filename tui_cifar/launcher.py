"""Start training as its own process, in its own session, and stop it gracefully.

A detached run survives the terminal or SSH connection that started it; the run
folder is the only link back to it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from . import runstore
from .config import TrainConfig

# What a detached run's status says until its process has imported TensorFlow and writes its own.
STARTING_MESSAGE = "starting Python and TensorFlow (a few seconds)"


def create_run(config: TrainConfig) -> Path:
    """A new run folder holding its config.json: the one place a run's config is written."""
    run_dir = runstore.create_run_dir(Path(config.runs_dir), config.run_name)
    runstore.atomic_write_json(run_dir / runstore.CONFIG_FILE, config.to_json())
    return run_dir


def refuse_to_resume(run_dir: Path) -> None:
    """A RunStoreError when the run must not be resumed: it is running now (two processes must never train into
    one folder), or it finished (a resume would only recompute its test report, which `evaluate --recompute` does)."""
    status = runstore.read_status(run_dir)
    state = runstore.effective_state(status)
    if state == "running":
        raise runstore.RunStoreError(f"{run_dir} is still running (pid {status.pid})")
    if state == "finished":
        raise runstore.RunStoreError(f"{run_dir} has finished: there is nothing to resume; "
                                     f"`cifar-tui evaluate {run_dir} --recompute` scores its model again")


def start_detached(config: TrainConfig, resume: Path | None = None, notify: str | None = None) -> Path:
    """Spawn `cifar-tui train` for this config (or resume a run) and return its run folder at once.

    ``notify``: the `--notify` command the detached process runs when the run ends. A run that is
    running now or finished is not resumed (the CLI and the app's palette, whose list may be minutes old, both
    come here).
    """
    if resume is not None:
        refuse_to_resume(Path(resume))
    run_dir = Path(resume) if resume is not None else create_run(config)
    # --in-run-dir marks the child: the status below names it as running, so it must not refuse itself.
    command = [sys.executable, "-m", "tui_cifar", "train", "--in-run-dir", str(run_dir)]
    if resume is not None:
        command += ["--resume", str(run_dir)]
    if notify:
        command += ["--notify", notify]
    log = open(run_dir / runstore.TRAIN_LOG, "ab")
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # no controlling terminal: SIGHUP from a closed terminal never reaches it
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
        close_fds=True,
    )
    log.close()
    runstore.write_status(run_dir, "running", STARTING_MESSAGE, pid=process.pid)
    return run_dir


def request_stop(run_dir: Path, by: str = "") -> bool:
    """Ask a running run to stop after its current batch; False if it is not running.

    Writes the run's STOP file (seen by the trainer wherever it runs), holding ``by``
    (e.g. "the app") so the run can say who stopped it, and, when the process is on
    this host, also sends SIGTERM so the request lands at once. A Keras script's run
    (RunLogger) gets the file only: its fit returns after the batch and the script
    goes on (to save its model, say), where SIGTERM would end it.
    """
    run_dir = Path(run_dir)
    status = runstore.read_status(run_dir)
    if runstore.effective_state(status) != "running":
        return False
    (run_dir / runstore.STOP_FILE).write_text(by, encoding="utf-8")
    config, _ = runstore.read_json(run_dir / runstore.CONFIG_FILE)
    keras_script = runstore.run_kind(config or {}) == runstore.KERAS_KIND
    if status.pid and status.host == socket.gethostname() and not keras_script:
        try:
            os.kill(status.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    return True
