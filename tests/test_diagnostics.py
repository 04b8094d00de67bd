"""The core logic behind issue 13's explanations: overfitting, early stopping, cost estimate, compare, --notify."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tui_cifar.cli.console import plain_reporter
from tui_cifar.config import SETTINGS, make_config, with_labels
from tui_cifar.engine.features import cache_key, cache_present
from tui_cifar.notify import notify_env, run_notify_command
from tui_cifar.runs import diagnostics, store
from tui_cifar.runs.compare import differing_settings, load_compared
from tui_cifar.runs.estimate import estimate_run


def epoch(stage, n, loss, val_loss, acc=0.8, val_acc=0.8, **extra):
    return {"type": "epoch", "stage": stage, "epoch": n, "loss": loss, "val_loss": val_loss,
            "accuracy": acc, "val_accuracy": val_acc, **extra}


HEALTHY = [epoch(1, 1, 1.2, 1.1, 0.6, 0.62), epoch(1, 2, 1.0, 0.95, 0.7, 0.71), epoch(1, 3, 0.9, 0.9, 0.74, 0.75),
           epoch(1, 4, 0.85, 0.88, 0.76, 0.76)]


# ---------------------------------------------------------------------------- overfitting


def test_no_signal_while_both_losses_fall():
    assert diagnostics.overfitting(HEALTHY) is None
    assert diagnostics.overfitting([]) is None


def test_validation_loss_rising_while_training_loss_falls_is_flagged_with_advice():
    turning = HEALTHY + [epoch(1, 5, 0.8, 0.90, 0.77, 0.76), epoch(1, 6, 0.75, 0.93, 0.78, 0.76)]
    assert diagnostics.overfitting(turning) is None  # above its lowest for two epochs: not yet
    turning.append(epoch(1, 7, 0.7, 0.87, 0.79, 0.76))  # a noisy epoch below the lowest: still improving
    assert diagnostics.overfitting(turning) is None
    turning += [epoch(1, 8, 0.65, 0.95, 0.79, 0.76), epoch(1, 9, 0.6, 0.88, 0.79, 0.76)]
    assert diagnostics.overfitting(turning) is None  # within 2% of the lowest (0.87): noise
    turning.append(epoch(1, 10, 0.55, 0.97, 0.8, 0.76))
    signal = diagnostics.overfitting(turning, {"dropout": 0.3, "fine_tune_blocks": 3})
    assert signal is not None and (signal.stage, signal.epoch) == (1, 10)
    assert signal.why.startswith("val loss up from 0.870 to 0.970 over 3 epochs while train loss falls")
    assert "more dropout (now 0.3)" in signal.advice and "fewer fine-tune blocks (now 3)" in signal.advice


def test_rising_validation_loss_with_rising_training_loss_is_not_overfitting():
    diverging = HEALTHY + [epoch(1, 5, 0.9, 0.9), epoch(1, 6, 0.95, 0.93), epoch(1, 7, 1.0, 0.97)]
    assert diagnostics.overfitting(diverging) is None


def test_a_widening_accuracy_gap_is_flagged():
    gap = [epoch(2, 1, 0.5, 0.6, 0.84, 0.82), epoch(2, 2, 0.45, 0.6, 0.88, 0.83), epoch(2, 3, 0.4, 0.59, 0.92, 0.84)]
    signal = diagnostics.overfitting(gap, {"dropout": 0.2, "fine_tune_blocks": 0})
    assert signal is not None and signal.why.startswith("train accuracy 8.0 points above val, and the gap widens")
    assert "fine-tune blocks" not in signal.advice  # nothing to make smaller
    assert diagnostics.overfitting(gap, gap=0.10) is None
    assert diagnostics.overfitting(gap[:2]) is None  # three epochs make a trend


def test_a_large_gap_stays_flagged_when_it_stops_widening():
    plateau = [epoch(1, n, 0.1, 0.9, 0.99, val) for n, val in ((1, 0.72), (2, 0.74), (3, 0.73))]
    signal = diagnostics.overfitting(plateau)
    assert signal is not None and signal.why.startswith("train accuracy 26.0 points above val: it memorises")
    assert diagnostics.overfitting(plateau, gap=0.1) is None


def test_stage_two_is_judged_apart_from_stage_one():
    # stage 2 starts lower than stage 1 ended: the jump between stages is no rise
    records = HEALTHY + [epoch(2, 1, 0.6, 0.95), epoch(2, 2, 0.55, 0.8)]
    assert diagnostics.overfitting(records) is None


def test_the_cli_progress_lines_say_when_overfitting_starts():
    out = io.StringIO()
    report = plain_reporter(out)
    report({"type": "run_start", "config": {"dropout": 0.1, "fine_tune_blocks": 2}, "device": "CPU"})
    plateau = [(0.99, 0.72), (0.99, 0.74), (0.99, 0.73), (0.99, 0.72), (0.75, 0.74)]
    for n, (acc, val) in enumerate(plateau, 1):
        report({**epoch(1, n, 0.1, 0.9, acc, val), "epochs": 5, "epoch_time": 1.0})
    lines = out.getvalue().splitlines()
    flagged = [i for i, line in enumerate(lines) if line.startswith("  overfitting: ")]
    assert flagged == [4]  # once, after epoch 3, while it lasts
    assert "more dropout (now 0.1)" in lines[4] and "fewer fine-tune blocks (now 2)" in lines[4]


# ---------------------------------------------------------------------------- early stopping, kept epoch


def test_early_stopping_counts_down_per_stage():
    records = [epoch(1, 1, 1, 1, val_acc=0.7), epoch(1, 2, 1, 1, val_acc=0.75), epoch(1, 3, 1, 1, val_acc=0.74)]
    state = diagnostics.early_stopping(records, patience=3)
    assert (state.stage, state.best_epoch, state.waited, state.left) == (1, 2, 1, 2)
    records.append(epoch(2, 1, 1, 1, val_acc=0.73))  # a new stage counts afresh (Keras' EarlyStopping per fit)
    state = diagnostics.early_stopping(records, patience=3)
    assert (state.stage, state.best_epoch, state.left) == (2, 1, 3)
    assert diagnostics.early_stopping([], 3) is None


def test_kept_epoch_is_the_first_best_over_stages_skipping_diverged_ones():
    records = [epoch(1, 1, 1, 1, val_acc=0.7), epoch(1, 2, 1, 1, val_acc=0.8), epoch(2, 1, 1, 1, val_acc=0.8),
               epoch(2, 2, float("nan"), 1, val_acc=0.9)]
    assert diagnostics.kept_epoch(records) == (1, 2)
    records.append(epoch(2, 3, 0.5, 1, val_acc=0.85))
    assert diagnostics.kept_epoch(records) == (2, 3)
    assert diagnostics.kept_epoch(records, {"backbone": "mobilenetv2"}) == (2, 3)
    # what a TensorBoard or RunLogger run's script keeps is its own business: no "kept" epoch shown for it
    assert diagnostics.kept_epoch(records, {"kind": "tensorboard"}) is None
    assert diagnostics.kept_epoch(records, {"kind": "keras"}) is None


def test_format_memory_tolerates_absence_and_shows_gpu_and_ram():
    assert diagnostics.format_memory(None) == ""
    assert diagnostics.format_memory({"rss": 3 * 2**30, "rss_peak": None}) == "RAM 3.0 GiB (peak –)"
    text = diagnostics.format_memory({"rss": 500 * 2**20, "rss_peak": 600 * 2**20,
                                      "gpu": {"GPU:0": {"current": 2**30, "peak": 2 * 2**30}}})
    assert text == "GPU:0 1.0 GiB (peak 2.0 GiB), RAM 500 MiB (peak 600 MiB)"


# ---------------------------------------------------------------------------- cost estimate


def write_run(runs_dir: Path, config, records: list[dict], name: str) -> Path:
    run_dir = runs_dir / name
    run_dir.mkdir(parents=True)
    store.atomic_write_json(run_dir / store.CONFIG_FILE, config.to_json())
    writer = store.MetricsWriter(run_dir)
    for rec in records:
        writer.write(rec)
    writer.close()
    return run_dir


def test_estimate_without_earlier_runs_claims_nothing(tmp_path):
    config = make_config({"runs_dir": str(tmp_path / "runs")})
    est = estimate_run(config, tmp_path / "cache")
    assert est.seconds is None and est.memory_peak is None
    lines = est.lines()
    assert lines[0] == "Time: no measurement yet" and lines[1] == "Memory: no measurement yet"
    # 45,000 training images (one view: augmentation is off by default) + 5,000 validation images
    assert est.cache == "50,000 images to run through the backbone (then cached)"


def test_estimate_from_an_earlier_runs_times_and_its_cache(tmp_path):
    runs = tmp_path / "runs"
    cache = tmp_path / "cache"
    earlier = make_config({"runs_dir": str(runs), "limit_train": 2000, "val_size": 200, "augment": False,
                           "epochs_head": 2, "epochs_fine": 1, "limit_test": 500, "tta_flip": False})
    keys = [cache_key("m", "original", np.zeros((2, 2), np.uint8))]
    write_run(runs, earlier, [
        {"type": "data", "train": 1800, "val": 200, "test": 500},
        {"type": "phase", "phase": "extract_features", "wall_time": 15.0},
        {"type": "features_done", "images": 2000, "seconds": 20, "cache_hits": 0, "cache_keys": keys,
         "images_per_sec": 100.0},
        epoch(1, 1, 1, 1, memory={"rss": 1, "rss_peak": 3 * 2**30}), epoch(1, 2, 1, 1),
        {"type": "stage_end", "stage": 1, "seconds": 3.6},
        epoch(2, 1, 1, 1),
        {"type": "stage_end", "stage": 2, "seconds": 18.0},
        {"type": "phase", "phase": "evaluate", "wall_time": 60.0},
        {"type": "run_end", "state": "finished", "wall_time": 70.0},
    ], "earlier")
    other = make_config({"runs_dir": str(runs), "image_size": 96})  # another size: not comparable
    write_run(runs, other, [{"type": "data", "train": 10}, {"type": "features_done", "images_per_sec": 1.0}], "other")

    est = estimate_run(earlier, cache)
    # 15 s to start, 2000 images through the backbone at 100/s, stage 1 at 3.6 s / (2 epochs x 1800 images),
    # stage 2 at 18 s / 1800 images, evaluation 10 s of which 500 images at 100/s were the images
    assert est.seconds == pytest.approx(15 + 20 + 3.6 + 18 + 5 + 5)
    assert est.memory_peak == 3 * 2**30 and "peak 3.0 GiB" in est.lines()[1]
    assert "from 1 earlier run(s) of mobilenetv2 at 160px" in est.basis
    assert "images to run through" in est.cache  # the cache files are gone
    cache.mkdir()
    (cache / f"{keys[0]}.pooled.npy").write_bytes(b"")
    assert cache_present(cache, keys)
    est = estimate_run(earlier, cache)
    assert est.cache == "reused (same data and backbone as earlier)"
    assert est.seconds == pytest.approx(15 + 3.6 + 18 + 5 + 5)
    # twice the training images (3,600): twice the epochs' time, and other images, so no cache
    bigger = estimate_run(make_config({**earlier.to_json(), "limit_train": 3800}), cache)
    assert "images to run through" in bigger.cache and bigger.seconds == pytest.approx(15 + 38 + 7.2 + 36 + 5 + 5)
    # fine-tuning never measured: the time is unknown rather than guessed
    only_head = write_run(tmp_path / "runs2", earlier, [], "x").parent
    assert estimate_run(earlier, cache, only_head).seconds is None


# ---------------------------------------------------------------------------- compare, labels


def test_differing_settings_and_results(tmp_path):
    runs = tmp_path / "runs"
    a = write_run(runs, make_config({"dropout": 0.3, "runs_dir": "x"}),
                  [epoch(1, 1, 1, 1, val_acc=0.8, wall_time=60.0)], "a")
    b = write_run(runs, make_config({"dropout": 0.5, "image_size": 96, "runs_dir": "y"}), [], "b")
    config_b = json.loads((b / store.CONFIG_FILE).read_text())
    del config_b["seed"]  # an older version's config.json: the default is assumed
    (b / store.CONFIG_FILE).write_text(json.dumps(config_b))
    compared = [load_compared(a), load_compared(b)]
    assert differing_settings(compared) == ["image_size", "dropout"]  # the form's order; folders left out
    assert compared[0].best_val_accuracy == 0.8 and compared[0].duration_s == 60.0
    assert differing_settings(compared[:1]) == []


def test_error_messages_name_fields_as_the_form_shows_them():
    assert with_labels("lr_fine must be a number, not 'x'") == "“Learning rate, stage 2” must be a number, not 'x'"
    assert with_labels("val_size (50) must be smaller than the training images") == (
        "“Validation images” (50) must be smaller than the training images")


def test_every_setting_explains_itself():
    for s in SETTINGS:
        assert len(s.explain) > 80, s.name


# ---------------------------------------------------------------------------- --notify


def test_notify_command_gets_the_runs_outcome(tmp_path):
    run_dir = write_run(tmp_path / "runs", make_config({}), [epoch(1, 1, 1, 1, val_acc=0.8125, wall_time=42.0)],
                        "r")
    store.write_status(run_dir, "finished", "test accuracy 0.9000")
    store.atomic_write_json(run_dir / store.REPORT_FILE, {"test_accuracy": 0.9})
    env = notify_env(run_dir)
    assert env["CIFAR_TUI_STATE"] == "finished" and env["CIFAR_TUI_TEST_ACCURACY"] == "0.9000"
    assert env["CIFAR_TUI_BEST_VAL_ACCURACY"] == "0.8125" and env["CIFAR_TUI_WALL_TIME_S"] == "42"
    out = tmp_path / "out.txt"
    command = f'{sys.executable} -c "import os; print(os.environ[\'CIFAR_TUI_RUN_NAME\'], os.environ[\'CIFAR_TUI_STATE\'])" > {out}'
    assert run_notify_command(command, run_dir) == 0
    assert out.read_text().split() == ["r", "finished"]
    assert run_notify_command("exit 3", run_dir) == 3  # reported, never raised
