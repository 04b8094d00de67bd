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
        assert "CPU 180% (1.8 of 16 cores) · RSS 3.0 GiB · GPU0 23% 12.0/140 GiB 210 W" in text
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
        write_status(run_dir, "running", os.getpid(), "resuming")  # a resume: its trainer holds the lock again
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
        assert screen.state == "running" and screen.query_one("#acc-chart").chart_title == "Top3 per step"
        assert screen.query_one("#acc-chart").xlabel == "step"  # a TensorBoard run logs steps, not epochs
        assert " top3 " in str(screen.query_one("#chart-keys").content)  # the metric charted, not "accuracy"
        assert screen.check_action("stop", ()) is False  # not our process
        for step in range(3, 5):
            append_scalars(events, step, {"loss/train": 1.0 / (step + 1), "loss/val": 1.5 / (step + 1)})
        await wait_for(pilot, lambda: loss.point_count("val") == 5, what="the new steps")
        assert [x for x, _ in loss.series["train"]] == [1, 2, 3, 4, 5]
        assert "stage" not in str(screen.query_one("#run-stats").content)
        # no batches, no planned total: steps, not empty or full bars; nothing "kept" (its script's business)
        assert str(screen.query_one("#epoch-label").render()) == "Step 4"
        assert str(screen.query_one("#run-label").render()) == "5 logged"
        assert screen.query_one("#epoch-progress").styles.visibility == "hidden"
        assert "kept" not in str(screen.query_one("#run-advice").content)
        assert screen.query_one("#acc-chart").highlights == []


async def test_the_app_on_a_tensorboard_logdir_watches_its_newest_run(tmp_path):
    logs = tmp_path / "logs"
    append_scalars(logs / "old" / "events.out.tfevents.1.host", 0, {"loss": 1.0})
    os.utime(logs / "old" / "events.out.tfevents.1.host", (1, 1))
    append_scalars(logs / "new" / "events.out.tfevents.2.host", 0, {"loss": 2.0, "val_loss": 2.5})
    app = make_app(logs)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.current_mode == "runs"  # its runs listed, not a new run offered
        await pilot.press("t")
        await wait_for(pilot, lambda: getattr(app.screen, "run_dir", None) == logs / "new", what="the newest run")
        await wait_for(pilot, lambda: app.screen.query_one("#loss-chart").point_count("val") == 1, what="its scalars")


async def test_runs_screen_lists_tensorboard_runs_opens_and_compares_them(tmp_path):
    """A logdir with TensorBoard runs beside cifar-tui runs: listed with their last values, Enter follows one on
    the Train screen, and compare takes it (its scores and curve; no settings of cifar-tui's to differ)."""
    from fixtures.tui_support import copy_runs
    from textual.widgets import DataTable

    from tui_cifar.tui.screens.runs_screen import CompareScreen

    logs = copy_runs(tmp_path / "logs")
    tb_run = logs / "keras-tb"
    for step in range(3):  # as Keras' TensorBoard callback lays them out, started just now
        append_scalars(tb_run / "train" / "events.out.tfevents.1.host.v2", step,
                       {"epoch_loss": 1.0 / (step + 1), "epoch_accuracy": 0.5 + step / 10})
        append_scalars(tb_run / "validation" / "events.out.tfevents.2.host.v2", step,
                       {"epoch_loss": 1.2 / (step + 1), "epoch_accuracy": 0.45 + step / 10})
    app = make_app(logs)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.loaded)
        assert str(tb_run) in screen.summaries and len(screen.summaries) == 3
        table = screen.query_one("#runs-table", DataTable)
        assert screen.order[0] == str(tb_run)  # started last: first, by its first event's time
        row = [str(cell) for cell in table.get_row(str(tb_run))]
        assert row[1:4] == ["keras-tb", "running", "65.0%"]  # written just now; best val accuracy
        table.move_cursor(row=0)
        await pilot.pause()
        detail = screen.query_one("#run-detail").render()
        assert "last: loss 0.3333 · accuracy 0.7 · val_loss 0.4 · val_accuracy 0.65" in str(detail)
        await pilot.press("space", "space", "m")  # the TensorBoard run and the newest cifar-tui run
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and len(app.screen.curves) == 2,
                       what="compare curves")
        dialog = app.screen
        assert [(x, pytest.approx(y)) for x, y in dialog.curves["keras-tb"]] == [(1.0, 0.45), (2.0, 0.55), (3.0, 0.65)]
        compare = dialog.query_one("#compare-table", DataTable)
        assert [str(c) for c in compare.get_row("best_val")][1] == "65.0%"
        assert [str(c) for c in compare.get_row("same")][1:] == ["–", "all the same"]
        assert dialog.query_one("#compare-chart").region.height >= 9  # room to draw at 80x24
        box, esc = dialog.query_one("#compare-dialog"), dialog.query_one("#compare-dialog").query("Label").last()
        assert str(esc.render()) == "esc closes" and esc.region.bottom <= box.content_region.bottom  # not pushed out
        await pilot.press("escape")
        await pilot.pause()
        table.move_cursor(row=0)
        await pilot.press("enter")
        await wait_for(pilot, lambda: getattr(app.screen, "run_dir", None) == tb_run, what="the Train screen")
        assert app.current_mode == "train"
        await wait_for(pilot, lambda: app.screen.query_one("#loss-chart").point_count("val") == 3, what="its curve")
        append_scalars(tb_run / "validation" / "events.out.tfevents.2.host.v2", 3, {"epoch_loss": 0.25})
        await wait_for(pilot, lambda: app.screen.query_one("#loss-chart").point_count("val") == 4, what="a new step")


async def test_an_alert_in_the_app_runs_the_notify_command(tmp_path):
    """`watch RUN --notify CMD` in the app: beside the bell and toast, CMD runs (a real shell) for a new alert."""
    run = tmp_path / "logs" / "live-run"
    events = run / "events.out.tfevents.1.host"
    for step in range(3):
        append_scalars(events, step, {"loss/train": 1.0 - step / 10, "loss/val": 1.1 - step / 10})
    out = tmp_path / "alerts.txt"
    app = make_app(tmp_path / "logs", run_dir=run,
                   notify_command=f'echo "$CIFAR_TUI_ALERT $CIFAR_TUI_RUN_NAME $CIFAR_TUI_EPOCH" >> {out}')
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one("#loss-chart").point_count("val") == 3, what="three steps")
        await pilot.pause(0.3)
        assert not out.exists()  # nothing held before: no command
        append_scalars(events, 3, {"loss/train": float("nan"), "loss/val": 0.8})
        await wait_for(pilot, lambda: out.exists() and out.read_text(), what="the command's line")
        assert out.read_text() == "nonfinite live-run 4\n"
        assert any("loss is nan" in n.message for n in app._notifications)  # the toast too


def test_fit_title_shortens_instead_of_losing_the_title():
    from tui_cifar.tui.widgets.charts import fit_title

    options = ["Accuracy per step · smoothed 0.6 · log", "Accuracy per step · ema 0.6 · log", "Accuracy · ema 0.6 · log"]
    assert fit_title(options, 40) == options[0]
    assert fit_title(options, 35) == options[1]
    assert fit_title(options, 30) == options[2]
    assert fit_title(options, 19) == "Accuracy · ema 0.6"  # cut between words, no dangling separator


async def test_chart_titles_stay_drawn_with_smoothing_and_log_scale_at_80x24(tmp_path):
    """plotext leaves out a title wider than its plot: at 80x24 the half-width charts shorten theirs instead."""
    run_dir = running_mid_stage_two(tmp_path)
    app = make_app(run_dir.parent, run_dir=run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        acc = screen.query_one("#acc-chart")
        await wait_for(pilot, lambda: acc.point_count("val") >= 3, what="the epochs")
        await pilot.press("z", "y", "x")
        await pilot.pause(0.3)
        for chart in (acc, screen.query_one("#loss-chart")):
            assert chart.drawn_title.endswith("0.6 · log")
            assert chart.drawn_title in str(chart.render())


async def test_log_scale_survives_a_terminal_resize(tmp_path):
    """plotext took the log of the logs on a second build of one figure: a resize with y on crashed the app."""
    run_dir = running_mid_stage_two(tmp_path)
    app = make_app(run_dir.parent, run_dir=run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        acc = app.screen.query_one("#acc-chart")
        await wait_for(pilot, lambda: acc.point_count("val") >= 3, what="the epochs")
        await pilot.press("y")
        await pilot.pause(0.3)
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.5)
        assert "0.6" in str(acc.render()) or "0.5" in str(acc.render())  # its y ticks: the values, not their logs
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.5)
    assert app.return_code in (None, 0)


def test_advice_past_its_lines_ends_in_an_ellipsis():
    from rich.console import Console
    from rich.text import Text

    from tui_cifar.tui.widgets.run_advice import fit_lines

    advice = Text("⚠ Overfitting: train accuracy 12.8 points above val, and the gap widens: it memorises the "
                  "training images. Try more dropout (now 0.3), fewer epochs or more augmentation.")
    console = Console(width=80)
    assert fit_lines(advice, 200, 2, console) is advice  # fits: as it is
    shown = fit_lines(advice, 78, 2, console).plain.split("\n")
    assert len(shown) == 2 and shown[1].endswith("…") and len(shown[1]) <= 78
    assert fit_lines(advice, 78, None, console) is advice  # no limit set: the panel scrolls its own way


async def test_evaluate_on_a_tensorboard_run_says_there_is_no_model_not_a_missing_report(tmp_path):
    run = tmp_path / "logs" / "resnet-run"
    append_scalars(run / "events.out.tfevents.1700000000.host.1.0", 0, {"loss/train": 1.0, "loss/val": 1.2})
    app = make_app(tmp_path / "logs", run_dir=run)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_run(run, "evaluate")
        title = lambda: str(app.screen.query_one("#eval-title").content)  # noqa: E731
        await wait_for(pilot, lambda: "nothing to evaluate" in title(), what="the reason")
        assert "TensorBoard event files" in title() and "report.json" not in title()
