"""tui_cifar.runs.reader: what a run did, read from its folder (run progress arithmetic, log following)."""

from __future__ import annotations

import json
import time

import pytest
from fixtures.tui_support import RESUMED, recorded_records

from tui_cifar.runs.reader import LogFollower, RunProgress, best_val_accuracy, stage_times


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


def test_one_best_val_figure_for_the_live_view_and_the_summary(tmp_path):
    """A resumed run logs an epoch twice: the live view, the summary and the report count the later record."""
    records = [
        {"type": "epoch", "stage": 1, "epoch": 1, "val_accuracy": 0.5},
        {"type": "epoch", "stage": 1, "epoch": 2, "val_accuracy": 0.95},  # killed before it was final
        {"type": "run_resume"},
        {"type": "epoch", "stage": 1, "epoch": 2, "val_accuracy": 0.6},
    ]
    progress = RunProgress()
    progress.feed(records)
    assert best_val_accuracy(records) == progress.best_val_accuracy == 0.6


def test_log_follower_starts_over_when_the_log_is_replaced(tmp_path):
    path = tmp_path / "train.log"
    path.write_text("first run, a long line\n")
    follow = LogFollower(path)
    assert follow.read_new() == ["first run, a long line"]
    path.write_text("again\n")
    assert follow.read_new() == ["again"]


def test_a_report_of_an_earlier_version_is_still_read(tmp_path, capsys):
    """Earlier versions named the test report metrics.json; their run folders keep working."""
    from tui_cifar.cli import commands
    from tui_cifar.runs import store
    from tui_cifar.runs.reader import summarize_run

    store.write_status(tmp_path, "finished")
    (tmp_path / store.LEGACY_REPORT_FILE).write_text(json.dumps({"test_accuracy": 0.75}))
    assert store.has_report(tmp_path)
    assert summarize_run(tmp_path).test_accuracy == 0.75
    assert commands.main(["evaluate", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"test_accuracy": 0.75}
    (tmp_path / store.REPORT_FILE).write_text(json.dumps({"test_accuracy": 0.8}))  # scored again by this version
    assert summarize_run(tmp_path).test_accuracy == 0.8


def test_a_stopped_and_resumed_run_is_followed_across_the_stop():
    records = recorded_records(RESUMED)
    stop = next(k for k, r in enumerate(records) if r["type"] == "run_end") + 1
    resume = stop + 1
    first_batches = next(k for k, r in enumerate(records) if k > resume and r["type"] == "batch") + 3
    p = RunProgress()
    p.feed(records[:stop])
    assert p.finished and p.phase_label() == "run stopped"
    assert p.elapsed() == records[stop - 1]["wall_time"]

    p.feed(records[stop:resume])  # run_resume: the stop no longer holds
    assert not p.finished and p.phase_label() == "starting"
    p.feed(records[resume:first_batches])
    assert p.phase_label() == "stage 2: fine-tuning"
    assert (p.stage, p.batch_epoch, p.planned_epochs(2)) == (2, 3, 5)  # "Epoch 3/5", not 3/2
    assert (p.epochs_done, p.epochs_total) == (4, 7)
    assert p.eta_seconds() > 0
    before = p.elapsed()
    time.sleep(0.05)
    assert p.elapsed() > before  # still counting
    # killed here (no end record): the clock stops at the last record, where it went on counting on the Train screen
    assert p.elapsed(running=False) == records[first_batches - 1]["wall_time"]

    testing = next(k for k, r in enumerate(records) if r["type"] == "progress" and r["phase"] == "evaluate") + 1
    p.feed(records[first_batches:testing])
    assert (p.phase, p.test_done, p.test_total) == ("evaluate", 60, 120)  # 60 test images, flipped too
    p.feed(records[testing:])
    assert p.finished and p.end["state"] == "finished"
    assert [x for x, _ in p.epoch_series()["val_accuracy"]] == [1, 2, 3, 4, 5, 6, 7]
    assert p.planned_epochs(2) == 5 and p.epochs_total == 7


def test_stage_times_skip_a_record_without_seconds():
    """One odd record (another version, a hand edit) must not break the runs table that reads every run."""
    records = [{"type": "features_done", "seconds": 12.5}, {"type": "features_done"},
               {"type": "stage_end", "stage": 1, "seconds": 3.0}, {"type": "stage_end", "stage": 2, "seconds": "n/a"}]
    assert stage_times(records) == {"stage1": 3.0, "features": 12.5}


def test_each_phase_has_its_own_speed_and_eta():
    records = recorded_records()
    p = RunProgress()
    p.feed(records[:5])  # extraction: 2000 images at 5.0 s, 4000 at 8.0 s
    assert p.speed() == ("features", pytest.approx(2000 / 3), pytest.approx(9.0))
    # stage 2's first batches: its own pace (0.4 s a batch of 128), not stage 1's last epoch (2,100 img/s)
    k = next(i for i, r in enumerate(records) if r["type"] == "batch" and r["stage"] == 2)
    p = RunProgress()
    p.feed(records[:k + 4])
    label, ips, eta = p.speed()
    assert label == "stage 2" and ips == pytest.approx(128 / 0.4) and p.last_epoch["images_per_sec"] == 2100.0
    # 2 epochs of 10 steps, 4 steps done, at 2.5 steps/s
    assert eta == pytest.approx(16 / 2.5) and p.eta_seconds() == pytest.approx(eta)
    assert p.images_per_sec == pytest.approx(ips)


def test_a_stopped_runs_totals_do_not_shrink():
    records = recorded_records(RESUMED)
    stop = next(k for k, r in enumerate(records) if r["type"] == "run_end") + 1
    p = RunProgress()
    p.feed(records[:stop])
    assert p.end["state"] == "stopped"
    assert (p.epochs_done, p.epochs_total) == (4, 7)  # was 4/4: "Run 4/4 ep 100%" for a stopped run
    assert p.planned_epochs(2) == 5


def test_epoch_series_on_step_and_wall_time_axes_and_every_logged_metric():
    records = recorded_records()
    p = RunProgress()
    p.feed(records)
    assert p.logged_metrics[:4] == ["loss", "accuracy", "val_loss", "val_accuracy"]
    epochs = p.epoch_series(["loss"])["loss"]
    steps = p.epoch_series(["loss"], axis="step")["loss"]
    walls = p.epoch_series(["loss"], axis="wall time")["loss"]
    assert [x for x, _ in epochs] == [1, 2, 3, 4, 5]
    assert [x for x, _ in steps] == [10, 20, 30, 40, 50]  # 10 steps per epoch in both stages
    assert [x for x, _ in walls] == [r["wall_time"] for r in records if r["type"] == "epoch"]
    assert [y for _, y in epochs] == [y for _, y in steps]


def test_cli_progress_lines_carry_the_apps_speed_and_eta():
    import io

    from tui_cifar.cli.console import plain_reporter

    out = io.StringIO()
    report = plain_reporter(out)
    for rec in recorded_records()[:5]:
        report(rec)
    # the same figures as RunProgress.speed (the app): 2,000 images in 3 s, 6,000 to go
    assert "  features 4000/10000 (40%) 667 img/s ETA 9s" in out.getvalue().splitlines()


def test_the_latest_run_of_each_kind_without_an_app(tmp_path):
    """What the app opens first (CifarApp.latest_run, runs_with_report), read from the runs folder alone."""
    import os
    import socket

    from fixtures.tui_support import FINISHED, GARBLED, copy_runs

    from tui_cifar.runs import reader, store

    runs = copy_runs(tmp_path / "runs")
    assert reader.latest_run(runs / "none") is None and reader.runs_with_report(runs / "none") == []
    assert reader.latest_run(runs, "finished") == runs / FINISHED == reader.runs_with_report(runs)[0]
    assert reader.latest_run(runs, "running") is None
    live = runs / "20990101-000000-live"
    live.mkdir()
    store.atomic_write_json(live / store.STATUS_FILE, {
        "state": "running", "pid": os.getpid(), "host": socket.gethostname(), "started_at": "2099-01-01T00:00:00"})
    lock = store.RunLock.acquire(live)  # running: its trainer holds the lock
    assert reader.latest_run(runs, "running") == live == reader.latest_run(runs)
    lock.release()
    assert reader.newest_first(runs) == [live, runs / FINISHED, runs / GARBLED]  # a garbled status: last


def test_the_watched_state_trusts_the_lock_then_the_log(tmp_path):
    """Train screen's badge, without a screen: status.json as the list reads it; a run_end ends a run whose
    status still says running, unless another live process has taken it up since (a resume starting)."""
    import socket

    from tui_cifar.runs import store
    from tui_cifar.runs.reader import watched_state

    host = socket.gethostname()
    progress = RunProgress()
    progress.feed([{"type": "run_start", "pid": 4242, "config": {}}])
    held = store.RunStatus(state="running", pid=4242, host=host, locked=True)
    assert watched_state(held, progress) == "running"
    assert watched_state(None, progress) == "unknown"
    assert watched_state(store.RunStatus(state="running", pid=4242, host=host), progress) == "killed"
    progress.feed([{"type": "run_end", "state": "stopped", "message": "stopped by SIGINT"}])
    assert watched_state(held, progress) == "stopped"  # its last record is in; its status not yet
    assert watched_state(store.RunStatus(state="running", pid=777, host=host, locked=True), progress) == "running"
    progress.feed([{"type": "run_end", "state": "bogus"}])
    assert watched_state(held, progress) == "finished"  # a run_end always ends it; a foreign state is not shown


def test_the_end_banner_says_what_to_do_next(tmp_path):
    from tui_cifar.runs import store
    from tui_cifar.runs.reader import end_banner

    progress = RunProgress()
    assert end_banner("killed", progress, tmp_path) == "The training process is gone without a final record (killed?)."
    (tmp_path / store.BACKUP_DIR).mkdir()
    assert f"Resume it with R (or: cifar-tui train --resume {tmp_path})." in end_banner("killed", progress, tmp_path)
    progress.feed([{"type": "run_end", "state": "finished", "message": "test accuracy 92.1%", "test_accuracy": 0.9214}])
    banner = end_banner("finished", progress, tmp_path)
    assert banner == "Run finished. Test accuracy 92.14%."  # the message is not said twice
    store.report_path(tmp_path).write_text("{}")
    assert end_banner("finished", progress, tmp_path).endswith("Test accuracy 92.14%. Press e to evaluate.")


def test_what_the_epochs_give_is_read_again_after_each_new_epoch():
    """The metric lists and the epochs are kept between polls, and a new (or repeated) epoch renews them."""
    p = RunProgress()
    p.feed([{"type": "epoch", "stage": 1, "epoch": 1, "loss": 1.0, "val_loss": 1.2}])
    assert (p.metric_names, p.logged_metrics, p.chart_metric()) == ([], ["loss", "val_loss"], "accuracy")
    assert p.epochs is p.epochs  # asked twice between epochs: read once
    p.feed([{"type": "epoch", "stage": 1, "epoch": 2, "loss": 0.9, "val_loss": 1.1, "top3": 0.8, "val_top3": 0.7}])
    assert (p.metric_names, p.chart_metric()) == (["top3"], "top3")
    assert p.logged_metrics == ["loss", "val_loss", "top3", "val_top3"] and len(p.epochs) == 2
    p.feed([{"type": "epoch", "stage": 1, "epoch": 2, "loss": 0.8, "val_loss": 1.0, "mae": 0.3}])  # resumed: epoch 2 again
    assert p.metric_names == ["mae"] and p.epochs[-1]["loss"] == 0.8
    p.feed([{"type": "epoch", "stage": 2, "epoch": 1, "loss": 0.7, "val_accuracy": 0.6}])
    assert (p.best_val_accuracy, p.stage_epochs_done(1), p.stage_epochs_done(2)) == (0.6, 2, 1)
    p.feed([{"type": "epoch", "stage": 2, "epoch": 2, "loss": 0.6, "val_accuracy": 0.7}])
    assert (p.best_val_accuracy, p.stage_epochs_done(2), p.epoch_offset(2)) == (0.7, 2, 2)
