"""Full and read-only disks, on a real small tmpfs (mounted per test; skipped where mounting is not allowed):
one clear line and exit 1, no empty run folder, a log that never ends mid-line, a status that tells the truth,
no orphan temporary files."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import tiny_config
from faultkit import run_cli, stray_temp_files, write_config

from tui_cifar.cli import commands
from tui_cifar.runs import store

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _mount(folder: Path, options: str) -> None:
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if out.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip() or out.returncode}); needs root or CAP_SYS_ADMIN")


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount(disk, "size=32m")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill the disk to the last byte, then free ``leave`` bytes (rounded up to whole pages by tmpfs)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 16, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def test_a_full_disk_before_the_start_is_one_line_and_no_run_folder(small_disk, fake_cifar, capsys):
    runs = small_disk / "runs"
    runs.mkdir()
    fill(small_disk)
    code = commands.main(["train", "--data-dir", str(fake_cifar), "--runs-dir", str(runs), "--weights", "none"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err
    assert list(runs.iterdir()) == []


def test_a_cut_log_line_is_skipped_once_and_never_glued(small_disk):
    run_dir = small_disk / "run"
    run_dir.mkdir()
    filler = fill(small_disk, leave=6000)
    writer = store.MetricsWriter(run_dir)
    written = 0
    with pytest.raises(OSError) as info:
        while True:
            writer.write({"type": "batch", "n": written, "pad": "x" * 700})
            written += 1
    assert info.value.errno == errno.ENOSPC
    assert not (run_dir / store.METRICS_LOG).read_bytes().endswith(b"\n")  # cut mid-line for real
    filler.unlink()  # space again: the same process goes on...
    writer.write({"type": "batch", "n": "after the cut"})
    writer.close()
    writer = store.MetricsWriter(run_dir)  # ...and a resume appends after it
    writer.write({"type": "run_resume"})
    writer.close()
    records, problems = store.read_metrics(run_dir)
    assert [r["n"] for r in records[:-2]] == list(range(written))
    assert records[-2]["n"] == "after the cut" and records[-1]["type"] == "run_resume"
    assert len(problems) == 1 and "garbled" in problems[0]


def test_the_status_tells_the_truth_on_a_full_disk(small_disk):
    run_dir = small_disk / "run"
    run_dir.mkdir()
    store.write_status(run_dir, "running", "stage 2 " + "x" * 200)
    fill(small_disk)
    with pytest.raises(OSError):
        store.atomic_write_text(run_dir / "other.json", "{}")  # nothing new fits
    store.write_status(run_dir, "failed", "disk full while writing model.keras")
    status = store.read_status(run_dir)
    assert (status.state, status.message) == ("failed", "disk full while writing model.keras")
    assert stray_temp_files(run_dir) == []


def test_a_run_that_fills_the_disk_fails_truthfully_and_resumes(small_disk, fake_cifar, tmp_path):
    """The real CLI: the disk fills during training; then space is freed and the run is resumed."""
    runs = small_disk / "runs"
    config = write_config(tmp_path / "config.json", tiny_config(fake_cifar, runs, epochs_head=2, epochs_fine=1))
    filler = fill(small_disk, leave=96 * 1024)
    failed = run_cli("train", "--config", config, timeout=300)
    assert failed.returncode == 1, failed.stderr[-2000:]
    run_dir = next(runs.iterdir())
    status = store.read_status(run_dir)
    assert status.state == "failed" and "disk full" in status.message, status
    assert ("the last good model was kept" in status.message) == (run_dir / store.MODEL_FILE).is_file()
    assert "Traceback" not in failed.stderr
    error = run_dir / store.ERROR_FILE
    assert not error.exists() or "Traceback" in error.read_text()  # whole or absent, never empty
    (run_dir / ".tmp-1a2b3c4d-model.keras").write_bytes(b"")  # as a kill -9 during the first save leaves it
    filler.unlink()
    resumed = run_cli("train", "--resume", run_dir, timeout=300)
    assert resumed.returncode == 0, (resumed.stdout[-2000:], store.read_status(run_dir))
    assert store.read_status(run_dir).state == "finished"
    assert stray_temp_files(run_dir) == []
    records, problems = store.read_metrics(run_dir)
    assert records[-1]["type"] == "run_end" and records[-1]["state"] == "finished"
    assert len(problems) <= 1  # at most the one half line the full disk cut, skipped


def _tiny_model_run(runs: Path, fake_cifar: Path) -> Path:
    import keras

    from tui_cifar.config import make_config

    run_dir = runs / "20250101-000000-tiny"
    run_dir.mkdir(parents=True)
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs))
    keras.Model(inputs, outputs).save(run_dir / store.MODEL_FILE)
    config = make_config(tiny_config(fake_cifar, runs, runtime="keras", tta_flip=False))
    (run_dir / store.CONFIG_FILE).write_text(json.dumps(config.to_json()))
    store.write_status(run_dir, "stopped", "stopped by SIGINT")
    return run_dir


def test_a_read_only_runs_folder_gives_one_line_at_every_write(tmp_path, fake_cifar, capsys):
    disk = tmp_path / "ro"
    disk.mkdir()
    _mount(disk, "size=16m")
    try:
        run_dir = _tiny_model_run(disk / "runs", fake_cifar)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        argvs = {
            "evaluate": ["--data-dir", str(fake_cifar), "evaluate", str(run_dir)],
            "resume": ["train", "--resume", str(run_dir)],
            "export": ["export", str(run_dir), "--csv", str(run_dir / "metrics.csv")],
            "start": ["train", "--data-dir", str(fake_cifar), "--runs-dir", str(disk / "runs")],
        }
        for what, argv in argvs.items():
            assert commands.main(argv) == 1, what
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and err.startswith("cifar-tui: "), (what, err)
            assert "Read-only file system" in err or "not writable" in err, (what, err)
        assert sorted(p.name for p in (disk / "runs").iterdir()) == [run_dir.name]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
