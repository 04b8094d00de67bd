"""Start training as its own process, in its own session, and stop it gracefully.

A detached run survives the terminal or SSH connection that started it; the run
folder is the only link back to it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config import TrainConfig
from ..runs import store

# What a detached run's status says until its process has imported TensorFlow and writes its own.
STARTING_MESSAGE = "starting Python and TensorFlow (a few seconds)"
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def create_run(config: TrainConfig) -> Path:
    """A new run folder holding its config.json: the one place a run's config is written.

    A folder whose config cannot be written (a full or read-only disk) is removed again: a failed
    start leaves no empty run behind, only a RunStoreError saying why.
    """
    run_dir = store.create_run_dir(Path(config.runs_dir), config.run_name)
    try:
        store.atomic_write_json(run_dir / store.CONFIG_FILE, config.to_json())
    except OSError as exc:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise store.RunStoreError(f"cannot start a run in {run_dir.parent}: {exc.strerror or exc}") from exc
    return run_dir


def refuse_finished(run_dir: Path) -> None:
    """A RunStoreError for a finished run: a resume would only recompute its test report (minutes, and its wall
    time changed), which `cifar-tui evaluate RUN --recompute` does."""
    if store.effective_state(store.read_status(run_dir)) == "finished":
        raise store.RunStoreError(f"{run_dir} has finished: there is nothing to resume; "
                                     f"`cifar-tui evaluate {run_dir} --recompute` scores its model again")


def lock_for_resume(run_dir: Path) -> store.RunLock:
    """The lock of a run about to be resumed (a RunStoreError when it finished or another process trains it),
    with the stop request that ended it (a STOP file left by a process killed before its end) gone."""
    refuse_finished(run_dir)
    lock = store.RunLock.acquire(run_dir)
    (run_dir / store.STOP_FILE).unlink(missing_ok=True)
    return lock


def keep_stop_signals(run_dir: Path) -> None:
    """A trainer's first step: until training installs its own handler (callbacks.StopRequest, after seconds
    of TensorFlow's import), SIGINT or SIGTERM is kept as the run's STOP file, which training reads at its
    start; the run then ends 'stopped' where the signal ended the process and left it 'killed'. A detached
    child starts with these signals blocked (start_detached), so none arrives before this handler: the
    signals are unblocked here. A second signal (an impatient second Ctrl-C) ends the process at once."""
    stop_file = run_dir / store.STOP_FILE
    received = []

    def keep(signum: int, _frame: object) -> None:
        received.append(signum)
        if len(received) > 1:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        try:
            if not stop_file.exists():  # request_stop wrote who asked, before its SIGTERM
                stop_file.write_text(signal.Signals(signum).name, encoding="utf-8")
        except OSError:
            pass  # nowhere to keep it: the run goes on, as it would after a lost signal

    for sig in STOP_SIGNALS:
        signal.signal(sig, keep)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def start_detached(config: TrainConfig, resume: Path | None = None, notify: str | None = None) -> Path:
    """Spawn `cifar-tui train` for this config (or resume a run) and return its run folder at once.

    ``notify``: the `--notify` command the detached process runs when the run ends. The run's lock is
    taken here and handed to the child (which holds it while it trains), so a run being trained is
    refused at once, before any process starts (the CLI and the app's palette, whose list may be
    minutes old, both come here), and the run reads as running from this moment. A finished run is not resumed.
    """
    if resume is not None:
        run_dir = Path(resume)
        lock = lock_for_resume(run_dir)
    else:
        from .data import check_local_data

        check_local_data(config.data_dir)  # refused or unreadable data never leaves a run folder behind
        run_dir = create_run(config)
        lock = store.RunLock.acquire(run_dir)
    try:
        command = [sys.executable, "-m", "tui_cifar", "train", "--in-run-dir", str(run_dir), "--lock-fd", str(lock.fd)]
        if resume is not None:
            command += ["--resume", str(run_dir)]
        if notify:
            command += ["--notify", notify]
        with open(run_dir / store.TRAIN_LOG, "ab") as log, _stop_signals_blocked():
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # no controlling terminal: SIGHUP from a closed terminal never reaches it
                env={**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
                close_fds=True,
                pass_fds=(lock.fd,),  # the child holds the lock from its first moment
            )
        lock.record(process.pid)
        store.write_status(run_dir, "running", STARTING_MESSAGE, pid=process.pid)
    finally:
        lock.release()  # this process's copy: the child's keeps the lock
    return run_dir


@contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    """SIGINT and SIGTERM blocked in this thread while it spawns a trainer: the child inherits the mask, and
    a stop sent before its handler exists waits for keep_stop_signals instead of killing it."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def request_stop(run_dir: Path, by: str = "") -> bool:
    """Ask a running run to stop after its current batch; False if it is not running.

    Writes the run's STOP file (seen by the trainer wherever it runs), holding ``by``
    (e.g. "the app") so the run can say who stopped it, and also sends SIGTERM so the request
    lands at once, but only to the process holding the run's lock, checked by its pid and start
    time (store.holder_pid): never to a pid merely written in status.json. A Keras script's run
    (RunLogger) gets the file only: its fit returns after the batch and the script
    goes on (to save its model, say), where SIGTERM would end it.
    """
    run_dir = Path(run_dir)
    status = store.read_status(run_dir)
    if store.effective_state(status) != "running":
        return False
    (run_dir / store.STOP_FILE).write_text(by, encoding="utf-8")
    config, _ = store.read_json(run_dir / store.CONFIG_FILE)
    if store.run_kind(config or {}) == store.KERAS_KIND:
        return True
    pid = store.holder_pid(run_dir)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    return True
