"""The Train screen as a monitor: 80x24 first, chart controls, telemetry, TensorBoard runs, stop/resume keys."""

from __future__ import annotations

import copy
import os

import pytest
from fixtures.tbevents import append_scalars
from fixtures.tui_support import (
    RESUMED,
    append_records,
    make_app,
    make_running_run,
    recorded_records,
    wait_for,
    write_status,
)
from textual.widgets import ContentSwitcher, OptionList

from tui_cifar import runstore


def until(records, predicate, nth: int = 1) -> int:
    seen = 0
    for k, rec in enumerate(records):
        seen += bool(predicate(rec))
        if seen == nth:
            return k + 1
    raise AssertionError("no such record")


def telemetry_sample(util: float) -> dict:
    return {"type": "telemetry", "cpu_pct": 180.0, "cpus": 16, "rss": 3 * 2**30, "wall_time": 30.0,
            "gpus": [{"index": 0, "name": "NVIDIA H200", "util": util, "mem_used": 12 * 2**30,
                      "mem_total": 140 * 2**30, "power_w": 210.0}]}


def running_mid_stage_two(tmp_path, extra=()):
    records = recorded_records()
    cut = until(records, lambda r: r["type"] == "batch" and r["stage"] == 2 and r["epoch"] == 1, nth=4)
    return make_running_run(tmp_path / "runs", records=records[:cut] + list(extra))


@pytest.mark.parametrize("size,rows", [((80, 24), 10), ((120, 40), 20)])
async def test_epoch_charts_keep_their_rows(tmp_path, size, rows):
    """With the header, progress, stats, telemetry and hint lines all showing, each epoch chart keeps its rows."""
    run_dir = running_mid_stage_two(tmp_path, [telemetry_sample(u) for u in (22, 25, 23)])
    app = make_app(run_dir.parent, run_dir=run_dir)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.query_one("#run-telemetry").display, what="the telemetry line")
        await pilot.pause(0.3)
        top = screen.query_one("#train-top").region
        for chart_id in ("#loss-chart", "#acc-chart"):
            region = screen.query_one(chart_id).region
            assert region.height >= rows, f"{chart_id} has {region.height} rows at {size}"
            assert region.y >= top.bottom  # nothing drawn over the charts
        assert screen.query_one("Footer").region.y >= screen.query_one("#loss-chart").region.bottom


async def test_telemetry_line_and_the_input_pipeline_hint(tmp_path):
    records = recorded_records()
    # stage 1 with flat throughput and an idle GPU
    cut = until(records, lambda r: r["type"] == "epoch" and r["stage"] == 1, nth=3)
    flat = [dict(r, images_per_sec=2000.0 + k) if r["type"] == "epoch" else r for k, r in enumerate(records[:cut])]
    run_dir = make_running_run(tmp_path / "runs", records=flat + [telemetry_sample(u) for u in (22, 25, 23)])
    app = make_app(run_dir.parent, run_dir=run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        line = app.screen.query_one("#run-telemetry")
        await wait_for(pilot, lambda: line.display, what="the telemetry line")
        text = str(line.content)
        assert "CPU 180% of 16 cores · RSS 3.0 GiB · GPU0 23% 12.0/140 GiB 210 W" in text
        assert "GPU 23% busy while images/s is flat: the input pipeline is the bottleneck" in text
        # a busy GPU: no hint
        append_records(run_dir, [telemetry_sample(u) for u in (95, 97, 96)])
        await wait_for(pilot, lambda: "bottleneck" not in str(line.content), what="the hint gone")
        assert "GPU0 96%" in str(line.content)


async def test_chart_keys_metric_picker_smoothing_log_scale_x_axis_and_views(tmp_path):
    records = copy.deepcopy(recorded_records())
    for k, rec in enumerate(records):
        if rec["type"] == "epoch":  # a metric of the run's own, as a RunLogger run logs it
            rec["top3"], rec["val_top3"] = 0.8 + k / 1000, 0.7 + k / 1000
    run_dir = make_running_run(tmp_path / "runs", records=records)
    write_status(run_dir, "finished", os.getpid())
    app = make_app(run_dir.parent, run_dir=run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        acc = screen.query_one("#acc-chart")
        await wait_for(pilot, lambda: acc.point_count("val") == 5, what="the epochs")
        await pilot.press("m")
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert labels[:3] == ["loss  + val_loss", "accuracy  + val_accuracy", "top3  + val_top3"]
        options.highlighted = 2
        await pilot.press("enter")
        await wait_for(pilot, lambda: acc.chart_title == "Top3 per epoch", what="top3 charted")
        assert [round(y, 3) for _, y in acc.series["val"]] == [round(r["val_top3"], 3) for r in records if r["type"] == "epoch"]

        await pilot.press("z")
        assert acc.smoothing == 0.6 and screen.query_one("#loss-chart").smoothing == 0.6
        await pilot.press("y")
        assert acc.log_y and screen.query_one("#loss-chart").log_y
        await pilot.press("x")
        assert acc.xlabel == "step" and [x for x, _ in acc.series["train"]] == [10, 20, 30, 40, 50]
        await pilot.press("x")
        assert acc.xlabel == "wall time (s)"
        keys = str(screen.query_one("#chart-keys").content)
        assert "top3" in keys and "smooth 0.6" in keys and "log" in keys and "wall time" in keys

        switcher = screen.query_one("#train-views", ContentSwitcher)
        await pilot.press("v")
        assert switcher.current == "batch-chart" and screen.query_one("#batch-chart").region.height >= 15
        await pilot.press("v")
        assert switcher.current == "train-log"
        await pilot.press("v")
        assert switcher.current == "epoch-charts"


async def test_stop_key_only_while_running_and_stop_requested_clears_on_resume(tmp_path):
    records = recorded_records(RESUMED)
    stop = until(records, lambda r: r["type"] == "run_end")
    run_dir = make_running_run(tmp_path / "runs", records=records[:stop - 1])
    app = make_app(run_dir.parent, run_dir=run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.state == "running", what="running")
        assert screen.check_action("stop", ()) is True
        screen.stop_requested = True  # as after `s` (the real signal would reach this test's own pid)
        await wait_for(pilot, lambda: "(stop requested)" in str(screen.query_one("#run-stats").content))
        append_records(run_dir, records[stop - 1:stop])
        write_status(run_dir, "stopped", os.getpid())
        await wait_for(pilot, lambda: screen.state == "stopped", what="stopped")
        assert screen.check_action("stop", ()) is False  # not in the footer of a stopped run
        assert str(screen.query_one("#run-label").content) == "Run 4/7 ep"  # the planned total stays
        runstore.write_status(run_dir, "running", "resuming", pid=os.getpid())
        await wait_for(pilot, lambda: screen.state == "running", what="resumed")
        await pilot.pause(0.3)
        assert "(stop requested)" not in str(screen.query_one("#run-stats").content)


async def test_a_tensorboard_run_is_followed_live(tmp_path):
    run = tmp_path / "logs" / "resnet-run"
    events = run / "events.out.tfevents.1700000000.host.1.0"
    for step in range(3):
        append_scalars(events, step, {"loss/train": 1.0 / (step + 1), "loss/val": 1.5 / (step + 1),
                                      "top3/train": 0.5 + step / 10, "top3/val": 0.4 + step / 10})
    app = make_app(tmp_path / "logs", run_dir=run)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        loss = screen.query_one("#loss-chart")
        await wait_for(pilot, lambda: loss.point_count("val") == 3, what="three steps")
        assert screen.state == "running" and screen.query_one("#acc-chart").chart_title == "Top3 per epoch"
        assert screen.check_action("stop", ()) is False  # not our process
        for step in range(3, 5):
            append_scalars(events, step, {"loss/train": 1.0 / (step + 1), "loss/val": 1.5 / (step + 1)})
        await wait_for(pilot, lambda: loss.point_count("val") == 5, what="the new steps")
        assert [x for x, _ in loss.series["train"]] == [1, 2, 3, 4, 5]
        assert "stage" not in str(screen.query_one("#run-stats").content)


async def test_the_app_on_a_tensorboard_logdir_watches_its_newest_run(tmp_path):
    logs = tmp_path / "logs"
    append_scalars(logs / "old" / "events.out.tfevents.1.host", 0, {"loss": 1.0})
    os.utime(logs / "old" / "events.out.tfevents.1.host", (1, 1))
    append_scalars(logs / "new" / "events.out.tfevents.2.host", 0, {"loss": 2.0, "val_loss": 2.5})
    app = make_app(logs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        await wait_for(pilot, lambda: getattr(app.screen, "run_dir", None) == logs / "new", what="the newest run")
        await wait_for(pilot, lambda: app.screen.query_one("#loss-chart").point_count("val") == 1, what="its scalars")
