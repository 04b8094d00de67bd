"""Issue 20 (a newcomer's second hour) in the app, at 80x24: the data folder the CLI used, the keys each screen
offers, the layouts that were cut."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fixtures.tui_support import make_app, static_text, wait_for
from test_tui import fake_describe  # noqa: F401  (fixture)
from textual.widgets import Input

from tui_cifar.cli import commands
from tui_cifar.config import TrainConfig
from tui_cifar.engine import data, launcher
from tui_cifar.paths import config_dir
from tui_cifar.runs import store

SMALL = (80, 24)


@pytest.fixture
def launches(monkeypatch, tmp_path):
    """launcher.start_detached, recording the configs (no process)."""
    calls: list[TrainConfig] = []

    def start_detached(config, resume=None, notify=None):
        calls.append(config)
        run_dir = store.create_run_dir(Path(config.runs_dir), config.run_name)
        store.atomic_write_json(run_dir / "config.json", config.to_json())
        store.write_status(run_dir, "running", "starting", pid=os.getpid())
        return run_dir

    monkeypatch.setattr(launcher, "start_detached", start_detached)
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    return calls


def test_train_data_dir_is_remembered_absolute_and_found_without_it(fake_cifar, launches, tmp_path, monkeypatch):
    monkeypatch.chdir(fake_cifar.parent)
    assert data.find_cifar10(None) is None
    assert commands.main(["train", "--data-dir", fake_cifar.name, "--runs-dir", str(tmp_path / "runs"), "--detach"]) == 0
    assert launches[0].data_dir == str(fake_cifar)  # absolute in the run's config
    saved = json.loads((config_dir() / data.REMEMBERED_DATA_DIR).read_text())
    assert saved == {"folder": str(fake_cifar)}
    monkeypatch.chdir(tmp_path)  # elsewhere, no flag: the remembered folder
    assert data.find_cifar10(None) == str(fake_cifar / data.BATCH_FOLDER)
    assert data.load_cifar10(None)[4] == str(fake_cifar / data.BATCH_FOLDER)
    other = tmp_path / "nothing"
    other.mkdir()
    monkeypatch.setenv(data.DATA_DIR_ENV, str(other))  # the README's variable wins
    assert data.find_cifar10(None) is None


async def test_a_missing_dataset_is_a_dialog_that_asks_for_its_folder(fake_cifar, launches, tmp_path, fake_describe):
    app = make_app(tmp_path / "runs", start_screen="configure")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "DataFolderScreen", what="the data dialog")
        assert launches == []
        assert app.screen.query_one("#ok").region.bottom <= SMALL[1]  # its buttons are on screen at 80x24
        answer = app.screen.query_one("#answer", Input)
        answer.value = str(tmp_path)
        await pilot.press("enter")
        await pilot.pause()
        assert "No CIFAR-10 in" in static_text(app, "#data-folder-error") and launches == []
        answer.value = str(fake_cifar)
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(launches) == 1, what="the run started")
        assert launches[0].data_dir == str(fake_cifar)
        assert app.current_mode == "train"
    assert data.default_data_dir()[0] == fake_cifar  # remembered for the next session and the CLI
    app = make_app(tmp_path / "runs", start_screen="configure")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        assert str(fake_cifar) in app.screen.query_one("#f-data_dir", Input).placeholder
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: len(launches) == 2, what="started without asking")


async def test_configure_at_80x24_keeps_its_fields_in_view_under_the_note(tmp_path, fake_describe):
    from tui_cifar.tui import remembered

    remembered.save_last_config({**TrainConfig().to_json(), "limit_train": 3000, "limit_test": 1000, "augment": True,
                               "epochs_fine": 6, "image_size": 112})
    app = make_app(tmp_path / "runs", start_screen="configure")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        note = app.screen.query_one("#form-note")
        assert note.display and "Limit test images 1000" in str(note.tooltip)
        form = app.screen.query_one("#config-form").region
        visible = [row for row in app.screen.query(".field") if row.region.height and row.region.y >= form.y
                   and row.region.bottom <= form.bottom]
        assert len(visible) >= 8, len(visible)  # was 3


async def test_configure_empty_input_size_is_no_setting_and_the_help_panel_takes_no_keys(tmp_path, fake_describe):
    app = make_app(tmp_path / "runs", start_screen="configure")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        field = app.screen.query_one("#f-image_size", Input)
        field.value = ""
        await pilot.pause()
        assert "Input size" not in static_text(app, "#form-note")  # not "Input size (px) all"
        assert "image_size" in app.screen.errors
        field.focus()
        await pilot.click("#setting-help")
        await pilot.pause()
        assert app.focused is field  # the panel does not take the focus from the field being typed in
        await pilot.press("r", "e", "t")
        await pilot.pause()
        assert app.current_mode == "configure" and field.value == "ret"


async def test_evaluate_at_80x24_shows_a_cells_images_whole_and_the_paging_keys_scroll_them(tmp_path, monkeypatch):
    from fixtures.tui_support import FINISHED, copy_runs, fake_test_images
    from test_tui import open_evaluate

    runs_dir = copy_runs(tmp_path / "runs")
    monkeypatch.setattr(data, "load_test_images", lambda data_dir: fake_test_images())
    app = make_app(runs_dir)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_evaluate(app, pilot, runs_dir / FINISHED)
        assert {"n", "g"} <= footer_keys(app)
        matrix = screen.query_one("#confusion")
        matrix.focus()
        matrix.move_cursor(row=3, column=5)  # true cat, predicted dog
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(screen.query(".thumb")) == 3, what="thumbnails")
        await pilot.pause(0.2)
        tab = screen.query_one("#confusion-area").region
        first = screen.query(".thumb").first().region
        assert tab.y <= first.y and first.bottom <= tab.bottom  # a whole thumbnail in view (was 3 rows of it)
        await pilot.press("pagedown")
        await pilot.pause()
        assert matrix.cursor_coordinate == (3, 5)  # the cell stays the one whose images are shown
        await pilot.press("home")
        await pilot.pause()
        assert screen.query_one("#confusion-area").scroll_y == 0  # back up to the matrix
        assert matrix.cursor_coordinate == (3, 5)
        for tab_key in ("2", "3", "4"):  # n and g act on the confusion tab only
            await pilot.press(tab_key)
            await pilot.pause()
            assert not {"n", "g"} & footer_keys(app), tab_key
            assert not screen.check_action("toggle_percent", ())
        await pilot.press("1")
        await pilot.pause()
        assert {"n", "g"} <= footer_keys(app)


def footer_keys(app) -> set[str]:
    """The keys the footer shows now."""
    return {binding.key for _node, binding, enabled, _tooltip in app.screen.active_bindings.values()
            if binding.show and enabled}
