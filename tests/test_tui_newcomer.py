"""Issue 12's newcomer findings in the app: the highlighted run, presets, keys and layout."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fixtures.tui_support import (
    FINISHED,
    GARBLED,
    make_app,
    make_running_run,
    recorded_records,
    static_text,
    wait_for,
    write_status,
)
from test_tui import (  # noqa: F401  (fixtures)
    SIZE,
    fake_classifier,
    fake_describe,
    fake_launcher,
    palette_run,
    runs_dir,
)
from textual.widgets import DataTable, Select

from tui_cifar.config import PRESETS, TrainConfig
from tui_cifar.runs import store

# ---------------------------------------------------------------------------- the highlighted run (item 3)


async def highlight(app, pilot, run_dir: Path) -> None:
    table = app.screen.query_one("#runs-table", DataTable)
    table.move_cursor(row=table.get_row_index(str(run_dir)))
    await pilot.pause()


async def test_runs_keys_act_on_the_highlighted_run(runs_dir, fake_classifier):
    (runs_dir / FINISHED / "model.keras").write_bytes(b"fake")
    (runs_dir / GARBLED / "model.keras").write_bytes(b"fake")
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.loaded, what="runs listed")
        await highlight(app, pilot, runs_dir / FINISHED)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "evaluate" and app.screen.report is not None)
        assert app.screen.run_dir == runs_dir / FINISHED
        await pilot.press("r")
        await wait_for(pilot, lambda: app.current_mode == "runs")
        # e on a run without a report: that run, saying it has none (not the run opened before)
        await highlight(app, pilot, runs_dir / GARBLED)
        await pilot.press("e")
        await wait_for(pilot, lambda: app.current_mode == "evaluate" and app.screen.run_dir == runs_dir / GARBLED)
        assert "no test report" in static_text(app, "#eval-title")
        # the evaluate screen offers the runs with a report
        select = app.screen.query_one("#eval-run", Select)
        assert [v for _l, v in select._options if v != Select.NULL] == [str(runs_dir / FINISHED)]
        select.value = str(runs_dir / FINISHED)
        await wait_for(pilot, lambda: app.screen.run_dir == runs_dir / FINISHED and app.screen.report is not None)
        # p: the highlighted run's model
        await pilot.press("r")
        await wait_for(pilot, lambda: app.current_mode == "runs")
        await highlight(app, pilot, runs_dir / GARBLED)
        await pilot.press("p")
        await wait_for(pilot, lambda: app.current_mode == "predict" and app.screen.classifier is not None)
        assert app.screen.run_dir == runs_dir / GARBLED
        assert app.screen.query_one("#model-select", Select).value == str(runs_dir / GARBLED)
        assert GARBLED in static_text(app, "#model-status")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.current_mode == "runs")
        await highlight(app, pilot, runs_dir / FINISHED)
        await pilot.press("p")
        await wait_for(pilot, lambda: app.screen.run_dir == runs_dir / FINISHED and app.screen.classifier is not None)


# ---------------------------------------------------------------------------- presets (item 5)


def record_notes(app) -> list[str]:
    notes: list[str] = []
    original = app.notify
    app.notify = lambda message, **kw: (notes.append(str(message)), original(message, **kw))
    return notes


async def test_quick_preset_sets_its_backbone_and_says_what_it_set(tmp_path, fake_describe):
    app = make_app(tmp_path / "runs", start_screen="configure")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        notes = record_notes(app)
        app.screen.query_one("#f-backbone", Select).value = "mobilenetv2-0.35"
        await pilot.pause()
        await pilot.click("#preset-quick")
        await pilot.pause()
        values = app.screen.form_values()
        assert values["backbone"] == "mobilenetv2"  # what the Quick preset was measured with
        assert values["image_size"] == PRESETS["quick"]["image_size"]
        said = notes[-1]
        assert "Backbone mobilenetv2" in said and "Input size (px) 112" in said, said


async def test_palette_preset_asks_first_naming_its_settings(tmp_path, fake_launcher, fake_describe, fake_cifar):
    import shutil

    from tui_cifar.tui import remembered

    shutil.copytree(fake_cifar, tmp_path / "d")  # a data folder that holds CIFAR-10: no "where is it?" dialog
    remembered.save_last_config({**TrainConfig().to_json(), "backbone": "resnet50", "data_dir": str(tmp_path / "d")})
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await palette_run(pilot, "start quick")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", what="confirm dialog")
        question = app.screen.question
        assert "backbone mobilenetv2" in question and "image_size 112" in question, question
        await pilot.press("n")
        await pilot.pause()
        assert fake_launcher == []
        await palette_run(pilot, "start quick")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", what="confirm dialog")
        await pilot.press("y")
        await wait_for(pilot, lambda: len(fake_launcher) == 1, what="launch")
        assert fake_launcher[0].backbone == "mobilenetv2"
        assert fake_launcher[0].data_dir == str(tmp_path / "d")  # the machine's folders are kept


# ---------------------------------------------------------------------------- keys and layout (item 10)


async def test_evaluate_arrows_move_in_the_matrix_and_enter_on_a_pair_shows_its_images(runs_dir, monkeypatch):
    from fixtures.tui_support import fake_test_images
    from textual.widgets import TabbedContent

    from tui_cifar.engine import data

    monkeypatch.setattr(data, "load_test_images", lambda data_dir: fake_test_images())
    app = make_app(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.loaded, what="runs listed")
        await pilot.press("enter")  # the finished run: its report
        await wait_for(pilot, lambda: app.current_mode == "evaluate" and app.screen.predictions is not None)
        screen = app.screen
        matrix = screen.query_one("#confusion")
        await pilot.press("down", "down", "down", "right")
        assert matrix.cursor_coordinate == (3, 1)
        assert screen.query_one("#eval-tabs", TabbedContent).active == "tab-confusion"
        # the most-confused tab: the arrows pick a pair, Enter shows its images
        await pilot.press("4")
        await pilot.pause()
        assert screen.focused is screen.query_one("#confused", DataTable)
        await pilot.press("enter")  # the first pair: cat predicted as dog
        await wait_for(pilot, lambda: len(screen.query(".thumb")) == 3, what="thumbnails")
        assert screen.query_one("#eval-tabs", TabbedContent).active == "tab-confusion"
        assert screen.selected_cell == (3, 5) and matrix.cursor_coordinate == (3, 5)


async def test_80_columns_keep_the_scores_and_every_footer_key(runs_dir):
    from textual.widgets import Footer
    from textual.widgets._footer import FooterKey

    def columns_in_view(table) -> list[str]:
        shown, x = [], 0
        for column in table.ordered_columns:
            x += column.get_render_width(table)
            if x <= table.scrollable_content_region.width:
                shown.append(str(column.label))
        return shown

    app = make_app(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.loaded and app.screen.query_one(DataTable).row_count == 2)
        table = app.screen.query_one("#runs-table", DataTable)
        assert {"Run", "State", "Best val", "Test acc"} <= set(columns_in_view(table))
        # a wider terminal has room for when each run started, date and time
        await pilot.resize_terminal(100, 30)
        await wait_for(pilot, lambda: "Started" in columns_in_view(table), what="Started column")
        assert str(table.get_cell(str(runs_dir / FINISHED), "started")) == "2025-03-01 10:15"  # status.json's started_at
        await pilot.resize_terminal(80, 24)
        for key, mode in (("c", "configure"), ("t", "train"), ("e", "evaluate"), ("p", "predict"), ("r", "runs")):
            await pilot.press(key)
            if key == "c":
                await pilot.press("escape")
            await wait_for(pilot, lambda: app.current_mode == mode)
            await pilot.pause(0.2)
            footer = app.screen.query_one(Footer)
            keys = list(footer.query(FooterKey))
            assert keys and all(k.region.right <= 80 and k.region.width > 0 for k in keys), mode


def dead_pid() -> int:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


async def test_a_run_reads_the_same_state_in_the_list_and_when_opened(runs_dir):
    """A resumed run whose process died: status.json says running (dead pid), the log ends with the earlier stop."""
    records = recorded_records()[:30] + [{"type": "run_end", "state": "stopped", "message": "stopped by SIGTERM"}]
    run_dir = make_running_run(runs_dir, records=records, pid=dead_pid())
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.loaded, what="runs listed")
        listed = app.screen.summaries[str(run_dir)].state
        await highlight(app, pilot, run_dir)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "train" and app.screen.state not in ("none", "unknown"))
        assert (listed, app.screen.state) == ("killed", "killed")


async def test_a_head_only_run_has_one_stage(runs_dir):
    records = recorded_records()[:30]
    records[0]["config"].update(fine_tune_blocks=0, epochs_fine=0)
    run_dir = make_running_run(runs_dir, records=records)
    (run_dir / "config.json").write_text(json.dumps(records[0]["config"]))
    app = make_app(runs_dir, run_dir=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.progress.epochs_done > 0, what="run read")
        stats = static_text(app, "#run-stats")
        assert "stage 1/2" not in stats and "head only" in stats, stats


async def test_stop_from_the_app_says_who_stopped_it(runs_dir, monkeypatch):
    run_dir = make_running_run(runs_dir, records=recorded_records()[:30])
    asked = []
    from tui_cifar.engine import launcher

    monkeypatch.setattr(launcher, "request_stop", lambda rd, by="": asked.append((Path(rd), by)) or True)
    app = make_app(runs_dir, run_dir=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.state == "running")
        await pilot.press("s")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", what="confirm dialog")
        await pilot.press("y")
        await pilot.pause()
        assert asked == [(run_dir, "the app")]


def test_the_stop_file_names_who_asked(tmp_path):
    import subprocess
    import sys

    from tui_cifar.engine import launcher
    from tui_cifar.engine.callbacks import StopRequest

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = ("import os, sys, time; from tui_cifar.runs import store; "
              "store.RunLock.acquire(sys.argv[1]).record(os.getpid()); print('locked', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", holder, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        from fixtures.tui_support import write_status

        assert child.stdout.readline().strip() == "locked"  # the run's trainer
        write_status(run_dir, "running", child.pid)
        assert launcher.request_stop(run_dir, by="the app")
        assert child.wait(timeout=10) != 0  # SIGTERM reached it
    finally:
        child.kill()
    stop = StopRequest(run_dir / store.STOP_FILE)
    assert stop.requested and stop.signal_name == "the app"
    # a bare STOP file (another host, a script) still stops the run
    (run_dir / store.STOP_FILE).write_text("")
    stop = StopRequest(run_dir / store.STOP_FILE)
    assert stop.requested and stop.signal_name == "a stop request"


async def test_a_stopped_run_offers_resume(runs_dir, monkeypatch):
    run_dir = make_running_run(runs_dir, records=recorded_records()[:30])
    write_status(run_dir, "stopped", os.getpid(), message="stopped by the app")
    resumed = []
    from tui_cifar.engine import launcher

    def start_detached(config, resume=None):
        resumed.append((config.backbone, resume))
        write_status(resume, "running", os.getpid())
        return resume

    monkeypatch.setattr(launcher, "start_detached", start_detached)
    app = make_app(runs_dir, run_dir=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.state == "stopped")
        await pilot.press("R")
        await wait_for(pilot, lambda: len(resumed) == 1, what="resume")
        assert resumed == [("mobilenetv2", run_dir)]
        await wait_for(pilot, lambda: app.screen.state == "running")
        write_status(run_dir, "running", dead_pid())  # reads as killed
        # the palette offers it too, by name
        app.current_run = None
        await pilot.press("r")
        await wait_for(pilot, lambda: app.screen.loaded)
        await palette_run(pilot, "resume run")
        await wait_for(pilot, lambda: len(resumed) == 2, what="resume from the palette")
        assert resumed[1] == ("mobilenetv2", run_dir)
        assert app.current_mode == "train" and app.screen.run_dir == run_dir


async def type_into(pilot, field: str, text: str) -> None:
    widget = pilot.app.screen.query_one(f"#f-{field}")
    widget.value = ""
    widget.focus()
    await pilot.press(*text)
    await pilot.pause()


async def test_configure_refuses_out_of_range_entries_naming_the_field(tmp_path, fake_launcher, fake_describe):
    app = make_app(tmp_path / "runs", start_screen="configure")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        await type_into(pilot, "image_size", "-1")
        assert screen.query_one("#f-image_size").value == "-1"  # as typed, not "1"
        said = static_text(app, "#err-image_size")
        assert "“Input size (px)” must be between 32 and 600" in said and "-1" in said, said
        await type_into(pilot, "epochs_head", "abc")
        assert screen.query_one("#f-epochs_head").value == "abc"
        assert "“Epochs, stage 1 (head)” must be a whole number" in static_text(app, "#err-epochs_head")
        await type_into(pilot, "lr_head", "fast")
        assert "“Learning rate, stage 1” must be a number" in static_text(app, "#err-lr_head")
        await type_into(pilot, "fine_tune_blocks", "99")
        said = static_text(app, "#err-fine_tune_blocks")
        assert "Fine-tune blocks" in said and "18" in said and "'all'" in said, said
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert fake_launcher == []
        await type_into(pilot, "fine_tune_blocks", "18")
        assert "fine_tune_blocks" not in screen.errors


async def test_configure_says_which_remembered_settings_are_not_the_defaults(tmp_path, fake_describe):
    from tui_cifar.tui import remembered

    remembered.save_last_config({**TrainConfig().to_json(), "limit_train": 2000, "val_size": 200, "augment": True})
    app = make_app(tmp_path / "runs", start_screen="configure")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        note = static_text(app, "#form-note")
        assert "Limit training images 2000" in note and "Augmentation on" in note and "Default" in note, note
        await pilot.click("#preset-default")
        await pilot.pause()
        values = app.screen.form_values()
        assert (values["limit_train"], values["augment"]) == (None, False)
        assert static_text(app, "#form-note").strip() == ""


def palette_backgrounds(widget) -> set[int]:
    """The background colours a widget draws, as a 256-colour terminal shows them (TEXTUAL_COLOR_SYSTEM=256)."""
    from rich.color import ColorSystem
    from textual.geometry import Region

    return {seg.style.bgcolor.downgrade(ColorSystem.EIGHT_BIT).number
            for strip in widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
            for seg in strip if seg.style and seg.style.bgcolor}


async def test_the_focused_control_stands_out_in_256_colours(tmp_path, fake_describe):
    app = make_app(tmp_path / "runs", start_screen="configure")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for theme in ("textual-dark", "textual-light"):
            app.theme = theme
            for selector, drawn_by in (("#f-image_size", None), ("#f-backbone", "SelectCurrent"),
                                       ("#f-augment", None), ("#count-params", None)):
                control = app.screen.query_one(selector)
                drawn = control.query_one(drawn_by) if drawn_by else control
                app.screen.set_focus(None)
                await pilot.pause()
                blurred = palette_backgrounds(drawn)
                control.focus()
                await pilot.pause()
                assert palette_backgrounds(drawn) - blurred, (theme, selector)


async def test_the_matrix_cursor_stands_out_in_256_colours(runs_dir):
    from rich.color import ColorSystem
    from textual.geometry import Region

    def cell_background(matrix, row: int, column: int) -> int:
        """The 256-colour background of a cell's number (rows start below the header)."""
        strip = matrix.render_lines(Region(0, row + 1, matrix.size.width, 1))[0]
        cells = [seg for seg in strip if seg.text.strip()][1:]  # after the row label
        return cells[column].style.bgcolor.downgrade(ColorSystem.EIGHT_BIT).number

    app = make_app(runs_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        app.open_run(runs_dir / FINISHED, "evaluate")
        await wait_for(pilot, lambda: app.screen.report is not None)
        matrix = app.screen.query_one("#confusion")
        for theme in ("textual-dark", "textual-light"):
            app.theme = theme
            for row, column in ((0, 0), (3, 5), (0, 1)):  # a diagonal cell, a confusion, an empty one
                matrix.move_cursor(row=row, column=column)
                await pilot.pause()
                under_cursor = cell_background(matrix, row, column)
                matrix.move_cursor(row=9, column=0)
                await pilot.pause()
                assert under_cursor != cell_background(matrix, row, column), (theme, row, column)
