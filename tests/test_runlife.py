"""A run's life as a user lives it: train on a terminal, stop, resume in the background, stop during the report.

The real `cifar-tui` in subprocesses on the fake data, with random weights (seconds-long runs).
"""

from __future__ import annotations

import io
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from conftest import tiny_config
from faultkit import cli_command, cli_env, find_record, records, run_cli, wait_for, write_config
from PIL import Image

from tui_cifar.cli.console import plain_reporter
from tui_cifar.config import make_config
from tui_cifar.engine import data, launcher, training
from tui_cifar.engine.launcher import create_run
from tui_cifar.runs import store

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

EPOCHS_FINE = 5


def terminal_run(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, list[bytes]]:
    """Start `command` with stdout and stderr on a pseudo-terminal, as in a user's shell; returns what it printed so far."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    printed: list[bytes] = []

    def drain() -> None:  # a full pty would block the run
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            printed.append(chunk)
        os.close(master)

    threading.Thread(target=drain, daemon=True).start()
    return proc, printed


@pytest.fixture(scope="module")
def stopped_run(fake_cifar, tmp_path_factory):
    """`cifar-tui train` on a terminal, stopped through its STOP file in stage 2's second epoch."""
    base = tmp_path_factory.mktemp("runlife")
    runs = base / "runs"
    config = write_config(base / "config.json", tiny_config(fake_cifar, runs, epochs_fine=EPOCHS_FINE, patience=100,
                                                            batch_size=8, cache_dir=str(base / "features")))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # TensorFlow as chatty as it is by default
    env.update(XDG_CACHE_HOME=str(base / "xdg_cache"), PYTHONUNBUFFERED="1", COLUMNS="100")
    proc, printed = terminal_run(cli_command("train", "--config", config), env)
    try:
        run_dir = wait_for(lambda: next(iter(runs.iterdir()), None) if runs.is_dir() else None, 60, "the run folder")
        wait_for(lambda: find_record(run_dir, lambda r: r.get("type") == "batch" and r.get("stage") == 2
                                     and r.get("epoch") == 2), 240, "stage 2, epoch 2")
        (run_dir / store.STOP_FILE).touch()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.5)  # the drain thread reads the last lines
    return run_dir, proc.returncode, b"".join(printed).decode("utf-8", "replace")


def test_tensorflow_start_up_lines_go_to_the_run_log_not_the_terminal(stopped_run):
    run_dir, returncode, printed = stopped_run
    assert returncode == 130, printed
    assert "starting TensorFlow …" in printed and "run stopped" in printed
    for chatter in ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard"):
        assert chatter not in printed, printed
    assert "oneDNN custom operations" in (run_dir / store.TRAIN_LOG).read_text()


def test_a_detached_resume_runs_to_the_end(stopped_run):
    run_dir, _, _ = stopped_run
    before = records(run_dir)
    assert [r["state"] for r in before if r["type"] == "run_end"] == ["stopped"]
    stopped_in = max(r["epoch"] for r in before if r["type"] == "batch" and r["stage"] == 2)
    # The cut-short epoch is not logged as an epoch: only the completed ones are.
    assert [r["epoch"] for r in before if r["type"] == "epoch" and r["stage"] == 2] == list(range(1, stopped_in))

    out = run_cli("train", "--resume", run_dir, "--detach", timeout=60)
    assert out.returncode == 0, out.stderr
    status = store.read_status(run_dir)
    assert status.state == "running" and status.message in (launcher.STARTING_MESSAGE, "resuming", "loading CIFAR-10")
    # Until the child ends: a refused child leaves status.json 'running' with its dead pid (killed).
    wait_for(lambda: store.effective_state(store.read_status(run_dir)) != "running", 300, "the resumed run to end",
             interval=0.5)
    log = (run_dir / store.TRAIN_LOG).read_text()
    assert store.read_status(run_dir).state == "finished", log[-3000:]
    recs = records(run_dir)
    assert [r["state"] for r in recs if r["type"] == "run_end"] == ["stopped", "finished"]
    epochs = Counter((r["stage"], r["epoch"]) for r in recs if r["type"] == "epoch")
    assert epochs == Counter({(1, 1): 1, (1, 2): 1} | {(2, e): 1 for e in range(1, EPOCHS_FINE + 1)})
    resumed = recs.index(next(r for r in recs if r["type"] == "run_resume"))
    # The epoch the stop cut short is trained again (BackupAndRestore semantics), from the last completed one's
    # optimizer state: the learning rate's cosine decay goes on falling, where a fresh optimizer would restart it.
    assert {r["epoch"] for r in recs[resumed:] if r["type"] == "batch"} == set(range(stopped_in, EPOCHS_FINE + 1))
    lrs = [r["lr"] for r in recs if r["type"] == "epoch" and r["stage"] == 2]
    assert lrs == sorted(lrs, reverse=True) and len(set(lrs)) == EPOCHS_FINE, lrs
    assert store.has_report(run_dir)
    assert not (run_dir / store.STOP_FILE).exists()


def test_stop_during_the_test_report(fake_cifar, tmp_path):
    """A stop request in the evaluation ends the run 'stopped' with its model and without a report, and no STOP left."""
    config = make_config(tiny_config(fake_cifar, tmp_path / "runs", epochs_fine=1, cache_dir=str(tmp_path / "features")))
    run_dir = create_run(config)
    lock = store.RunLock.acquire(run_dir)  # as `cifar-tui train` holds it: the run reads as running
    lock.record(os.getpid())
    printed = io.StringIO()

    def stop_at_the_report(record: dict) -> None:
        if record.get("type") == "phase" and record.get("phase") == "evaluate":
            launcher.request_stop(run_dir)  # what the app's Stop and Ctrl-C do: the STOP file and SIGTERM

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        state = training.train_run(config, run_dir, listeners=[plain_reporter(printed), stop_at_the_report])
    finally:
        lock.release()
        for s, handler in saved.items():
            signal.signal(s, handler)
    recs = records(run_dir)
    assert state == "stopped", recs[-1]
    test_progress = [r for r in recs if r["type"] == "progress" and r["phase"] == "evaluate"]
    assert test_progress and test_progress[0]["total"] == 2 * len(load_test_labels(config))  # flip TTA: two passes
    assert recs[-1]["type"] == "run_end" and f"cifar-tui evaluate {run_dir}" in recs[-1]["message"]
    assert store.read_status(run_dir).state == "stopped"
    assert (run_dir / store.MODEL_FILE).is_file() and not store.has_report(run_dir)
    assert not (run_dir / store.STOP_FILE).exists()
    assert f"  test set {test_progress[0]['done']}/{test_progress[0]['total']}" in printed.getvalue()


def load_test_labels(config):
    *_, y_test, _ = data.load_cifar10(config.data_dir)
    return data.test_indices(config.limit_test, config.seed, y_test)


def test_predict_says_it_is_loading_the_model_on_a_terminal(stopped_run, tmp_path):
    run_dir, _, _ = stopped_run
    image = tmp_path / "red.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(image)
    master, slave = pty.openpty()
    out = subprocess.run(cli_command("predict", run_dir, image), stdout=subprocess.PIPE, stderr=slave, text=True,
                         timeout=180, env=cli_env())
    os.close(slave)
    on_terminal = os.read(master, 65536).decode()
    os.close(master)
    assert out.returncode == 0 and out.stdout.startswith(f"{image}: ")
    assert on_terminal.startswith(f"loading the model of {run_dir} …")
    piped = run_cli("predict", run_dir, image, timeout=180)
    assert piped.returncode == 0 and "loading" not in piped.stderr  # scripts get the results alone


def test_a_running_run_is_never_resumed_into_a_second_process(tmp_path, fake_cifar):
    """The app's palette lists resumable runs when it opens; by the time one is picked it may be running again."""
    config = make_config(tiny_config(fake_cifar, tmp_path / "runs"))
    run_dir = create_run(config)
    store.write_status(run_dir, "running", "training", pid=os.getpid())
    lock = store.RunLock.acquire(run_dir)  # a trainer holds the run
    try:
        with pytest.raises(store.RunStoreError, match="being trained by another process"):
            launcher.start_detached(config, resume=run_dir)
    finally:
        lock.release()
    assert not (run_dir / store.TRAIN_LOG).exists()  # no process was started


def test_a_stop_while_the_trainer_starts_ends_the_run_stopped_not_killed(tmp_path, fake_cifar):
    """The app's Stop (the STOP file, then SIGTERM) at once after Start, while the new process still imports
    TensorFlow: it was killed by the SIGTERM and read as 'killed'; now it ends 'stopped', saying who asked."""
    config = make_config(tiny_config(fake_cifar, tmp_path / "runs", cache_dir=str(tmp_path / "features")))
    run_dir = launcher.start_detached(config)
    assert launcher.request_stop(run_dir, by="the app")
    wait_for(lambda: store.effective_state(store.read_status(run_dir)) != "running", timeout=180, what="the end")
    status = store.read_status(run_dir)
    assert (status.state, store.effective_state(status)) == ("stopped", "stopped"), status
    assert "the app" in status.message and "before training started" in status.message, status.message
    assert not (run_dir / store.STOP_FILE).exists()
    # and a plain SIGTERM (kill) in the same moment is kept the same way
    run_dir = launcher.start_detached(config)
    os.kill(store.holder_pid(run_dir), signal.SIGTERM)
    wait_for(lambda: store.effective_state(store.read_status(run_dir)) != "running", timeout=180, what="the end")
    status = store.read_status(run_dir)
    assert status.state == "stopped" and "SIGTERM" in status.message, status


def test_a_second_signal_while_the_trainer_starts_ends_it_at_once(tmp_path):
    """The first stop signal is kept as the STOP file; a second (an impatient Ctrl-C) does not wait for TensorFlow."""
    code = ("import sys, time; from pathlib import Path; from tui_cifar.engine.launcher import keep_stop_signals; "
            "keep_stop_signals(Path(sys.argv[1])); print('ready', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            env=cli_env())
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: (tmp_path / store.STOP_FILE).exists(), timeout=10, what="the kept request")
        assert (tmp_path / store.STOP_FILE).read_text() == "SIGINT" and proc.poll() is None  # kept, still going
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == -signal.SIGINT
    finally:
        proc.kill()
