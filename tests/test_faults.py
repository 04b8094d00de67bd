"""What cifar-tui does when things go wrong: killed runs, closed terminals, full disks, bad files.

Training faults run the real `cifar-tui train` in a subprocess on the fake data and time their
signals by watching metrics.jsonl; the rest call the engine in-process with one fault injected.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_config
from faultkit import (
    cli_command,
    cli_env,
    find_record,
    records,
    run_cli,
    stray_temp_files,
    wait_for,
    write_config,
)

from tui_cifar.cli import commands
from tui_cifar.engine.launcher import create_run
from tui_cifar.runs import reader, store


def slow_config(data_dir: Path, runs_dir: Path, **overrides) -> dict:
    """A tiny run with enough stage-2 epochs and batches (about a second each) to interrupt it mid-epoch."""
    return tiny_config(data_dir, runs_dir, epochs_fine=6, patience=100, batch_size=8, **overrides)


def full_config(data_dir: Path, runs_dir: Path, **overrides) -> dict:
    """Every setting, as train_run writes config.json."""
    from tui_cifar.config import make_config

    return make_config(tiny_config(data_dir, runs_dir, **overrides)).to_json()


def new_run_dir(runs_dir: Path) -> Path | None:
    dirs = [d for d in runs_dir.iterdir() if d.is_dir()] if runs_dir.is_dir() else []
    return dirs[0] if len(dirs) == 1 else None


def start_training(config_file: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen(cli_command("train", "--config", config_file, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=cli_env())


def stop_process(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.kill()
    out, _ = proc.communicate()
    return out


def is_stage2_batch(min_epoch: int):
    return lambda r: r.get("type") == "batch" and r.get("stage") == 2 and r.get("epoch", 0) >= min_epoch


def epoch_counts(recs: list[dict]) -> Counter:
    return Counter((r["stage"], r["epoch"]) for r in recs if r.get("type") == "epoch")


def assert_finite_model(path: Path) -> None:
    from tui_cifar.engine.prediction import load_model_checked

    model = load_model_checked(path)
    assert all(np.isfinite(np.asarray(w)).all() for w in model.get_weights()), f"{path} holds NaN/inf weights"


# --- 2. training faults ---------------------------------------------------------------------------


def interrupt_mid_stage(sig: signal.Signals, fake_cifar: Path, tmp_path: Path) -> Path:
    """Start a run, send `sig` during stage 2's second epoch, and check it stopped cleanly and soon."""
    runs = tmp_path / "runs"
    proc = start_training(write_config(tmp_path / "config.json", slow_config(fake_cifar, runs)))
    try:
        run_dir = wait_for(lambda: new_run_dir(runs), 60, "the run folder", proc)
        wait_for(lambda: find_record(run_dir, is_stage2_batch(2)), 150, "stage 2, epoch 2", proc)
        sent = time.monotonic()
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        stop_process(proc)
    assert took < 20, f"took {took:.1f}s to stop"
    assert proc.returncode == 130, out  # stopped, not failed: the shell's "interrupted"
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    status = store.read_status(run_dir)
    assert status.state == "stopped" and sig.name in status.message, status
    recs = records(run_dir)
    assert recs[-1]["type"] == "run_end" and recs[-1]["state"] == "stopped"
    assert sum(r["type"] == "run_end" for r in recs) == 1
    assert (2, 1) in epoch_counts(recs)  # at least one epoch completed, so a model was saved
    assert_finite_model(run_dir / store.MODEL_FILE)
    assert not (run_dir / store.REPORT_FILE).exists()  # a stopped run never reads the test set
    assert f"run stopped: stopped by {sig.name}" in out
    return run_dir


def test_sigint_mid_stage_stops_cleanly(fake_cifar, tmp_path):
    interrupt_mid_stage(signal.SIGINT, fake_cifar, tmp_path)


def test_sigterm_mid_stage_stops_cleanly_and_resumes_where_it_stopped(fake_cifar, tmp_path):
    """After the stop, `--resume` goes on after the epoch it stopped in: no epoch trained or logged twice."""
    run_dir = interrupt_mid_stage(signal.SIGTERM, fake_cifar, tmp_path)
    stopped_in = max(e for s, e in epoch_counts(records(run_dir)) if s == 2)

    result = run_cli("train", "--resume", run_dir, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    recs = records(run_dir)
    resumed = recs.index(next(r for r in recs if r["type"] == "run_resume"))
    trained_after = {(r["stage"], r["epoch"]) for r in recs[resumed:] if r["type"] == "batch"}
    assert trained_after == {(2, e) for e in range(stopped_in + 1, 7)}
    assert epoch_counts(recs) == Counter({(1, 1): 1, (1, 2): 1} | {(2, e): 1 for e in range(1, 7)})
    assert [r["state"] for r in recs if r["type"] == "run_end"] == ["stopped", "finished"]
    assert not (run_dir / store.BACKUP_DIR / "stage2").exists()  # the finished stage's backup is cleaned up


def test_kill_9_then_resume_logs_every_epoch_exactly_once(fake_cifar, tmp_path):
    runs = tmp_path / "runs"
    values = slow_config(fake_cifar, runs)
    proc = start_training(write_config(tmp_path / "config.json", values))
    try:
        run_dir = wait_for(lambda: new_run_dir(runs), 60, "the run folder", proc)
        wait_for(lambda: find_record(run_dir, is_stage2_batch(3)), 150, "stage 2, epoch 3", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        stop_process(proc)
    before, _ = store.read_metrics(run_dir)
    assert store.effective_state(store.read_status(run_dir)) == "killed"
    assert not any(r["type"] == "run_end" for r in before)
    logged = max(e for s, e in epoch_counts(before) if s == 2)
    interrupted = max(r["epoch"] for r in before if r["type"] == "batch" and r["stage"] == 2)

    result = run_cli("train", "--resume", run_dir, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    recs = records(run_dir)
    expected = {(1, e): 1 for e in range(1, values["epochs_head"] + 1)} | {(2, e): 1 for e in range(1, 7)}
    assert epoch_counts(recs) == Counter(expected)  # no lost and no repeated epoch
    before_epochs = [r for r in before if r["type"] == "epoch"]
    assert before_epochs == [r for r in recs if r["type"] == "epoch"][: len(before_epochs)]  # kept as written
    resumed = recs.index(next(r for r in recs if r["type"] == "run_resume"))
    first = next(r for r in recs[resumed:] if r["type"] == "batch")
    assert first["stage"] == 2  # stage 1 is not trained again
    if interrupted > logged:  # killed mid-epoch: that epoch runs again, the ones before it do not
        assert first["epoch"] == logged + 1, (logged, first)
    else:  # killed between an epoch's record and its backup
        assert first["epoch"] in (logged, logged + 1)
    assert recs[-1]["type"] == "run_end" and recs[-1]["state"] == "finished"
    assert store.read_status(run_dir).state == "finished"
    assert (run_dir / store.REPORT_FILE).is_file()


def ignores_sighup(pid: int) -> bool:
    """From /proc/PID/status: is SIGHUP (signal 1, bit 0 of SigIgn) ignored by the process?"""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & 1 << (signal.SIGHUP - 1))
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/PID/status")
def test_sighup_does_not_end_a_detached_run(fake_cifar, tmp_path):
    runs = tmp_path / "runs"
    config_file = write_config(tmp_path / "config.json", tiny_config(fake_cifar, runs, batch_size=8))
    result = run_cli("train", "--config", config_file, "--detach", timeout=60)
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    pid = store.read_status(run_dir).pid
    assert pid and os.getsid(pid) == pid and os.getsid(pid) != os.getsid(0)  # its own session
    try:
        # As soon as it ignores SIGHUP, within moments of starting (long before TensorFlow is loaded).
        wait_for(lambda: ignores_sighup(pid), 10, "the detached child to ignore SIGHUP")
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: find_record(run_dir, lambda r: r.get("type") == "batch"), 150, "the first batch")
        os.kill(pid, signal.SIGHUP)  # and again mid-training
        wait_for(lambda: store.read_status(run_dir).state != "running", 180, "the detached run to end")
    finally:
        if store.read_status(run_dir).locked:  # still training: do not leave it behind
            os.kill(pid, signal.SIGKILL)
    assert store.read_status(run_dir).state == "finished", (run_dir / store.TRAIN_LOG).read_text()[-2000:]
    assert (run_dir / store.REPORT_FILE).is_file()
    assert "run finished" in (run_dir / store.TRAIN_LOG).read_text()


def test_closing_the_terminal_of_a_foreground_run(fake_cifar, tmp_path):
    """`cifar-tui train` on a terminal that closes mid-run: SIGHUP and the EIO on every later print don't end it."""
    import pty

    runs = tmp_path / "runs"
    config_file = write_config(tmp_path / "config.json", tiny_config(fake_cifar, runs, batch_size=8))
    master, slave = pty.openpty()
    # A new session whose controlling terminal is the pty, like a login shell's.
    take_tty = "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])"
    proc = subprocess.Popen([sys.executable, "-c", take_tty, *cli_command("train", "--config", config_file)],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=cli_env())
    os.close(slave)
    try:
        seen = b""
        deadline = time.monotonic() + 150
        while b"stage 1 epoch 1/" not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([master], [], [], 1.0)[0]:
                seen += os.read(master, 4096)  # the progress display is what makes later writes fail
        assert b"stage 1 epoch 1/" in seen, seen[-2000:]
        os.close(master)  # hang up: SIGHUP to the session, EIO on the terminal from now on
        proc.wait(timeout=150)
    finally:
        stop_process(proc)
    run_dir = new_run_dir(runs)
    assert store.read_status(run_dir).state == "finished", (run_dir / "error.txt").read_text()[-2000:] \
        if (run_dir / "error.txt").exists() else store.read_status(run_dir)
    assert (run_dir / store.REPORT_FILE).is_file()
    assert records(run_dir)[-1]["state"] == "finished"


@pytest.mark.parametrize("stage", [1, 2])
def test_nan_loss_fails_the_run_and_keeps_the_last_good_model(stage, fake_cifar, tmp_path, monkeypatch):
    """NaN in the cached features of one stage: the run fails naming NaN, the stage and its learning rate.

    Stage 1 (pooled features) diverges in its first epoch: no model is ever saved, even though that
    epoch's accuracy is the best so far. Stage 2 (boundary activations): stage 1's model stays.
    """
    from tui_cifar.config import make_config
    from tui_cifar.engine import features
    from tui_cifar.engine.training import train_run

    real_extract = features.extract

    def poisoned(*args, **kwargs):
        acts, pooled = real_extract(*args, **kwargs)
        poisoned_part = pooled if stage == 1 else acts
        if poisoned_part is not None:
            poisoned_part[::3] = np.nan
        return acts, pooled

    monkeypatch.setattr(features, "extract", poisoned)
    config = make_config(tiny_config(fake_cifar, tmp_path / "runs"))
    run_dir = create_run(config)
    assert train_run(config, run_dir) == "failed"
    status = store.read_status(run_dir)
    assert status.state == "failed"
    lr = config.lr_head if stage == 1 else config.lr_fine
    assert status.message == (
        f"TrainingDiverged: the loss became NaN/inf in stage {stage}; lower the learning rate (now {lr:g}) and retry")
    recs = records(run_dir)
    assert recs[-1]["type"] == "run_end" and recs[-1]["state"] == "failed"
    assert any(r["type"] == "batch" and r["stage"] == stage and not np.isfinite(r["loss"]) for r in recs)
    assert not (run_dir / store.BACKUP_DIR / f"stage{stage}").exists()  # a resume starts the stage over
    if stage == 1:
        assert not (run_dir / store.MODEL_FILE).exists()
    else:
        assert_finite_model(run_dir / store.MODEL_FILE)  # stage 1's best, never overwritten by NaN weights


# --- 3. storage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detach"])
def test_runs_folder_that_cannot_be_created(fake_cifar, tmp_path, detach):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    config_file = write_config(tmp_path / "config.json", tiny_config(fake_cifar, blocker / "runs"))
    started = time.monotonic()
    result = run_cli("train", "--config", config_file, *(["--detach"] if detach else []), timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == f"cifar-tui: cannot create runs folder {blocker / 'runs'}: Not a directory"
    assert time.monotonic() - started < 15  # before TensorFlow is imported


def test_runs_folder_that_is_a_file(fake_cifar, tmp_path, capsys):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    rc = commands.main(["train", "--config", str(write_config(tmp_path / "c.json", tiny_config(fake_cifar, blocker)))])
    assert rc == 1
    assert capsys.readouterr().err.strip() == (
        f"cifar-tui: runs folder {blocker} is a file, not a folder; choose another with --runs-dir")


@pytest.mark.parametrize("how", ["chmod", "access-denied"])
def test_read_only_runs_folder(fake_cifar, tmp_path, capsys, monkeypatch, how):
    """chmod 555 where that binds (not as root); as root, the permission check is made to say no."""
    if how == "chmod" and os.geteuid() == 0:
        pytest.skip("root may write into a read-only folder")
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o555)
    if how == "access-denied":
        real_access = os.access
        monkeypatch.setattr(store.os, "access", lambda p, mode, **kw: False if Path(p) == runs else real_access(p, mode, **kw))
    try:
        rc = commands.main(["train", "--config", str(write_config(tmp_path / "c.json", tiny_config(fake_cifar, runs)))])
    finally:
        runs.chmod(0o755)
    assert rc == 1
    assert capsys.readouterr().err.strip() == f"cifar-tui: runs folder {runs} is not writable; choose another with --runs-dir"
    assert list(runs.iterdir()) == []


def test_disk_full_on_the_second_checkpoint(fake_cifar, keras_home, tmp_path, monkeypatch):
    """ENOSPC while model.keras is rewritten: the run fails with 'disk full', the previous model is intact."""
    import keras
    from keras.src.backend import config as keras_config

    from tui_cifar.config import make_config
    from tui_cifar.engine.training import train_run

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(keras_home))  # real ImageNet weights: it learns
    real_save = keras.Model.save
    saves: list[str] = []
    kept: list[bytes] = []

    def save(self, filepath, *args, **kwargs):
        saves.append(str(filepath))
        if len(saves) == 2:
            kept.append((Path(filepath).parent / store.MODEL_FILE).read_bytes())
            Path(filepath).write_bytes(b"PK\x03\x04 the first half of a model")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filepath))
        return real_save(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", save)
    config = make_config(tiny_config(fake_cifar, tmp_path / "runs", weights="imagenet", epochs_head=4))
    run_dir = create_run(config)
    assert train_run(config, run_dir) == "failed"
    assert len(saves) == 2, "val_accuracy never improved twice: the fault was not reached"
    status = store.read_status(run_dir)
    assert status.state == "failed" and "disk full" in status.message, status.message
    assert f"{run_dir / store.MODEL_FILE}" in status.message and ".tmp-" not in status.message
    assert (run_dir / store.MODEL_FILE).read_bytes() == kept[0]
    assert_finite_model(run_dir / store.MODEL_FILE)
    assert stray_temp_files(run_dir) == []
    assert records(run_dir)[-1]["state"] == "failed"


def _garbled_run(runs: Path, name: str, fake_cifar: Path) -> Path:
    run = runs / name
    run.mkdir(parents=True)
    store.atomic_write_json(run / store.CONFIG_FILE, full_config(fake_cifar, runs))
    (run / store.STATUS_FILE).write_text('{"state": "runn')  # cut mid-write
    good = [{"type": "epoch", "stage": 1, "epoch": e, "val_accuracy": v, "wall_time": 10.0 * e}
            for e, v in ((1, 0.5), (2, 0.75), (3, 0.625))]
    with open(run / store.METRICS_LOG, "wb") as f:
        f.write((json.dumps(good[0]) + "\n" + json.dumps(good[1]) + "\n").encode())
        f.write(b"{\"type\": \"epo\n")  # line 3: garbled
        f.write(b"\x00\x00\x00\x00\n")  # line 4: zeros from a crash
        f.write((json.dumps(good[2]) + "\n").encode())
        f.write(b'{"type": "epoch", "stage": 1, "ep')  # a last line cut short
    return run


def test_garbled_metrics_and_status_readers(fake_cifar, tmp_path):
    run = _garbled_run(tmp_path / "runs", "20260101-000000-garbled", fake_cifar)
    status = store.read_status(run)
    assert status.state == "unknown" and "status.json is unreadable" in status.problem
    recs, problems = store.read_metrics(run)
    assert [r["epoch"] for r in recs] == [1, 2, 3]
    assert problems == [
        "metrics.jsonl line 3 is garbled and was skipped",
        "metrics.jsonl line 4 is garbled and was skipped",
        "metrics.jsonl ends with an incomplete line (the run was cut off mid-write?)",
    ]
    summary = reader.summarize_run(run)
    assert summary.state == "unknown" and summary.best_val_accuracy == 0.75 and summary.duration_s == 30.0
    assert summary.problems[0].startswith("status.json is unreadable") and summary.problems[1:] == problems


def test_garbled_run_in_cifar_tui_runs(fake_cifar, tmp_path):
    runs = tmp_path / "runs"
    run = _garbled_run(runs, "20260101-000000-garbled", fake_cifar)
    (runs / "20260101-000001-empty").mkdir()  # no status, no config: not a run, skipped
    result = run_cli("runs", "--runs-dir", runs, timeout=60, env=cli_env(COLUMNS="200"))
    assert result.returncode == 0 and "Traceback" not in result.stderr
    (row,) = [line for line in result.stdout.splitlines() if run.name in line]
    assert "unknown" in row and "0.7500" in row and "mobilenetv2-0.35" in row
    assert f"{run.name}: status.json is unreadable" in result.stderr
    assert f"{run.name}: metrics.jsonl line 3 is garbled and was skipped" in result.stderr
    listed = json.loads(run_cli("runs", "--runs-dir", runs, "--json", timeout=60).stdout)
    assert [r["name"] for r in listed] == [run.name] and len(listed[0]["problems"]) == 4


class _FrozenClock:
    """Stands in for the datetime module in runs.store: every run is created at the same second."""

    class datetime:  # noqa: N801
        @staticmethod
        def now(tz=None):
            import datetime as real

            return real.datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz)

    import datetime as _real

    timezone = _real.timezone


def test_runs_created_in_the_same_second_by_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_dt", _FrozenClock)
    n = 24
    barrier = threading.Barrier(n)
    made: list[Path] = []

    def create():
        barrier.wait()
        made.append(store.create_run_dir(tmp_path / "runs", "same name"))

    threads = [threading.Thread(target=create) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == n and len(set(made)) == n
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(p.name for p in made)
    assert "20260102-030405-same-name" in {p.name for p in made}


def test_runs_created_in_the_same_second_by_processes(tmp_path):
    start = time.time() + 2.0
    script = textwrap.dedent(f"""
        import datetime, time, types
        from tui_cifar.runs import store
        frozen = datetime.datetime(2026, 1, 2, 3, 4, 5)
        store._dt = types.SimpleNamespace(datetime=types.SimpleNamespace(now=lambda tz=None: frozen))
        time.sleep(max(0.0, {start!r} - time.time()))
        print(store.create_run_dir({str(tmp_path / "runs")!r}, "same"))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(6)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outs)) == 6 and all(Path(o).is_dir() for o in outs)
    assert all(Path(o).name.startswith("20260102-030405-same") for o in outs)


# --- 4. untrusted config files --------------------------------------------------------------------

BAD_CONFIGS = {
    "wrong-type": ('{"batch_size": "large"}', "batch_size must be a whole number, not 'large'"),
    "bool-for-number": ('{"epochs_fine": true}', "epochs_fine must be a whole number, not True"),
    "out-of-range": ('{"lr_head": 5}', "lr_head must be between 1e-07 and 1, not 5.0"),
    "out-of-range-dropout": ('{"dropout": 1.5}', "dropout must be between 0 and 0.95, not 1.5"),
    "unknown-key": ('{"learning_rate": 0.01}', "unknown config key(s): learning_rate"),
    "bad-choice": ('{"fine_tune_blocks": "some"}', "fine_tune_blocks must be a whole number >= 0 or 'all', not 'some'"),
    "unknown-backbone": ('{"backbone": "vgg16"}', "unknown backbone 'vgg16'; choose one of: mobilenetv2, mobilenetv2-0.35, "
                         "mobilenetv3small, mobilenetv3large, efficientnetv2b0, resnet50"),
    "malformed": ('{"epochs_head": 3,,}', "is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 19"),
    "not-an-object": ("[1, 2]", "must hold an object of settings"),
}


def test_bad_config_files_exit_2_naming_the_field_without_tensorflow(tmp_path):
    """Every bad config, through the CLI's main() in one fresh interpreter that must never import TensorFlow."""
    files = {}
    for name, (text, _) in BAD_CONFIGS.items():
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(text)
    script = textwrap.dedent(f"""
        import contextlib, io, json, sys
        from tui_cifar.cli.commands import main
        out = {{}}
        for name, path in {({k: str(v) for k, v in files.items()})!r}.items():
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                rc = main(["train", "--config", path])
            out[name] = [rc, err.getvalue()]
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            out["flag"] = [main(["train", "--backbone", "vgg16"]), err.getvalue()]
        out["heavy"] = sorted(m for m in ("tensorflow", "keras", "textual") if m in sys.modules)
        print(json.dumps(out))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out.pop("heavy") == []
    # a flag's value is refused naming the flag; a config file's, naming its key
    assert out["flag"] == [2, f"cifar-tui: {BAD_CONFIGS['unknown-backbone'][1].replace('backbone', '--backbone', 1)}\n"]
    for name, (_, message) in BAD_CONFIGS.items():
        rc, err = out[name]
        assert rc == 2, (name, err)
        assert err.startswith("cifar-tui: ") and err.count("\n") == 1 and message in err, (name, err)
        if name in ("malformed", "not-an-object"):
            assert str(files[name]) in err


def test_bad_config_file_in_a_real_subprocess_is_quick(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"image_size": 20000}')
    started = time.monotonic()
    result = run_cli("train", "--config", bad, timeout=60)
    assert time.monotonic() - started < 10
    assert result.returncode == 2
    assert result.stderr == "cifar-tui: image_size must be between 32 and 600, not 20000\n"
    assert not (tmp_path / "runs").exists()


# --- 5. missing pieces ----------------------------------------------------------------------------

OFFLINE = "URL fetch failure on {}: None -- [Errno -3] Temporary failure in name resolution"


def test_no_dataset_and_no_network_names_every_place(tmp_path, monkeypatch):
    import keras

    from tui_cifar.engine.data import DatasetNotFound, load_cifar10

    def offline(*args, **kwargs):
        raise Exception(OFFLINE.format("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"))

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFound) as info:
        load_cifar10(empty)
    message = str(info.value)
    for place in (empty, empty / "cifar-10-batches-py", empty / "cifar-10-python.tar.gz"):
        assert f"  - {place}\n" in message, message
    cache = tmp_path / "keras_home" / "datasets"
    assert f"  - the Keras cache {cache} and its download (failed: [Errno -3] Temporary failure in name resolution)" in message
    assert f"Keras downloads it to {cache}" in message
    assert "--data-dir" in message and "internet" in message


def test_damaged_dataset_file_is_named(fake_cifar, tmp_path):
    import shutil

    from tui_cifar.engine.data import DatasetNotFound, load_cifar10

    copy = tmp_path / "cifar"
    shutil.copytree(fake_cifar, copy)
    (copy / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DatasetNotFound, match=f"CIFAR-10 under {copy} is unreadable or incomplete"):
        load_cifar10(copy)


def test_no_dataset_and_no_network_cli(fake_cifar, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    values = tiny_config(fake_cifar, tmp_path / "runs")
    del values["data_dir"]
    config_file = write_config(tmp_path / "config.json", values)
    dead_proxy = "http://127.0.0.1:9"  # no network here anyway; this makes any download fail at once
    env = cli_env(KERAS_HOME=str(tmp_path / "keras_home"), https_proxy=dead_proxy, http_proxy=dead_proxy,
                  HTTPS_PROXY=dead_proxy, HTTP_PROXY=dead_proxy, no_proxy="", NO_PROXY="")
    result = run_cli("train", "--config", config_file, "--data-dir", empty, timeout=120, env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cifar-tui: CIFAR-10 was not found. Looked in:" in result.stderr
    assert f"  - {empty / 'cifar-10-batches-py'}" in result.stderr
    assert f"  - the Keras cache {tmp_path / 'keras_home' / 'datasets'}" in result.stderr
    assert "Fix:" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_no_weights_and_no_network(fake_cifar, tmp_path, monkeypatch):
    from keras.src.backend import config as keras_config
    from keras.src.utils import file_utils

    from tui_cifar.config import make_config
    from tui_cifar.engine.training import train_run

    home = tmp_path / "keras_home"
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))
    asked: list[str] = []

    def offline(fname=None, origin=None, *args, **kwargs):
        asked.append(fname)
        raise Exception(OFFLINE.format(origin))

    monkeypatch.setattr(file_utils, "get_file", offline)
    config = make_config(tiny_config(fake_cifar, tmp_path / "runs", weights="imagenet", image_size=96))
    run_dir = create_run(config)
    assert train_run(config, run_dir) == "failed"
    message = store.read_status(run_dir).message
    assert asked == ["mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"]
    assert asked[0] in message and str(home / "models") in message, message
    assert "Temporary failure in name resolution" in message
    assert "internet" in message and "--weights none" in message
    assert "Traceback" not in message and "\n" not in message


def test_unknown_backbone_lists_the_choices():
    from tui_cifar.engine.backbones import BACKBONES

    result = run_cli("train", "--backbone", "resnet9000", timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"cifar-tui: unknown --backbone 'resnet9000'; choose one of: {', '.join(BACKBONES)}\n"


def _run_with(runs: Path, name: str, status: dict | None, config: dict) -> Path:
    run = runs / name
    run.mkdir(parents=True)
    if status is not None:
        (run / store.STATUS_FILE).write_text(json.dumps(status))
    (run / store.CONFIG_FILE).write_text(json.dumps(config))
    return run


def test_run_folders_from_other_versions(fake_cifar, tmp_path, capsys):
    runs = tmp_path / "runs"
    base = full_config(fake_cifar, runs)
    newer = _run_with(runs, "1-newer", {"state": "finished", "version": 99, "pid": 1, "queue": "gpu"},
                      {**base, "optimizer": "lion", "ema": True})
    older = {k: v for k, v in base.items() if k not in ("label_smoothing", "weight_decay")}
    old = _run_with(runs, "2-older", {"state": "finished"}, older)
    odd = _run_with(runs, "3-odd-types", {"state": "running", "pid": "abc", "host": socket.gethostname(),
                                          "version": "2", "stage": "two"}, base)

    status = store.read_status(newer)
    assert status.state == "finished" and "newer cifar-tui (format 99)" in status.problem
    summaries = {s.name: s for s in reader.list_runs(runs)}
    assert any("optimizer" in p and "ema" in p and "newer" in p for p in summaries["1-newer"].problems)
    assert summaries[old.name].problems == [
        "config.json lacks label_smoothing, weight_decay (written by an older cifar-tui?); defaults assumed"]
    assert store.read_status(odd).problem == "status.json has invalid pid, stage, version"
    assert summaries[odd.name].state == "unknown"  # never "running": its pid is not a pid
    assert commands.main(["runs", "--runs-dir", str(runs)]) == 0
    err = capsys.readouterr().err
    assert "1-newer: written by a newer cifar-tui (format 99)" in err

    assert commands.main(["evaluate", str(newer)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{newer / store.CONFIG_FILE}" in err and "optimizer" in err and "another version" in err
    assert commands.main(["train", "--resume", str(newer)]) == 1
    assert "optimizer" in capsys.readouterr().err


def test_evaluate_a_run_from_an_older_version(fake_cifar, tmp_path, capsys):
    """A config.json lacking newer settings still evaluates, with the defaults."""
    from tui_cifar.engine.model import build_transfer_model

    base = full_config(fake_cifar, tmp_path / "runs")
    run = _run_with(tmp_path / "runs", "old", {"state": "finished"},
                    {k: v for k, v in base.items() if k not in ("mixed_precision", "cache_dir", "tta_flip")})
    build_transfer_model("mobilenetv2-0.35", 32, 0, None).full.save(run / store.MODEL_FILE)
    assert commands.main(["--data-dir", str(fake_cifar), "evaluate", str(run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_test"] == 60 and report["tta_flip"] is True
