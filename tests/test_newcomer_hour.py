"""A newcomer's second hour (issue 20): small runs that just work, resume that refuses a finished run, stage 2
from pixels shuffling, a test report without sklearn's warning, the data folder the CLI used."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from fixtures.tui_support import FINISHED, copy_runs

from tui_cifar.cli import commands
from tui_cifar.config import make_config
from tui_cifar.engine import launcher
from tui_cifar.runs import store


def test_a_small_run_holds_out_a_tenth_of_its_images_for_validation():
    config = make_config({"limit_train": 3000, "limit_test": 1000})
    assert config.val_size is None and config.val_images == 300
    assert make_config({}).val_images == 5000  # all 50,000: the split it always had
    assert make_config({"limit_train": 3000, "val_size": 600}).val_images == 600  # set: kept


def test_a_refused_setting_names_its_flag_on_the_command_line(capsys):
    code = commands.main(["train", "--limit-train", "100", "--val-size", "100"])
    err = capsys.readouterr().err
    assert code == commands.EXIT_USAGE
    assert "--val-size (100) must be smaller than the training images (100)" in err and "val_size" not in err
    code = commands.main(["train", "--batch-size", "0"])
    assert code == commands.EXIT_USAGE and "--batch-size must be between 1 and 4096" in capsys.readouterr().err


def test_the_data_line_says_the_split_is_a_fraction():
    import io

    from tui_cifar.cli.console import plain_reporter

    out = io.StringIO()
    report = plain_reporter(out)
    report({"type": "run_start", "config": make_config({"limit_train": 3000}).to_json(), "device": "CPU"})
    report({"type": "data", "source": "x", "train": 2700, "val": 300, "test": 1000})
    assert "2700 train / 300 val (10%: --val-size sets it) / 1000 test" in out.getvalue()


def test_a_finished_run_is_not_resumed(tmp_path, capsys):
    runs = copy_runs(tmp_path / "runs")
    run = runs / FINISHED
    before = (run / store.METRICS_LOG).read_bytes()
    code = commands.main(["--runs-dir", str(runs), "train", "--resume", FINISHED])
    err = capsys.readouterr().err
    assert code == commands.EXIT_FAILED
    assert "has finished: there is nothing to resume" in err and f"cifar-tui evaluate {run} --recompute" in err
    with pytest.raises(store.RunStoreError, match="--recompute"):  # the app's Resume comes here
        launcher.start_detached(make_config({"runs_dir": str(runs)}), resume=run)
    assert (run / store.METRICS_LOG).read_bytes() == before
    assert store.read_status(run).state == "finished"


def test_stage_two_from_pixels_shuffles_every_epoch_without_augmentation():
    from tui_cifar.engine.training import _pixel_dataset

    x = np.zeros((64, 4, 4, 3), np.uint8)
    y = np.arange(64)
    ds = _pixel_dataset(x, y, 16, augment=False, seed=1, shuffle=True)
    orders = [np.concatenate([labels.numpy() for _, labels in ds]) for _ in range(3)]
    assert all(sorted(order) == list(y) for order in orders)
    assert not np.array_equal(orders[0], y) and not np.array_equal(orders[0], orders[1])
    val = _pixel_dataset(x, y, 16, augment=False, seed=1, shuffle=False)
    assert np.array_equal(np.concatenate([labels.numpy() for _, labels in val]), y)  # validation keeps its order


def test_the_test_report_scores_float32_probabilities_without_a_warning():
    from tui_cifar.engine.evaluation import report_from_probabilities

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 10)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs = ((probs + probs[:, ::-1]) / 2).astype(np.float64)  # TTA's average of float32 softmaxes, as float64
    probs[0] = 0.0
    probs[0, 3] = 1.0  # a certain prediction: log(0) elsewhere
    y = np.arange(200) % 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = report_from_probabilities(y, probs)
    assert np.isfinite(report["test_loss"]) and 2.0 < report["test_loss"] < 3.0


def test_predict_names_a_missing_run_before_searching_the_photos(tmp_path, capsys):
    photos = tmp_path / "photos"
    (photos / "cat").mkdir(parents=True)
    (photos / "cat" / "a.png").write_bytes(b"x")
    code = commands.main(["--runs-dir", str(tmp_path / "runs"), "predict", "nosuchrun", str(photos)])
    err = capsys.readouterr().err
    assert code == commands.EXIT_FAILED and "nosuchrun: no such run folder" in err
    assert "images found" not in err  # the folder was not searched first


def test_the_photo_report_says_accuracy_and_leaves_undefined_precision_blank(tmp_path, capsys):
    from tui_cifar.cli.report import print_photo_score
    from tui_cifar.engine.data import CLASS_NAMES
    from tui_cifar.engine.folder_labels import score_photos
    from tui_cifar.engine.prediction import FilePrediction

    def predicted(rel: str, cls: str) -> FilePrediction:
        top = sorted(((c, 0.91 if c == cls else 0.01) for c in CLASS_NAMES), key=lambda t: -t[1])
        return FilePrediction(tmp_path / rel, top, root=tmp_path)

    score = score_photos([predicted("cat/a.png", "cat"), predicted("cat/b.png", "dog"), predicted("ship/c.png", "ship")])
    assert score["report"]["accuracy"] == pytest.approx(2 / 3) and "test_accuracy" not in score["report"]
    print_photo_score(score, None)
    cells = [line.replace("│", " ").split() for line in capsys.readouterr().out.splitlines()]
    rows = {c[0]: c[1:4] for c in cells if len(c) == 4 and c[0] in CLASS_NAMES}  # the per-class table's rows
    assert rows["cat"] == ["2", "0.500", "1.000"]
    assert rows["dog"] == ["0", "-", "0.000"]  # predicted once, wrongly: precision 0; no photos: recall -
    assert rows["bird"] == ["0", "-", "-"]  # never predicted: no precision either


def _status(run_dir: Path, state: str, started: float, updated: float, pid: int) -> None:
    import datetime as dt
    import json
    import socket

    iso = lambda t: dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")  # noqa: E731
    (run_dir / store.STATUS_FILE).write_text(json.dumps({
        "state": state, "pid": pid, "host": socket.gethostname(), "started_at": iso(started),
        "updated_at": iso(updated), "message": "", "stage": None, "version": 1}))


def test_a_runs_duration_counts_from_its_launch(tmp_path):
    import json
    import os
    import time

    from tui_cifar.runs.reader import summarize_run

    now = time.time()
    running = tmp_path / "20260101-000000-a"
    running.mkdir()
    _status(running, "running", now - 15, now - 13, os.getpid())  # launched 15 s ago; TensorFlow took 12 of them
    (running / store.METRICS_LOG).write_text(json.dumps({"type": "run_start", "wall_time": 0.0}) + "\n"
                                                + json.dumps({"type": "phase", "wall_time": 2.0}) + "\n")
    lock = store.RunLock.acquire(running)  # what a trainer holds while it runs
    try:
        assert 14 <= summarize_run(running).duration_s <= 20
    finally:
        lock.release()
    failed = tmp_path / "20260101-000001-b"
    failed.mkdir()
    _status(failed, "failed", now - 60, now - 40, 1)  # failed 20 s after its launch, 0.3 s into train_run
    (failed / store.METRICS_LOG).write_text(json.dumps({"type": "run_end", "state": "failed", "wall_time": 0.3}))
    assert summarize_run(failed).duration_s == pytest.approx(20, abs=1)


def test_the_cli_lists_runs_newest_first_as_the_app_does(tmp_path, capsys):
    import json
    import time

    now = time.time()
    for name, age in (("20260101-000000-old", 300), ("20260101-000500-new", 10), ("20260101-000200-mid", 100)):
        (tmp_path / name).mkdir()
        (tmp_path / name / store.CONFIG_FILE).write_text("{}")
        _status(tmp_path / name, "finished", now - age, now - age + 5, 1)
    assert commands.main(["runs", "--runs-dir", str(tmp_path), "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == [
        "20260101-000500-new", "20260101-000200-mid", "20260101-000000-old"]


def test_doctor_on_a_terminal_prints_no_tensorflow_start_up_lines(tmp_path):
    """TensorFlow's "failed call to cuInit" and oneDNN lines go to the stderr log, not between doctor's lines."""
    import os
    import time

    from faultkit import cli_command
    from test_runlife import terminal_run

    from tui_cifar.paths import stderr_log_path

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as chatty as it is by default
    proc, printed = terminal_run(cli_command("doctor"), env)
    proc.wait(timeout=240)
    time.sleep(0.5)
    out = b"".join(printed).decode("utf-8", "replace")
    assert "TF devices" in out and "data" in out, out
    for chatter in ("cuInit", "absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard", "cuda drivers"):
        assert chatter not in out, out
    assert "oneDNN" in stderr_log_path().read_text()


def test_doctor_says_when_the_data_folder_holds_no_cifar10(tmp_path, monkeypatch, fake_cifar):
    from tui_cifar.engine.data import DATA_DIR_ENV
    from tui_cifar.engine.doctor import data_location

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "khome"))
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert "no CIFAR-10 there" in data_location(None) and str(tmp_path / "khome") in data_location(None)
    assert data_location(str(tmp_path)).startswith(f"{tmp_path}: no CIFAR-10 there")
    assert data_location(str(fake_cifar)) == str(fake_cifar / "cifar-10-batches-py")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "gone"))
    assert data_location(None).startswith(f"{tmp_path / 'gone'} (${DATA_DIR_ENV}): no CIFAR-10 there")


def test_an_explanation_png_says_what_each_panel_is_and_the_class_and_probability_of_the_map(tmp_path):
    from PIL import Image

    from tui_cifar.engine.explain import PNG_CAPTION, PNG_PANEL, Explanation, explanation_png, panel_captions

    photo = tmp_path / "cat.png"
    Image.new("RGB", (64, 48), (200, 120, 40)).save(photo)
    explanation = Explanation(np.full((32, 32, 3), 90, np.uint8), np.linspace(0, 1, 25).reshape(5, 5), "cat")
    assert panel_captions(explanation, 0.873) == ["photo (central square)", "model input 32x32", "Grad-CAM: cat (87.3%)"]
    png = np.asarray(Image.open(explanation_png(photo, explanation, tmp_path / "why.png", 0.873)))
    assert png.shape == (PNG_PANEL + PNG_CAPTION, 3 * PNG_PANEL, 3)
    strip = png[PNG_PANEL:]
    for k in range(3):  # a caption written under every panel
        assert (strip[:, k * PNG_PANEL:(k + 1) * PNG_PANEL] < 128).any(), k
