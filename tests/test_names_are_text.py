"""Names are text: run folder and file names are shown, never interpreted (Rich markup, terminal escapes),
CSV cells never become spreadsheet formulas, and names that are not UTF-8 are written losslessly."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from fixtures.tui_support import FINISHED, copy_runs, make_app, wait_for

from tui_cifar.cli import commands
from tui_cifar.engine.prediction import FilePrediction, write_csv
from tui_cifar.files import csv_cell
from tui_cifar.formatting import lossless_text, shown

MARKUP = "[red]RED [@click=app.quit()]x"
ESCAPE = "title\x1b]0;owned\x07\x1b[2J"


def _runs_with_hostile_names(tmp_path: Path) -> Path:
    runs = copy_runs(tmp_path / "runs")
    for name in (MARKUP, ESCAPE):
        shutil.copytree(runs / FINISHED, runs / name)
    config = json.loads((runs / FINISHED / "config.json").read_text())
    config["backbone"] = "=cmd|' /C calc'!A0"
    (runs / MARKUP / "config.json").write_text(json.dumps(config))
    return runs


def test_the_runs_table_prints_names_as_text(tmp_path, capsys):
    runs = _runs_with_hostile_names(tmp_path)
    assert commands.main(["runs", "--runs-dir", str(runs)]) == 0
    out, err = capsys.readouterr()
    assert MARKUP in out  # as written, not styled or dropped
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert r"title\x1b]0;owned\x07\x1b[2J" in out


def test_runs_csv_neutralises_formulas(tmp_path, capsys):
    runs = _runs_with_hostile_names(tmp_path)
    out = tmp_path / "runs.csv"
    assert commands.main(["runs", "--runs-dir", str(runs), "--csv", str(out)]) == 0
    rows = {row["run"]: row for row in csv.DictReader(out.open(encoding="utf-8"))}
    assert rows[MARKUP]["backbone"] == "'=cmd|' /C calc'!A0"
    assert rows[FINISHED]["backbone"] == "mobilenetv2"
    assert not list(tmp_path.glob(".tmp-*")) and not list(runs.glob(".tmp-*"))


@pytest.mark.parametrize("value, cell", [
    ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"), ("+1", "'+1"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("cat.png", "cat.png"), (-0.5, -0.5), (3, 3),
])
def test_csv_cells(value, cell):
    assert csv_cell(value) == cell


def test_predictions_csv_of_hostile_and_non_utf8_names(tmp_path):
    raw = b"caf\xe9-\x1b[31m.png"  # not UTF-8, and a terminal escape
    folder = tmp_path / "photos"
    folder.mkdir()
    names = ["=HYPERLINK(\"evil.example\",\"x\").png", "@me.png", os.fsdecode(raw)]
    results = [FilePrediction(folder / n, [("cat", 0.9), ("dog", 0.1)], root=folder) for n in names]
    results.append(FilePrediction(folder / "-bad.png", None, "-bad.png: not an image", root=folder))
    out = tmp_path / "out" / "p.csv"
    write_csv(results, out)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))  # valid UTF-8 throughout
    assert [r["relative_path"] for r in rows] == [
        "'=HYPERLINK(\"evil.example\",\"x\").png", "'@me.png", r"caf\xe9-" + "\x1b[31m.png", "'-bad.png"]
    assert rows[3]["error"] == "'-bad.png: not an image"
    # lossless: the escaped form maps back to the file's bytes
    assert os.fsencode(os.fsdecode(raw)) == raw
    assert lossless_text(os.fsdecode(raw)).encode("latin1").decode("unicode_escape").encode("latin1") == raw
    assert rows[2]["cat"] == "0.9000"


def test_shown_makes_control_characters_visible():
    assert shown("a\x1b[2Jb\nc\u202ed") == r"a\x1b[2Jb\nc\u202ed"
    assert shown(os.fsdecode(b"x\xffy")) == r"x\xffy"
    assert shown("plain é") == "plain é"


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_apps_runs_table_shows_names_as_text(tmp_path, size):
    from rich.text import Text
    from textual.widgets import DataTable

    runs = _runs_with_hostile_names(tmp_path)
    app = make_app(runs)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.loaded, what="runs listed")
        table = screen.query_one("#runs-table", DataTable)
        # what the table draws: a str cell is read as markup by DataTable (Text.from_markup), a Text is drawn as is
        cells = [table.get_row(key)[1] for key in screen.summaries]
        names = {c.plain if isinstance(c, Text) else Text.from_markup(c).plain for c in cells}
        assert MARKUP in names and r"title\x1b]0;owned\x07\x1b[2J" in names
        table.move_cursor(row=table.get_row_index(str(runs / MARKUP)))
        await pilot.pause(0.2)
        assert app.is_running
