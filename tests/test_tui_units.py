"""Pieces of the TUI that need no running app: run progress arithmetic, form validation, rendering."""

from __future__ import annotations

import json

import pytest
from fixtures.tui_support import recorded_records
from rich.console import Console

from tui_cifar.tui import settings
from tui_cifar.formatting import format_duration
from tui_cifar.tui.runwatch import LogFollower, RunProgress
from tui_cifar.tui.screens.configure_screen import FIELD_BY_NAME, field_of_message, parse_text, validate
from tui_cifar.tui.widgets.halfblock import HalfBlock, fit_size


def test_run_progress_over_a_recorded_run():
    records = recorded_records()
    p = RunProgress()
    p.feed(records[:3])
    assert p.device == "CPU" and p.config["backbone"] == "mobilenetv2"
    assert p.epochs_total == 5 and p.epochs_done == 0 and p.stage_boundary is None
    p.feed(records[3:])
    assert p.epochs_done == 5 and p.epochs_total == 5
    assert p.stage_boundary == 3.5
    series = p.epoch_series()
    assert [x for x, _ in series["val_accuracy"]] == [1, 2, 3, 4, 5]
    assert len(p.batch_points) == 50
    assert p.batch_points[-1][0] == pytest.approx(5.0)
    assert p.finished and p.eta_seconds() == 0.0
    assert p.best_val_accuracy == max(r["val_accuracy"] for r in records if r["type"] == "epoch")


def test_early_stopping_shrinks_stage_one():
    records = recorded_records()
    # drop stage 1's third epoch (early stopping after 2)
    cut = [r for r in records if not (r["type"] in ("epoch", "batch") and r.get("stage") == 1 and r["epoch"] == 3)]
    p = RunProgress()
    p.feed(cut)
    assert p.planned_epochs(1) == 2
    assert p.stage_boundary == 2.5
    assert [x for x, _ in p.epoch_series()["val_accuracy"]] == [1, 2, 3, 4]


def test_resumed_epoch_is_counted_once_and_eta():
    records = recorded_records()
    first_epoch = next(k for k, r in enumerate(records) if r["type"] == "epoch")
    p = RunProgress()
    p.feed(records[: first_epoch + 1])
    p.feed([dict(records[first_epoch], val_accuracy=0.9)])  # the same epoch again (resume)
    assert p.epochs_done == 1 and p.epoch_series()["val_accuracy"] == [(1, 0.9)]
    eta = p.eta_seconds()
    assert eta == pytest.approx(4 * records[first_epoch]["epoch_time"])


def test_validate_names_the_fields():
    values = {"image_size": 10, "fine_tune_blocks": "lots", "epochs_head": 2, "runs_dir": "runs"}
    config, errors = validate(values)
    assert config is None
    assert set(errors) == {"image_size", "fine_tune_blocks"}
    config, errors = validate({"epochs_head": 0, "epochs_fine": 0, "runs_dir": "runs"})
    assert set(errors) == {"epochs_head", "epochs_fine"}
    config, errors = validate({"limit_train": 500, "runs_dir": "runs"})
    assert "val_size" in errors
    config, errors = validate({"image_size": 96, "runs_dir": "r"})
    assert errors == {} and config.image_size == 96
    assert validate({"runs_dir": None})[1]["runs_dir"]
    assert field_of_message("val_size (5000) must be smaller than limit_train") == ["val_size", "limit_train"]


def test_parse_text():
    assert parse_text(FIELD_BY_NAME["image_size"], " 96 ") == 96
    assert parse_text(FIELD_BY_NAME["image_size"], "abc") == "abc"
    assert parse_text(FIELD_BY_NAME["fine_tune_blocks"], "All") == "all"
    assert parse_text(FIELD_BY_NAME["lr_head"], "1e-3") == 0.001
    assert parse_text(FIELD_BY_NAME["limit_train"], "") is None
    assert parse_text(FIELD_BY_NAME["data_dir"], "") is None


def test_settings_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert settings.load_last_config() is None
    assert settings.save_last_config({"epochs_head": 3}) is None
    assert settings.load_last_config() == {"epochs_head": 3}
    assert (tmp_path / "cfg" / "cifar-tui" / "last_config.json").exists()
    (tmp_path / "cfg" / "cifar-tui" / "last_config.json").write_text("{garbled")
    assert settings.load_last_config() is None
    settings.cache_description("mobilenetv2", 96, 1, "1 of 17 blocks")
    assert settings.cached_description("mobilenetv2", 96, 1) == "1 of 17 blocks"


def test_log_follower(tmp_path):
    path = tmp_path / "train.log"
    path.write_text("a\nb\n")
    follow = LogFollower(path)
    assert follow.read_new() == ["a", "b"]
    with open(path, "a") as f:
        f.write("progress 10%\rprogress 50%\rprogress 100%\nhalf")
    assert follow.read_new() == ["progress 100%"]
    with open(path, "a") as f:
        f.write(" done\n")
    assert follow.read_new() == ["half done"]
    assert LogFollower(tmp_path / "missing.log").read_new() == []


def test_half_block_render():
    import numpy as np

    img = np.zeros((32, 32, 3), dtype=np.uint8)
    img[:16] = (255, 0, 0)
    assert fit_size(32, 32, 64, 32) == (64, 64)
    assert fit_size(640, 480, 40, 40) == (40, 30)
    console = Console(width=80, record=True, color_system="truecolor", file=open("/dev/null", "w"))
    console.print(HalfBlock(img, 16, 8))
    text = console.export_text()
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == 8 and all(len(line) == 16 for line in lines)
    assert set(text.replace("\n", "")) == {"\u2580"}


def test_images_fall_back_to_half_blocks_without_a_terminal():
    from tui_cifar.tui.app import _detect_image_backend

    assert _detect_image_backend() == "halfblock"  # pytest captures stdout: not a tty


def test_format_duration():
    assert format_duration(None) == "–"
    assert format_duration(5) == "5s"
    assert format_duration(125) == "2m05s"
    assert format_duration(3 * 3600 + 60) == "3h01m"
    json.dumps({})


def test_runs_summary_cache_rereads_only_changed_runs(tmp_path):
    from fixtures.tui_support import FINISHED, append_records, copy_runs, make_running_run

    from tui_cifar.tui.screens.runs_screen import SummaryCache

    runs = copy_runs(tmp_path / "runs")
    records = recorded_records()
    running = make_running_run(runs, records=records[:20])
    cache = SummaryCache()
    first = {s.name: s for s in cache.list_runs(runs)}
    again = {s.name: s for s in cache.list_runs(runs)}
    assert again[FINISHED] is first[FINISHED]  # unchanged: not read again
    assert again[running.name] is not first[running.name]  # running: always fresh
    append_records(running, records[20:40])
    latest = {s.name: s for s in cache.list_runs(runs)}
    assert latest[running.name].best_val_accuracy is not None
    (runs / FINISHED / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5}))
    assert {s.name: s for s in cache.list_runs(runs)}[FINISHED].test_accuracy == 0.5
