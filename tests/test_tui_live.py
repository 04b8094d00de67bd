"""The training screen watching a run folder that grows while it looks."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fixtures.tui_support import (
    RESUMED,
    append_records,
    hold_run,
    make_app,
    make_running_run,
    recorded_records,
    wait_for,
    write_status,
)
from textual.widgets import DataTable, ProgressBar

from tui_cifar.engine import launcher
from tui_cifar.runs import store


def split_at(records, predicate, nth: int = 1) -> int:
    """Index just after the nth record matching predicate."""
    seen = 0
    for k, rec in enumerate(records):
        if predicate(rec):
            seen += 1
            if seen == nth:
                return k + 1
    raise AssertionError("no such record")


async def test_live_training_screen_follows_a_growing_log(tmp_path):
    records = recorded_records()
    # up to the middle of feature extraction
    first = split_at(records, lambda r: r["type"] == "progress", nth=2)
    runs = tmp_path / "runs"
    run_dir = make_running_run(runs, records=records[:first])
    app = make_app(runs, run_dir=run_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.progress.extract_done == 4000, what="extraction progress")
        bar = screen.query_one("#run-progress", ProgressBar)
        assert (bar.progress, bar.total) == (4000, 10000)
        assert "extracting features" in str(screen.query_one("#run-stats").content)
        assert screen.state == "running"

        async def writer(stop_at: int) -> None:
            nonlocal first
            while first < stop_at:
                append_records(run_dir, records[first:first + 3])
                first = min(stop_at, first + 3)
                await asyncio.sleep(0.02)

        # stage 1, epoch 2 half done
        mid = split_at(records, lambda r: r["type"] == "batch" and r["stage"] == 1 and r["epoch"] == 2, nth=5)
        await writer(mid)
        await wait_for(pilot, lambda: screen.progress.records_seen == mid, what="records read")
        loss = screen.query_one("#loss-chart")
        acc = screen.query_one("#acc-chart")
        batch = screen.query_one("#batch-chart")
        assert loss.point_count("train") == 1 and acc.point_count("val") == 1
        assert batch.point_count("batch loss") == 15
        assert acc.vlines == []  # no stage 2 yet
        epoch_bar = screen.query_one("#epoch-progress", ProgressBar)
        run_bar = screen.query_one("#run-progress", ProgressBar)
        assert (epoch_bar.progress, epoch_bar.total) == (5, 10)
        assert (run_bar.progress, run_bar.total) == (1, 5)
        first_val = records[split_at(records, lambda r: r["type"] == "epoch") - 1]["val_accuracy"]
        stats = str(screen.query_one("#run-stats").content)
        assert f"val acc {100 * first_val:.1f}%" in stats
        assert "ETA" in stats and "LR 0.001" in stats

        # into stage 2: the stage boundary appears on the epoch charts
        stage2 = split_at(records, lambda r: r["type"] == "epoch" and r["stage"] == 2)
        await writer(stage2)
        await wait_for(pilot, lambda: acc.point_count("val") == 4, what="four epochs plotted")
        assert acc.vlines == [3.5] and loss.vlines == [3.5]
        assert [x for x, _ in acc.series["val"]] == [1, 2, 3, 4]
        assert run_bar.progress == 4 and run_bar.total == 5
        assert "stage 2/2" in str(screen.query_one("#run-stats").content)

        # the end: final state and the offer to evaluate
        await writer(len(records))
        (run_dir / "metrics.json").write_text("{}")
        await wait_for(pilot, lambda: screen.state == "finished", what="finished")
        assert acc.point_count("val") == 5
        banner = str(screen.query_one("#run-banner").content)
        assert "Run finished" in banner and "Test accuracy 76.00%" in banner and "press e" in banner.lower()
        assert screen.progress.eta_seconds() == 0.0


async def test_log_tail_and_half_written_line(tmp_path):
    records = recorded_records()
    runs = tmp_path / "runs"
    run_dir = make_running_run(runs, records=records[:10])
    app = make_app(runs, run_dir=run_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.progress.records_seen == 10)
        # a record cut in the middle waits for its end
        line = json.dumps(records[10])
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(line[:20])
        with open(run_dir / "train.log", "a") as f:
            f.write("Epoch 1/3\nhalf a li")
        await pilot.pause(0.3)
        assert screen.progress.records_seen == 10
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(line[20:] + "\n")
        with open(run_dir / "train.log", "a") as f:
            f.write("ne\n")
        await wait_for(pilot, lambda: screen.progress.records_seen == 11)
        log = screen.query_one("#train-log")
        await wait_for(pilot, lambda: "half a line" in log.lines, what="log line")
        assert log.lines[:2] == ["starting", "Epoch 1/3"]


async def test_killed_run_reads_as_killed(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run_dir = make_running_run(runs, records=recorded_records()[:30], pid=proc.pid)
    app = make_app(runs, run_dir=run_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.state == "killed")
        assert "gone" in str(app.screen.query_one("#run-banner").content)
        assert app.screen.check_action("stop", ()) is False  # s is not in the footer of an ended run


WRITER = textwrap.dedent("""
    import json, os, socket, sys, time
    from pathlib import Path
    run_dir, recorded, gate = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    records = [json.loads(l) for l in recorded.read_text().splitlines() if l.strip()]
    from tui_cifar.runs import store
    lock = store.RunLock.acquire(run_dir)
    lock.record(os.getpid())
    status = {"state": "running", "pid": os.getpid(), "host": socket.gethostname(),
              "started_at": "2025-03-02T09:00:00+00:00", "updated_at": "2025-03-02T09:00:00+00:00",
              "message": "training", "stage": 1, "version": 1}
    (run_dir / "config.json").write_text(json.dumps(records[0]["config"]))
    (run_dir / ".s").write_text(json.dumps(status)); os.replace(run_dir / ".s", run_dir / "status.json")
    log = open(run_dir / "metrics.jsonl", "a")
    def emit(recs):
        for r in recs:
            log.write(json.dumps(r) + "\\n"); log.flush()
    first_epoch = next(k for k, r in enumerate(records) if r["type"] == "epoch") + 1
    emit(records[:first_epoch])
    deadline = time.time() + 60
    while not gate.exists() and time.time() < deadline:
        time.sleep(0.05)
    for k in range(first_epoch, len(records) - 1):
        emit(records[k:k + 1]); time.sleep(0.005)
    while gate.read_text() != "end" and time.time() < deadline:
        time.sleep(0.05)
    emit(records[-1:])
    status.update(state="finished", message="done")
    (run_dir / ".s").write_text(json.dumps(status)); os.replace(run_dir / ".s", run_dir / "status.json")
    lock.release()
""")


@pytest.fixture
def other_process(tmp_path):
    runs = tmp_path / "runs"
    run_dir = runs / "20250302-090000-mobilenetv2-96px"
    run_dir.mkdir(parents=True)
    gate = tmp_path / "gate"
    recorded = Path(__file__).parent / "fixtures" / "recorded_metrics.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(run_dir), str(recorded), str(gate)])
    yield runs, run_dir, gate, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


async def test_attach_to_a_run_written_by_another_process(other_process):
    runs, run_dir, gate, proc = other_process
    app = make_app(runs, start_screen="runs")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.summaries.get(str(run_dir)) is not None
                       and screen.summaries[str(run_dir)].state == "running"
                       and screen.summaries[str(run_dir)].best_val_accuracy is not None,
                       timeout=20, what="the other process's run listed as running")
        table = screen.query_one("#runs-table", DataTable)
        assert str(table.get_row(str(run_dir))[2]) == "running"
        table.focus()
        table.move_cursor(row=table.get_row_index(str(run_dir)))
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_mode == "train"
        train = app.screen
        await wait_for(pilot, lambda: train.progress.epochs_done == 1, what="attached")
        assert train.status.pid == proc.pid and train.state == "running"
        gate.write_text("go")
        acc = train.query_one("#acc-chart")
        await wait_for(pilot, lambda: acc.point_count("val") == 5, timeout=20, what="new epochs shown")
        assert train.state == "running"
        gate.write_text("end")
        await wait_for(pilot, lambda: train.state == "finished", timeout=20, what="finished")
        assert proc.wait(timeout=10) == 0


async def test_a_stopped_run_that_is_resumed_is_followed_live(tmp_path):
    """The view of a stopped run follows its resume: state, banner, epochs of the stage, elapsed time, test-set bar."""
    records = recorded_records(RESUMED)
    stop = split_at(records, lambda r: r["type"] == "run_end")
    runs = tmp_path / "runs"
    run_dir = make_running_run(runs, records=records[:stop])
    write_status(run_dir, "stopped", os.getpid(), message=records[stop - 1]["message"])
    app = make_app(runs, run_dir=run_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        banner = screen.query_one("#run-banner")
        await wait_for(pilot, lambda: screen.state == "stopped" and banner.display, what="the stopped run")

        # `train --resume`: the launcher marks the run running before the process writes a record
        store.write_status(run_dir, "running", launcher.STARTING_MESSAGE, pid=os.getpid())
        hold_run(run_dir)  # the launcher holds the run's lock from here
        await wait_for(pilot, lambda: screen.state == "running", what="the resumed run")
        stats = screen.query_one("#run-stats")
        assert not banner.display
        assert "stopped" not in str(stats.content) and launcher.STARTING_MESSAGE in str(stats.content)

        epoch3 = split_at(records, lambda r: r["type"] == "batch" and r["stage"] == 2 and r["epoch"] == 3, nth=3)
        append_records(run_dir, records[stop:epoch3])
        await wait_for(pilot, lambda: screen.progress.records_seen == epoch3, what="the resumed run's records")
        await pilot.pause(0.2)
        assert str(screen.query_one("#epoch-label").content) == "Epoch 3/5"
        assert str(screen.query_one("#run-label").content) == "Run 4/7 ep"
        assert "stage 2: fine-tuning" in str(stats.content) and "stopped" not in str(stats.content)
        elapsed = screen.progress.elapsed()
        await pilot.pause(0.3)
        assert screen.progress.elapsed() > elapsed

        testing = split_at(records, lambda r: r["type"] == "progress" and r.get("phase") == "evaluate")
        append_records(run_dir, records[epoch3:testing])
        await wait_for(pilot, lambda: screen.progress.records_seen == testing, what="the test report's progress")
        await pilot.pause(0.2)
        bar = screen.query_one("#run-progress", ProgressBar)
        assert str(screen.query_one("#run-label").content) == "Test set" and (bar.progress, bar.total) == (60, 120)

        append_records(run_dir, records[testing:])
        store.write_status(run_dir, "finished", records[-1]["message"], pid=os.getpid())
        hold_run(run_dir, False)
        await wait_for(pilot, lambda: screen.state == "finished", what="the end of the resumed run")
        assert "Run finished" in str(banner.content) and banner.display
