"""Pilot tests for issue 13's explanations: overfitting signal, help panel, compare's settings, end-of-run alert."""

from __future__ import annotations

import os
from pathlib import Path

from fixtures.tui_support import copy_runs, make_app, wait_for, write_status
from textual.widgets import DataTable, Input

from tui_cifar.config import SETTING_BY_NAME, make_config
from tui_cifar.runs import store
from tui_cifar.tui.alerts import desktop_sequences
from tui_cifar.tui.widgets.charts import LineChart
from tui_cifar.tui.widgets.run_advice import RunAdvice, advice_text
from tui_cifar.tui.widgets.setting_help import SettingHelp


def epoch(n: int, loss: float, val_loss: float, val_acc: float) -> dict:
    return {"type": "epoch", "stage": 1, "epoch": n, "epochs": 10, "loss": loss, "val_loss": val_loss,
            "accuracy": val_acc + 0.02, "val_accuracy": val_acc,  # no accuracy gap: the val loss makes the signal "epoch_time": 1.0, "wall_time": 10.0 + n,
            "memory": {"rss": 700 * 2**20, "rss_peak": 900 * 2**20}}


def start_run(runs_dir: Path) -> tuple[Path, store.MetricsWriter]:
    """A run that reads as running (this process's pid), its log written with the trainer's writer."""
    config = make_config({"epochs_head": 10, "epochs_fine": 0, "patience": 3, "dropout": 0.3})
    run_dir = runs_dir / "20250303-090000-mobilenetv2-160px"
    run_dir.mkdir(parents=True)
    store.atomic_write_json(run_dir / store.CONFIG_FILE, config.to_json())
    write_status(run_dir, "running", os.getpid())
    writer = store.MetricsWriter(run_dir)
    writer.write({"type": "run_start", "config": config.to_json(), "device": "CPU", "wall_time": 0.0})
    writer.write({"type": "stage_start", "stage": 1, "epochs": 10, "steps_per_epoch": 10, "lr": 1e-3})
    return run_dir, writer


async def test_overfitting_is_flagged_as_it_happens_and_the_end_rings(tmp_path, monkeypatch):
    run_dir, writer = start_run(tmp_path / "runs")
    for n, (loss, val_loss, val_acc) in enumerate([(1.0, 0.9, 0.70), (0.8, 0.8, 0.75), (0.7, 0.78, 0.76)], 1):
        writer.write(epoch(n, loss, val_loss, val_acc))
    app = make_app(tmp_path / "runs", run_dir=run_dir)
    bells = []
    monkeypatch.setattr(app, "bell", lambda: bells.append(1))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.progress.epochs_done == 3, what="three epochs")
        advice = app.screen.query_one(RunAdvice)
        assert advice.signal is None
        assert str(advice.content).endswith("(green line)…")  # three figures' lines in two at 80x24
        text = str(advice_text(app.screen.progress, True, None))
        assert "early stop in 3/3 epochs without a new best" in text and "kept: stage 1 epoch 3, val 76.0%" in text
        assert "memory RAM 700 MiB (peak 900 MiB)" in text
        assert app.screen.query_one("#acc-chart", LineChart).highlights == [3]  # the kept epoch, marked

        # validation loss turns up while training loss keeps falling
        for n, (loss, val_loss, val_acc) in enumerate([(0.6, 0.8, 0.75), (0.5, 0.83, 0.74), (0.4, 0.9, 0.74)], 4):
            writer.write(epoch(n, loss, val_loss, val_acc))
        await wait_for(pilot, lambda: advice.signal is not None, what="overfitting signal")
        shown = str(advice.content)  # at 80x24 the panel's two lines end in "…" (the rest: its unclipped text)
        assert len(shown.splitlines()) == 2 and shown.endswith("…") and "Overfitting: val loss up" in shown
        text = str(advice_text(app.screen.progress, True, advice.signal, advice.alerts))
        assert "Overfitting: val loss up from 0.780 to 0.900 over 3 epochs" in text and "more dropout (now 0.3)" in text
        assert "early stop in 0/3 epochs without a new best" in text
        assert advice.has_class("-overfitting")
        assert app.screen.query_one("#loss-chart", LineChart).highlights == [3]
        # an alert that starts to hold on a running run rings, with a toast (issue 19 item 6)
        await wait_for(pilot, lambda: bells == [1], what="the alert's bell")
        await wait_for(pilot, lambda: any("val loss up" in n.message for n in app._notifications), what="its toast")

        # the run ends: bell and a toast, once
        writer.write({"type": "run_end", "state": "finished", "message": "done", "wall_time": 20.0,
                      "test_accuracy": 0.8})
        writer.close()
        store.write_status(run_dir, "finished", "done")
        await wait_for(pilot, lambda: bells, what="the bell")
        # the toast is a posted message: it lands a moment after the bell
        await wait_for(pilot, lambda: any("Run finished" in n.message for n in app._notifications),
                       what="the toast")
        await pilot.pause(0.3)
        assert bells == [1, 1]


def test_desktop_notification_sequences_are_osc_9_and_777_without_control_characters():
    seq = desktop_sequences("cifar-tui: run;1", "Run finished.\nTest accuracy 90%.")
    assert seq == ("\x1b]9;cifar-tui: run 1: Run finished. Test accuracy 90%.\x07"
                   "\x1b]777;notify;cifar-tui: run 1;Run finished. Test accuracy 90%.\x07")


async def test_help_panel_follows_the_focus_at_80_columns(tmp_path):
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.current_mode == "configure")
        await pilot.pause()
        panel = app.screen.query_one(SettingHelp)
        assert panel.setting is SETTING_BY_NAME["backbone"]  # the first field has the focus
        assert panel.region.width >= 70  # below the form at 80 columns, not squeezed beside it
        assert panel.region.height > 0
        await pilot.press("tab")
        await pilot.pause()
        assert panel.setting is SETTING_BY_NAME["image_size"]
        assert "upscaled" in str(panel.content)
        app.screen.query_one("#f-dropout", Input).focus()  # an advanced field, inside the collapsible
        await pilot.pause()
        assert panel.setting is SETTING_BY_NAME["dropout"]
        text = str(panel.content)
        assert text.startswith("Dropout\n") and "overfitting" in text and "allowed 0 to 0.95; default 0.3" in text


async def test_errors_name_the_field_as_shown_and_the_cost_estimate_says_no_measurement(tmp_path):
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.current_mode == "configure")
        await wait_for(pilot, lambda: "no measurement yet" in str(app.screen.query_one("#run-estimate").content),
                       what="cost estimate")
        assert "Feature cache: 50,000 images to run through the backbone" in str(
            app.screen.query_one("#run-estimate").content)
        app.screen.query_one("#f-lr_fine", Input).value = "2"
        await pilot.pause()
        message = str(app.screen.query_one("#err-lr_fine").content)
        assert message.startswith("“Learning rate, stage 2” must be between") and "lr_fine" not in message


async def test_compare_shows_the_settings_that_differ_and_results(tmp_path):
    runs_dir = copy_runs(tmp_path / "runs")
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.loaded)
        screen.query_one("#runs-table", DataTable).move_cursor(row=0)
        await pilot.press("space", "space", "m")
        await wait_for(pilot, lambda: app.screen.query_one("#compare-table", DataTable).row_count > 0,
                       what="compare table")
        dialog = app.screen
        table = dialog.query_one("#compare-table", DataTable)
        rows = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert rows[:3] == ["Best val", "Test acc", "Wall time"]  # results first: the table may scroll
        assert rows[3:] == [SETTING_BY_NAME[name].label for name in dialog.differing]
        assert "backbone" in dialog.differing and "image_size" in dialog.differing
        assert "runs_dir" not in dialog.differing
