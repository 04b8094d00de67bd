"""Pilot tests for issue 12 items 6-8 in the app: folders of photos, a labelled folder's score, what the model sees.

The model is a real cifar-tui transfer model (MobileNetV2 0.35 at 32 px, random weights: seconds to build), so
classification, the CSV and Grad-CAM run their real code; only which figures come out is left to chance.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from fixtures.tui_support import FINISHED, copy_runs, fake_test_images, make_app, static_text, wait_for
from PIL import Image
from textual.widgets import Input

from tui_cifar.runs import store
from tui_cifar.tui import remembered
from tui_cifar.tui.widgets.confusion import ConfusionMatrix
from tui_cifar.tui.widgets.folder_score import FolderScore
from tui_cifar.tui.widgets.halfblock import HalfBlockImage
from tui_cifar.tui.widgets.picture_panel import PicturePanel


@pytest.fixture(scope="module")
def classifier():
    from tui_cifar.engine.model import build_transfer_model
    from tui_cifar.engine.prediction import Classifier

    return Classifier(build_transfer_model("mobilenetv2-0.35", 32, 2, weights=None).full, tta_flip=False)


@pytest.fixture
def runs_dir(tmp_path, classifier, monkeypatch) -> Path:
    from tui_cifar.engine import prediction

    runs = copy_runs(tmp_path / "runs")
    (runs / FINISHED / "model.keras").write_bytes(b"stands for the model below")
    monkeypatch.setattr(prediction, "load_classifier", lambda run_dir: classifier)
    return runs


@pytest.fixture
def photos(tmp_path) -> Path:
    """photos/cat (2), photos/Cars (1), photos/holiday (1, no class), photos/notes.txt (skipped)."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for folder, n in (("cat", 2), ("Cars", 1), ("holiday", 1)):
        (root / folder).mkdir(parents=True)
        for k in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(root / folder / f"{k}.png")
    (root / "notes.txt").write_text("not a picture")
    return root


async def classify_folder(app, pilot, folder: Path) -> None:
    await pilot.press("f")
    await wait_for(pilot, lambda: isinstance(app.focused, Input), what="folder dialog")
    app.focused.value = str(folder)
    await pilot.press("enter")
    await wait_for(pilot, lambda: "→" in static_text(app, "#model-status") or "not classified" in static_text(app, "#model-status"),
                   timeout=60, what="folder classified")


async def test_folder_is_searched_with_subfolders_csv_beside_the_run_and_folder_remembered(runs_dir, photos):
    app = make_app(runs_dir, start_screen="predict")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.classifier is not None, timeout=30, what="model loaded")
        await classify_folder(app, pilot, photos)
        status = static_text(app, "#model-status")
        csv_path = runs_dir / FINISHED / "predictions" / "photos.csv"
        assert "4 images found in 3 folders, 1 skipped; 4 classified, 0 failed" in status, status
        assert str(csv_path) in status
        rows = list(csv.DictReader(csv_path.open()))
        assert sorted(r["relative_path"] for r in rows) == ["Cars/0.png", "cat/0.png", "cat/1.png", "holiday/0.png"]
        assert not list(photos.rglob("*.csv"))  # nothing written into the photo folder
        assert remembered.load_photo_folder() == photos.resolve()
        await pilot.press("f")  # the dialog offers the last folder
        await wait_for(pilot, lambda: isinstance(app.focused, Input), what="folder dialog again")
        assert app.focused.value == str(photos.resolve())
        await pilot.press("escape")


async def test_a_typed_path_that_is_not_a_folder_is_refused(runs_dir, tmp_path):
    notes = []
    app = make_app(runs_dir, start_screen="predict")
    async with app.run_test(size=(120, 40)) as pilot:
        app.notify = lambda message, **kw: notes.append(message)
        await wait_for(pilot, lambda: app.screen.classifier is not None, timeout=30, what="model loaded")
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.focused, Input), what="folder dialog")
        app.focused.value = str(tmp_path / "nowhere")
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("is not a folder" in n for n in notes), what="refusal")
        assert remembered.load_photo_folder() is None


async def test_class_subfolders_are_scored_beside_the_test_set(runs_dir, photos):
    app = make_app(runs_dir, start_screen="predict")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.classifier is not None, timeout=30, what="model loaded")
        assert not screen.query_one("#folder-score").display
        await classify_folder(app, pilot, photos)
        assert screen.query_one("#folder-score").display
        report = screen.query_one(FolderScore).score["report"]
        text = static_text(app, "#photo-score")
        assert f"accuracy on your photos {100 * report['accuracy']:.1f}%" in text
        assert "(3 labelled, 1 in no class folder)" in text  # holiday/ names no class
        test_acc = store.read_report(runs_dir / FINISHED)[0]["test_accuracy"]
        assert f"test set {100 * test_acc:.1f}%" in text
        cat_row = next(line for line in text.splitlines() if line.strip().startswith("cat "))
        assert cat_row.split()[1] == "2"  # two cat photos
        matrix = screen.query_one("#photo-confusion", ConfusionMatrix)
        assert sum(map(sum, matrix.matrix)) == 3
        assert sum(matrix.matrix[3]) == 2 and sum(matrix.matrix[1]) == 1  # rows: cat (3), automobile (1)


async def test_the_32px_input_and_its_gradcam_are_shown_beside_the_photo(runs_dir, photos):
    from tui_cifar.engine.images import model_input

    app = make_app(runs_dir, start_screen="predict")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.classifier is not None, timeout=30, what="model loaded")
        picture = photos / "cat" / "0.png"
        screen.classify(picture)
        panel = screen.query_one(PicturePanel)
        await wait_for(pilot, lambda: panel.explanation is not None, timeout=60, what="Grad-CAM")
        seen = screen.query_one("#model-input", HalfBlockImage)
        assert np.array_equal(np.asarray(seen.image), model_input(picture))
        assert panel.explanation.error is None
        assert panel.explanation.class_name == panel.result.top[0][0]
        heat = screen.query_one("#heatmap", HalfBlockImage)
        assert heat.image.size == (32, 32)
        assert not np.array_equal(np.asarray(heat.image), model_input(picture))  # coloured by the heat
        assert f"Grad-CAM: {panel.result.top[0][0]}" in str(screen.query_one("#heatmap-label").content)
        assert seen.size.width >= 32 and seen.size.height >= 16  # one cell a pixel: the 32x32 input whole


async def test_gallery_shows_gradcam_of_the_cell_images_on_g(runs_dir, monkeypatch):
    from tui_cifar.engine import data

    monkeypatch.setattr(data, "load_test_images", lambda data_dir: fake_test_images())
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_run(runs_dir / FINISHED, "evaluate")
        screen = app.screen
        await wait_for(pilot, lambda: getattr(screen, "predictions", None) is not None, what="predictions loaded")
        screen.show_cell_images(3, 5)
        await wait_for(pilot, lambda: screen.gallery_items, what="cell images")
        plain_images = [np.asarray(image) for image, _ in screen.gallery_items]
        await pilot.press("g")
        await wait_for(pilot, lambda: screen.heatmaps_shown, timeout=60, what="heatmaps")
        thumbs = [np.asarray(w.image) for w in screen.query("#mistakes-grid HalfBlockImage")]
        assert len(thumbs) == len(plain_images)
        assert all(t.shape == (32, 32, 3) and not np.array_equal(t, p) for t, p in zip(thumbs, plain_images))
        await pilot.press("g")  # back to the pictures
        await wait_for(pilot, lambda: not screen.heatmaps_shown, what="pictures again")


# ---------------------------------------------------------------------------- issue 20: the picker and 80x24


async def test_the_picker_opens_in_the_photo_folder_and_one_enter_opens_a_picture(runs_dir, photos):
    from textual_fspicker.parts import DirectoryNavigation

    remembered.save_photo_folder(photos)  # classified in an earlier session
    app = make_app(runs_dir, start_screen="predict")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.classifier is not None, timeout=30, what="model loaded")
        await pilot.press("o")
        await wait_for(pilot, lambda: app.screen.query(DirectoryNavigation), what="picker")
        picker = app.screen
        navigation = picker.query_one(DirectoryNavigation)
        await wait_for(pilot, lambda: navigation.option_count > 1, what="folder listed")
        assert navigation.location == photos  # not the working folder
        assert navigation.size.height >= 12  # was 3 rows of files at 80x24
        assert picker.query_one("InputBar Select").size.width >= 12  # "Images" on one line, not a letter a line
        navigation.focus()
        cat = next(k for k in range(navigation.option_count) if navigation.get_option_at_index(k).location.name == "cat")
        navigation.highlighted = cat
        await pilot.press("enter")  # into the folder
        await wait_for(pilot, lambda: navigation.location == photos / "cat", what="into cat/")
        await wait_for(pilot, lambda: navigation.option_count > 2, what="cat/ listed")
        first = next(k for k in range(navigation.option_count) if navigation.get_option_at_index(k).location.name == "0.png")
        navigation.highlighted = first
        await pilot.press("enter")  # one Enter opens the picture
        panel = screen.query_one(PicturePanel)
        await wait_for(pilot, lambda: app.screen is screen and panel.result is not None, what="classified")
        assert panel.path == photos / "cat" / "0.png"


async def test_predict_at_80x24_shows_the_picture_and_what_the_model_sees_whole(runs_dir, photos):
    app = make_app(runs_dir, start_screen="predict")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.classifier is not None, timeout=30, what="model loaded")
        screen.classify(photos / "cat" / "0.png")
        await wait_for(pilot, lambda: screen.query_one(PicturePanel).explanation is not None, timeout=30,
                       what="Grad-CAM")
        await pilot.pause()
        preview = screen.query_one("#preview-box").region
        assert preview.height >= 8 and preview.width >= 16, preview  # was 2 cells
        for seen in ("#model-input", "#heatmap"):
            region = screen.query_one(seen).region
            assert region.height >= 8 and region.width >= 16, (seen, region)  # the 32x32 input whole, as 16x16
            assert region.bottom <= 23  # above the footer
        await classify_folder(app, pilot, photos)
        matrix = screen.query_one("#photo-confusion", ConfusionMatrix)
        score = screen.query_one("#folder-score-scroll")
        assert matrix.virtual_size.width <= score.region.width or score.allow_horizontal_scroll
        # the tree and the picker follow the folder just classified
        assert screen.query_one("#image-tree").path == photos
