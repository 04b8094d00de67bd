"""Issue 12's newcomer findings in the app: the highlighted run, presets, keys and layout."""

from __future__ import annotations

from pathlib import Path

from fixtures.tui_support import FINISHED, GARBLED, wait_for
from test_tui import (  # noqa: F401  (fixtures)
    SIZE, fake_classifier, fake_describe, fake_launcher, make_app, palette_run, runs_dir, set_input, static_text,
)
from textual.widgets import DataTable, Select

from tui_cifar.config import PRESETS, TrainConfig

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


async def test_palette_preset_asks_first_naming_its_settings(tmp_path, fake_launcher, fake_describe):
    from tui_cifar.tui import settings

    settings.save_last_config({**TrainConfig().to_json(), "backbone": "resnet50", "data_dir": str(tmp_path / "d")})
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

    from tui_cifar import data

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

    app = make_app(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.loaded and app.screen.query_one(DataTable).row_count == 2)
        table = app.screen.query_one("#runs-table", DataTable)
        shown, x = [], 0
        for column in table.ordered_columns:
            x += column.get_render_width(table)
            if x <= table.scrollable_content_region.width:
                shown.append(str(column.label))
        assert {"Run", "State", "Best val", "Test acc"} <= set(shown), shown
        for key, mode in (("c", "configure"), ("t", "train"), ("e", "evaluate"), ("p", "predict"), ("r", "runs")):
            await pilot.press(key)
            if key == "c":
                await pilot.press("escape")
            await wait_for(pilot, lambda: app.current_mode == mode)
            await pilot.pause(0.2)
            footer = app.screen.query_one(Footer)
            keys = list(footer.query(FooterKey))
            assert keys and all(k.region.right <= 80 and k.region.width > 0 for k in keys), mode
