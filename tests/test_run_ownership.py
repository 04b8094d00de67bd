"""One run folder, one trainer: ownership is the run's lock (flock on RUN/run.lock), never a pid in a file.

Real processes throughout: an unrelated `sleep` whose pid a run folder names, a lock holder killed
with SIGKILL, and two `cifar-tui train --resume RUN` started together.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import tiny_config
from faultkit import cli_command, cli_env, records, wait_for

from tui_cifar.config import make_config
from tui_cifar.engine import launcher
from tui_cifar.engine.launcher import create_run
from tui_cifar.runs import store


def _run(tmp_path: Path, fake_cifar: Path, **overrides) -> Path:
    return create_run(make_config(tiny_config(fake_cifar, tmp_path / "runs", **overrides)))


def _alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


@pytest.fixture
def bystander():
    """A real process that has nothing to do with any run."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("named", ["bystander", -1, 1])
def test_stop_never_signals_a_pid_that_a_run_folder_names(named, bystander, tmp_path, fake_cifar):
    """status.json and run.lock of a copied folder name a pid; nobody holds the lock: nothing is signalled."""
    run_dir = _run(tmp_path, fake_cifar)
    pid = bystander.pid if named == "bystander" else named
    store.write_status(run_dir, "running", "training", pid=pid)
    start = store.process_start_time(bystander.pid)
    (run_dir / store.LOCK_FILE).write_text(f"{pid} {start}\n")
    assert store.effective_state(store.read_status(run_dir)) != "running"  # killed (or unknown: a pid of -1)
    assert launcher.request_stop(run_dir, by="the app") is False
    time.sleep(0.2)
    assert _alive(bystander)


def test_stop_checks_the_holders_pid_and_start_time(bystander, tmp_path, fake_cifar):
    """Even with the lock held, a pid that is not the holder's own record is never signalled."""
    run_dir = _run(tmp_path, fake_cifar)
    store.write_status(run_dir, "running", "training", pid=bystander.pid)
    lock = store.RunLock.acquire(run_dir)
    try:
        for content in (f"{bystander.pid} 1\n", "1 1\n", "-1\n", f"{bystander.pid}\n", "garbage\n"):
            (run_dir / store.LOCK_FILE).write_text(content)  # start time wrong, pid <= 1, none, not a number
            assert store.holder_pid(run_dir) is None
            assert launcher.request_stop(run_dir) is True  # running: the STOP file is written...
            assert (run_dir / store.STOP_FILE).exists()
        time.sleep(0.2)
        assert _alive(bystander)  # ...and nobody is signalled
    finally:
        lock.release()


HOLDER = """
import sys, signal, time
from tui_cifar.runs import store
lock = store.RunLock.acquire(sys.argv[1])
lock.record(__import__("os").getpid())
signal.signal(signal.SIGTERM, lambda *a: (print("SIGTERM", flush=True), sys.exit(0)))
print("locked", flush=True)
time.sleep(60)
"""


def test_stop_signals_the_lock_holder_and_kill_9_releases_the_lock(tmp_path, fake_cifar):
    run_dir = _run(tmp_path, fake_cifar)
    store.write_status(run_dir, "running", "training", pid=1)  # status.json's pid plays no part
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert store.holder_pid(run_dir) == holder.pid
        assert store.effective_state(store.read_status(run_dir)) == "running"
        assert launcher.request_stop(run_dir) is True
        assert holder.stdout.readline().strip() == "SIGTERM"
        holder.wait(10)
    finally:
        holder.kill()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(store.RunStoreError, match=f"being trained by another process \\(pid {holder.pid}\\)"):
            store.RunLock.acquire(run_dir)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    finally:
        holder.kill()
    assert store.effective_state(store.read_status(run_dir)) == "killed"  # the kernel released it
    store.RunLock.acquire(run_dir).release()


def test_a_second_resume_is_refused_at_once_before_tensorflow_loads(tmp_path, fake_cifar):
    run_dir = _run(tmp_path, fake_cifar)
    store.write_status(run_dir, "stopped", "stopped by SIGINT")
    lock = store.RunLock.acquire(run_dir)  # the first trainer
    try:
        probe = ("import sys; from tui_cifar.cli import commands; rc = commands.main(['train', '--resume', sys.argv[1]]); "
                 "print('tensorflow' in sys.modules); sys.exit(rc)")
        out = subprocess.run([sys.executable, "-c", probe, str(run_dir)], capture_output=True, text=True,
                             timeout=120, env=cli_env())
    finally:
        lock.release()
    assert out.returncode == 1
    assert out.stdout.strip() == "False"
    assert "being trained by another process" in out.stderr
    assert not (run_dir / store.METRICS_LOG).exists()


def test_two_concurrent_resumes_train_exactly_once(tmp_path, fake_cifar):
    run_dir = _run(tmp_path, fake_cifar, epochs_head=1, epochs_fine=1)
    store.write_status(run_dir, "stopped", "stopped by SIGINT")
    procs = [subprocess.Popen(cli_command("train", "--resume", run_dir), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=cli_env()) for _ in range(2)]
    try:
        outcomes = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    codes = sorted(p.returncode for p in procs)
    refused = [err for (_, err), p in zip(outcomes, procs) if p.returncode == 1]
    assert codes == [0, 1], outcomes
    assert "being trained by another process" in refused[0]
    kinds = Counter(r.get("type") for r in records(run_dir))
    assert kinds["run_resume"] == 1 and kinds["run_end"] == 1
    assert store.read_status(run_dir).state == "finished"
    assert store.effective_state(store.read_status(run_dir)) == "finished"


def test_a_detached_run_is_running_from_its_first_moment(tmp_path, fake_cifar):
    """The launcher takes the lock and hands it to the child: no window where the new run reads as killed."""
    config = make_config(tiny_config(fake_cifar, tmp_path / "runs", epochs_head=1, epochs_fine=0))
    run_dir = launcher.start_detached(config)
    pid = store.read_status(run_dir).pid
    try:
        assert store.effective_state(store.read_status(run_dir)) == "running"
        wait_for(lambda: store.holder_pid(run_dir) == pid, 30, "the child to record itself as the holder")
        wait_for(lambda: not store.read_status(run_dir).locked, 300, "the run to end")
    finally:
        if store.read_status(run_dir).locked:
            os.kill(pid, signal.SIGKILL)
    assert store.read_status(run_dir).state == "finished", (run_dir / store.TRAIN_LOG).read_text()[-2000:]
