"""A newcomer's second hour (issue 20): small runs that just work, resume that refuses a finished run, stage 2
from pixels shuffling, a test report without sklearn's warning, the data folder the CLI used."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from fixtures.tui_support import FINISHED, copy_runs

from tui_cifar import cli, launcher, runstore
from tui_cifar.config import ConfigError, make_config


def test_a_small_run_holds_out_a_tenth_of_its_images_for_validation():
    config = make_config({"limit_train": 3000, "limit_test": 1000})
    assert config.val_size is None and config.val_images == 300
    assert make_config({}).val_images == 5000  # all 50,000: the split it always had
    assert make_config({"limit_train": 3000, "val_size": 600}).val_images == 600  # set: kept


def test_a_refused_setting_names_its_flag_on_the_command_line(capsys):
    code = cli.main(["train", "--limit-train", "100", "--val-size", "100"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE
    assert "--val-size (100) must be smaller than the training images (100)" in err and "val_size" not in err
    code = cli.main(["train", "--batch-size", "0"])
    assert code == cli.EXIT_USAGE and "--batch-size must be between 1 and 4096" in capsys.readouterr().err


def test_the_data_line_says_the_split_is_a_fraction():
    import io

    from tui_cifar.console import plain_reporter

    out = io.StringIO()
    report = plain_reporter(out)
    report({"type": "run_start", "config": make_config({"limit_train": 3000}).to_json(), "device": "CPU"})
    report({"type": "data", "source": "x", "train": 2700, "val": 300, "test": 1000})
    assert "2700 train / 300 val (10%: --val-size sets it) / 1000 test" in out.getvalue()


def test_a_finished_run_is_not_resumed(tmp_path, capsys):
    runs = copy_runs(tmp_path / "runs")
    run = runs / FINISHED
    before = (run / runstore.METRICS_LOG).read_bytes()
    code = cli.main(["--runs-dir", str(runs), "train", "--resume", FINISHED])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert "has finished: there is nothing to resume" in err and f"cifar-tui evaluate {run} --recompute" in err
    with pytest.raises(runstore.RunStoreError, match="--recompute"):  # the app's Resume comes here
        launcher.start_detached(make_config({"runs_dir": str(runs)}), resume=run)
    assert (run / runstore.METRICS_LOG).read_bytes() == before
    assert runstore.read_status(run).state == "finished"


def test_stage_two_from_pixels_shuffles_every_epoch_without_augmentation():
    from tui_cifar.training import _pixel_dataset

    x = np.zeros((64, 4, 4, 3), np.uint8)
    y = np.arange(64)
    ds = _pixel_dataset(x, y, 16, augment=False, seed=1, shuffle=True)
    orders = [np.concatenate([labels.numpy() for _, labels in ds]) for _ in range(3)]
    assert all(sorted(order) == list(y) for order in orders)
    assert not np.array_equal(orders[0], y) and not np.array_equal(orders[0], orders[1])
    val = _pixel_dataset(x, y, 16, augment=False, seed=1, shuffle=False)
    assert np.array_equal(np.concatenate([labels.numpy() for _, labels in val]), y)  # validation keeps its order


def test_the_test_report_scores_float32_probabilities_without_a_warning():
    from tui_cifar.evaluation import report_from_probabilities

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
