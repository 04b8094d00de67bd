"""Pieces of the TUI that need no running app: form validation, remembered, rendering."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fixtures.tui_support import recorded_records
from rich.console import Console

from tui_cifar.config import ConfigError, make_config
from tui_cifar.formatting import format_duration
from tui_cifar.tui import remembered
from tui_cifar.tui.screens.configure_screen import FIELD_BY_NAME, parse_text, validate
from tui_cifar.tui.widgets.halfblock import HalfBlock, fit_size


def test_validate_names_the_fields():
    values = {"image_size": 10, "fine_tune_blocks": "lots", "epochs_head": 2, "runs_dir": "runs"}
    config, errors = validate(values)
    assert config is None
    assert set(errors) == {"image_size", "fine_tune_blocks"}
    config, errors = validate({"epochs_head": 0, "epochs_fine": 0, "runs_dir": "runs"})
    assert set(errors) == {"epochs_head", "epochs_fine"}
    config, errors = validate({"limit_train": 500, "val_size": 500, "runs_dir": "runs"})
    assert "val_size" in errors
    config, errors = validate({"limit_train": 500, "runs_dir": "runs"})  # empty: a tenth of them
    assert errors == {} and config.val_images == 50
    config, errors = validate({"image_size": 96, "runs_dir": "r"})
    assert errors == {} and config.image_size == 96
    assert validate({"runs_dir": None})[1]["runs_dir"]
    # the fields come with the error (was: read back out of its message), the training pool's limit_train too
    try:
        make_config({"val_size": 5000, "limit_train": 5000})
    except ConfigError as exc:
        assert exc.fields == ("val_size", "limit_train") and exc.exit_code == 2
    assert validate({"val_size": 5000, "limit_train": 5000, "runs_dir": "r"})[1].keys() == {"val_size", "limit_train"}


def test_parse_text():
    assert parse_text(FIELD_BY_NAME["image_size"], " 96 ") == 96
    assert parse_text(FIELD_BY_NAME["image_size"], "abc") == "abc"
    assert parse_text(FIELD_BY_NAME["fine_tune_blocks"], "All") == "all"
    assert parse_text(FIELD_BY_NAME["lr_head"], "1e-3") == 0.001
    assert parse_text(FIELD_BY_NAME["limit_train"], "") is None
    assert parse_text(FIELD_BY_NAME["data_dir"], "") is None


def test_settings_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert remembered.load_last_config() is None
    assert remembered.save_last_config({"epochs_head": 3}) is None
    assert remembered.load_last_config() == {"epochs_head": 3}
    assert (tmp_path / "cfg" / "cifar-tui" / "last_config.json").exists()
    (tmp_path / "cfg" / "cifar-tui" / "last_config.json").write_text("{garbled")
    assert remembered.load_last_config() is None
    remembered.cache_description("mobilenetv2", 96, 1, "1 of 17 blocks")
    assert remembered.cached_description("mobilenetv2", 96, 1) == "1 of 17 blocks"


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
    from fixtures.tui_support import FINISHED, append_records, copy_runs, hold_run, make_running_run

    from tui_cifar.runs.reader import SummaryCache

    runs = copy_runs(tmp_path / "runs")
    records = recorded_records()
    running = make_running_run(runs, records=records[:20])
    cache = SummaryCache(tmp_path / "cache" / "summaries.json")
    first = {s.name: s for s in cache.list_runs(runs)}
    again = {s.name: s for s in cache.list_runs(runs)}
    assert again[FINISHED] is first[FINISHED]  # unchanged: not read again
    assert again[running.name] is first[running.name]  # running, but nothing new written: not read again
    append_records(running, records[20:40])
    latest = {s.name: s for s in cache.list_runs(runs)}
    assert latest[running.name].best_val_accuracy is not None
    hold_run(running, False)  # its trainer died: no file changed, the lock tells
    assert {s.name: s for s in cache.list_runs(runs)}[running.name].state == "killed"
    cache.save()  # the next process starts from the saved summaries
    next_process = SummaryCache(tmp_path / "cache" / "summaries.json")
    reloaded = next_process.list_runs(runs)
    assert not next_process._changed  # every run came from the saved summaries, none was read again
    assert {s.name: s.best_val_accuracy for s in reloaded} == {s.name: s.best_val_accuracy for s in cache.list_runs(runs)}
    (runs / FINISHED / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5}))
    assert {s.name: s for s in cache.list_runs(runs)}[FINISHED].test_accuracy == 0.5


def test_runs_periodic_refresh_reads_running_runs_only(tmp_path, monkeypatch):
    """The Runs screen's 2 s refresh: the running runs are re-read, a new folder shows at once, a finished
    run's status.json is looked at again only every STATUS_LOOK_EVERY_S (bench/load.py: idle CPU)."""
    from fixtures.tui_support import FINISHED, append_records, copy_runs, hold_run, make_running_run

    from tui_cifar.runs import reader
    from tui_cifar.runs.reader import SummaryCache

    runs = copy_runs(tmp_path / "runs")
    records = recorded_records()
    running = make_running_run(runs, records=records[:20])
    cache = SummaryCache()
    cache.list_runs(runs, tensorboard=True)
    looked_at: list[Path] = []
    real_signature = reader._file_signature
    monkeypatch.setattr(reader, "_file_signature", lambda p: looked_at.append(p) or real_signature(p))
    tick = {s.name: s for s in cache.list_runs(runs, live_only=True, tensorboard=True)}
    assert looked_at and {p.parent for p in looked_at} == {running}  # the running run only
    assert tick[running.name].state == "running" and FINISHED in tick
    append_records(running, records[20:40])
    tick = {s.name: s for s in cache.list_runs(runs, live_only=True, tensorboard=True)}
    assert tick[running.name].best_val_accuracy is not None  # its new epochs, at once
    hold_run(running, False)
    assert {s.name: s for s in cache.list_runs(runs, live_only=True, tensorboard=True)}[running.name].state == "killed"
    newcomer = make_running_run(runs, name="20250303-080000-mobilenetv2-96px", records=records[:5])
    assert newcomer.name in {s.name for s in cache.list_runs(runs, live_only=True, tensorboard=True)}
    status = runs / FINISHED / "status.json"
    status.write_text(status.read_text().replace('"finished"', '"stopped"'))
    os.utime(status, ns=(status.stat().st_atime_ns, status.stat().st_mtime_ns + 10**9))
    summaries = {s.name: s for s in cache.list_runs(runs, live_only=True, tensorboard=True)}
    assert summaries[FINISHED].state == "finished"  # not looked at yet: the status sweep is every 30 s
    monkeypatch.setattr(SummaryCache, "STATUS_LOOK_EVERY_S", 0.0)
    summaries = {s.name: s for s in cache.list_runs(runs, live_only=True, tensorboard=True)}
    assert summaries[FINISHED].state != "finished"
