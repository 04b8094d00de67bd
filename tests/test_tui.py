"""The Textual app driven with Pilot: screens, configure, runs, evaluate, predict, stop."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from fixtures.tui_support import (
    FINISHED,
    GARBLED,
    copy_runs,
    fake_test_images,
    hold_run,
    make_app,
    make_running_run,
    recorded_records,
    static_text,
    wait_for,
)
from textual.geometry import Region
from textual.widgets import DataTable, Input

from tui_cifar.config import PRESETS, TrainConfig
from tui_cifar.runs import store
from tui_cifar.tui.messages import ShowRun
from tui_cifar.tui.widgets.picture_panel import PicturePanel

SIZE = (100, 30)


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    return copy_runs(tmp_path / "runs")


# ---------------------------------------------------------------------------- navigation


async def test_opens_on_runs_and_keys_switch_screens(runs_dir):
    app = make_app(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:  # the smallest supported terminal
        await wait_for(pilot, lambda: app.screen.loaded, what="runs listed")
        assert app.current_mode == "runs"
        assert app.screen.has_class("-narrow") and app.screen.has_class("-short")
        for key, mode in (("c", "configure"), ("t", "train"), ("e", "evaluate"), ("p", "predict"), ("r", "runs")):
            await pilot.press(key)
            await pilot.pause()
            assert app.current_mode == mode, key
        # the footer shows the other screens' keys
        footer_keys = {b.binding.key for b in app.active_bindings.values() if b.binding.show}
        assert {"c", "t", "e", "p"} <= {k for k in footer_keys}


async def test_opens_on_configure_without_runs(tmp_path):
    app = make_app(tmp_path / "no-runs-yet")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.current_mode == "configure"
        # every screen copes with an empty runs folder
        await pilot.press("t")
        await pilot.pause()
        assert "No run selected" in static_text(app, "#run-title")
        await pilot.press("e")
        await pilot.pause()
        assert "No finished run" in static_text(app, "#eval-title")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.screen.loaded)
        assert "none yet" in static_text(app, "#runs-path")


async def test_keys_open_the_newest_runs(runs_dir):
    running = make_running_run(runs_dir, records=recorded_records()[:30])
    app = make_app(runs_dir, start_screen="configure")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")  # no current run: the running one
        await wait_for(pilot, lambda: app.screen.state == "running")
        assert app.screen.run_dir == running
        await pilot.press("e")  # the running run has no report: the newest finished one instead
        await wait_for(pilot, lambda: app.screen.report is not None)
        assert app.screen.run_dir == runs_dir / FINISHED


async def test_light_theme(runs_dir):
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        app.theme = "textual-light"
        await pilot.press("e")
        await pilot.pause(0.3)
        assert app.current_theme.dark is False
        app.theme = "textual-dark"
        await pilot.pause()


async def test_charts_follow_the_theme(runs_dir):
    from textual.color import Color

    def drawn_colors(chart) -> set[tuple[int, int, int]]:
        return {tuple(span.style.color.triplet) for span in chart.render().spans
                if getattr(span.style, "color", None) is not None and span.style.color.triplet}

    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        app.open_run(runs_dir / FINISHED, "train")
        await wait_for(pilot, lambda: app.screen.progress.epochs_done > 0, what="run read")
        chart = app.screen.query_one("#acc-chart")
        await wait_for(pilot, lambda: chart.point_count("train") > 0, what="curves drawn")
        for theme in ("textual-dark", "textual-light"):
            app.theme = theme
            await pilot.pause()
            assert Color.parse(app.theme_variables["primary"]).rgb in drawn_colors(chart), theme


# ---------------------------------------------------------------------------- runs


async def test_runs_table_lists_runs_and_garbled_problems(runs_dir):
    running = make_running_run(runs_dir, records=recorded_records()[:30])
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 30)) as pilot:  # every column
        screen = app.screen
        await wait_for(pilot, lambda: screen.loaded)
        table = screen.query_one("#runs-table", DataTable)
        assert table.row_count == 3
        states = {Path(k).name: s.state for k, s in screen.summaries.items()}
        assert states == {FINISHED: "finished", GARBLED: "unknown", running.name: "running"}
        finished_row = table.get_row(str(runs_dir / FINISHED))
        assert "76.00%" in [str(c) for c in finished_row]
        # the garbled run shows what could be read, and the problems
        table.move_cursor(row=table.get_row_index(str(runs_dir / GARBLED)))
        await pilot.pause()
        detail = static_text(app, "#run-detail")
        assert "status.json is unreadable" in detail
        assert "garbled" in detail
        assert str(table.get_cell(str(runs_dir / GARBLED), "backbone")) == "resnet50"


async def test_back_on_runs_a_new_report_shows(runs_dir):
    """A report written while the Runs screen was hidden (Evaluate, say) changes no status file: coming back
    lists the runs whole, not just the live ones."""
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.loaded, what="runs listed")
        runs_screen = app.screen
        await pilot.press("c")
        await pilot.pause()
        (runs_dir / FINISHED / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5}))
        await pilot.press("r")
        await wait_for(pilot, lambda: runs_screen.summaries[str(runs_dir / FINISHED)].test_accuracy == 0.5,
                       what="the new test accuracy")
        table = runs_screen.query_one("#runs-table", DataTable)
        await wait_for(pilot, lambda: "50.00%" in [str(c) for c in table.get_row(str(runs_dir / FINISHED))],
                       what="its row redrawn")


async def test_enter_opens_finished_run_in_evaluate(runs_dir):
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.loaded)
        table = app.screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=table.get_row_index(str(runs_dir / FINISHED)))
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_mode == "evaluate"
        assert app.screen.run_dir == runs_dir / FINISHED


async def test_compare_marked_runs(runs_dir):
    partial = recorded_records()[:45]
    make_running_run(runs_dir, records=partial)
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.loaded)
        await pilot.press("m")  # nothing marked: a hint, no dialog
        await pilot.pause()
        assert app.screen is screen
        screen.query_one("#runs-table", DataTable).move_cursor(row=0)
        await pilot.press("space", "space")  # marks rows 0 and 1
        assert len(screen.marked) == 2
        await pilot.press("m")
        await wait_for(pilot, lambda: len(getattr(app.screen, "curves", {})) == 2, what="compare curves")
        curves = app.screen.curves
        epochs_so_far = sum(r["type"] == "epoch" for r in partial)
        assert sorted(len(c) for c in curves.values()) == sorted([epochs_so_far, 5])
        chart = app.screen.query_one("#compare-chart")
        assert set(chart.series) == set(curves)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


# ---------------------------------------------------------------------------- configure


@pytest.fixture
def fake_launcher(monkeypatch, tmp_path, fake_cifar):
    calls: list[TrainConfig] = []
    monkeypatch.setenv("CIFAR_TUI_DATA_DIR", str(fake_cifar))  # the app finds CIFAR-10: no "where is it?" dialog

    def start_detached(config, resume=None):
        calls.append(config)
        run_dir = store.create_run_dir(Path(config.runs_dir), config.run_name)
        store.atomic_write_json(run_dir / "config.json", config.to_json())
        store.write_status(run_dir, "running", "starting", pid=os.getpid())
        hold_run(run_dir)
        return run_dir

    from tui_cifar.engine import launcher

    monkeypatch.setattr(launcher, "start_detached", start_detached)
    return calls


@pytest.fixture
def fake_describe(monkeypatch):
    calls = []

    def describe(name, size, blocks):
        calls.append((name, size, blocks))
        return f"{blocks} of 17 blocks, 1.23 M of 2.26 M backbone parameters trainable"

    from tui_cifar.engine import backbones

    monkeypatch.setattr(backbones, "describe_fine_tune", describe)
    return calls


async def set_input(pilot, field: str, text: str) -> None:
    widget = pilot.app.screen.query_one(f"#f-{field}", Input)
    widget.value = text
    await pilot.pause()


async def test_configure_invalid_values_show_field_messages_and_do_not_start(tmp_path, fake_launcher, fake_describe):
    app = make_app(tmp_path / "runs", start_screen="configure")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        await set_input(pilot, "image_size", "10")
        # the message names the field as the form shows it (issue 13), not the config key
        assert "“Input size (px)” must be between 32 and 600" in static_text(app, "#err-image_size")
        assert screen.query_one("#f-image_size").has_class("-invalid")
        await set_input(pilot, "fine_tune_blocks", "lots")
        assert "“Fine-tune blocks” must be a whole number" in static_text(app, "#err-fine_tune_blocks")
        await set_input(pilot, "lr_head", "")
        assert "“Learning rate, stage 1”" in static_text(app, "#err-lr_head")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert fake_launcher == []
        assert app.current_mode == "configure"
        # fixing them clears the messages
        await set_input(pilot, "image_size", "96")
        await set_input(pilot, "fine_tune_blocks", "all")
        await set_input(pilot, "lr_head", "0.002")
        assert screen.errors == {}
        assert static_text(app, "#err-image_size") == ""
        # a rule across fields lands on the fields it names
        await set_input(pilot, "val_size", "1000")
        await set_input(pilot, "limit_train", "800")
        assert "val_size" in screen.errors and "must be smaller" in screen.errors["val_size"]
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert fake_launcher == []


async def test_configure_start_launches_and_opens_training(tmp_path, fake_launcher, fake_describe):
    runs = tmp_path / "runs"
    app = make_app(runs, start_screen="configure")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await set_input(pilot, "epochs_head", "5")
        await set_input(pilot, "batch_size", "64")
        app.screen.query_one("#f-augment").value = True  # off by default
        await pilot.pause()
        await pilot.click("#start")
        await pilot.pause()
        assert len(fake_launcher) == 1
        config = fake_launcher[0]
        assert (config.epochs_head, config.batch_size, config.augment) == (5, 64, True)
        assert config.runs_dir == str(runs)
        assert app.current_mode == "train"
        run_dir = app.screen.run_dir
        assert run_dir.parent == runs and run_dir.exists()
        await wait_for(pilot, lambda: app.screen.state == "running")
        # remembered for the next app
        saved = json.loads((Path(os.environ["XDG_CONFIG_HOME"]) / "cifar-tui" / "last_config.json").read_text())
        assert saved["epochs_head"] == 5

    app2 = make_app(runs, start_screen="configure")
    async with app2.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app2.screen.query_one("#f-epochs_head", Input).value == "5"
        assert app2.screen.query_one("#f-batch_size", Input).value == "64"
        assert app2.screen.query_one("#f-augment").value is True


async def test_configure_presets_and_parameter_count(tmp_path, fake_describe):
    app = make_app(tmp_path / "runs", start_screen="configure")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert fake_describe == []  # never on its own: it imports TensorFlow
        await pilot.click("#preset-best")
        await pilot.pause()
        screen = app.screen
        values = screen.form_values()
        for name, value in {**TrainConfig().to_json(), **PRESETS["best"]}.items():
            if name not in ("runs_dir", "data_dir"):
                assert values[name] == value, name
        await pilot.click("#preset-quick")
        await pilot.pause()
        values = screen.form_values()
        assert all(values[k] == v for k, v in PRESETS["quick"].items())
        # changing size or blocks counts the trainable parameters in a worker, shown beside the field
        await set_input(pilot, "fine_tune_blocks", "4")
        await wait_for(pilot, lambda: static_text(app, "#blocks-desc").startswith("4 of 17"), what="description")
        assert fake_describe[-1] == ("mobilenetv2", values["image_size"], 4)
        await set_input(pilot, "image_size", "128")
        await wait_for(pilot, lambda: fake_describe[-1] == ("mobilenetv2", 128, 4))
        assert screen.errors == {}


async def test_command_palette_starts_quick_run(tmp_path, fake_launcher, fake_describe):
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"start quick")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", what="confirm dialog")
        await pilot.press("y")
        await wait_for(pilot, lambda: len(fake_launcher) == 1, what="launch")
        started = fake_launcher[0].to_json()
        assert all(started[k] == v for k, v in PRESETS["quick"].items())
        await wait_for(pilot, lambda: app.current_mode == "train")


async def test_command_palette_preset_keeps_the_forms_folders(tmp_path, fake_launcher, fake_describe, fake_cifar):
    shutil.copytree(fake_cifar, tmp_path / "my-cifar")  # a data folder that holds CIFAR-10: no "where is it?"
    app = make_app(tmp_path / "runs", start_screen="configure")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await set_input(pilot, "data_dir", str(tmp_path / "my-cifar"))
        await palette_run(pilot, "start quick")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", what="confirm dialog")
        await pilot.press("y")
        await wait_for(pilot, lambda: len(fake_launcher) == 1, what="launch")
        assert fake_launcher[0].data_dir == str(tmp_path / "my-cifar")
        assert fake_launcher[0].limit_train == PRESETS["quick"]["limit_train"]


async def palette_run(pilot, command: str) -> None:
    """Open the command palette, type a command and run the best match."""
    await pilot.press("ctrl+p")
    await pilot.pause()
    await pilot.press(*command)
    await pilot.pause(0.5)
    await pilot.press("enter")
    await pilot.pause()


async def test_command_palette_stops_the_watched_run_after_asking(runs_dir, monkeypatch):
    run_dir = make_running_run(runs_dir, records=recorded_records()[:30])
    stops = []
    from tui_cifar.engine import launcher

    monkeypatch.setattr(launcher, "request_stop", lambda rd, by="": stops.append(Path(rd)) or True)
    app = make_app(runs_dir, run_dir=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.state == "running")
        await palette_run(pilot, "stop the watched run")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", what="confirm dialog")
        await pilot.press("y")
        await pilot.pause()
        assert stops == [run_dir]
        assert app.screen.stop_requested


async def test_command_palette_classify_folder_goes_to_predict(runs_dir):
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.loaded, what="runs listed")
        await palette_run(pilot, "classify folder")
        await wait_for(pilot, lambda: app.current_mode == "predict", what="predict screen")


# ---------------------------------------------------------------------------- training: stop


async def test_stop_asks_then_requests_stop(runs_dir, monkeypatch):
    run_dir = make_running_run(runs_dir, records=recorded_records()[:30])
    stops = []
    from tui_cifar.engine import launcher

    monkeypatch.setattr(launcher, "request_stop", lambda rd, by="": stops.append(Path(rd)) or True)
    app = make_app(runs_dir, run_dir=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.state == "running")
        await pilot.press("s")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmScreen"
        await pilot.press("n")  # cancel: nothing happens
        await pilot.pause()
        assert stops == []
        await pilot.press("s")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert stops == [run_dir]
        assert app.screen.stop_requested
        # d detaches: the run keeps going, the runs screen shows it
        await pilot.press("d")
        await pilot.pause()
        assert app.current_mode == "runs"


# ---------------------------------------------------------------------------- evaluate


async def open_evaluate(app, pilot, run_dir):
    app.open_run(run_dir, "evaluate")
    await wait_for(pilot, lambda: app.screen.predictions is not None, what="predictions loaded")
    return app.screen


async def test_evaluate_confusion_matrix_and_tables(runs_dir):
    report = json.loads((runs_dir / FINISHED / "metrics.json").read_text())
    cm = report["confusion_matrix"]
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_evaluate(app, pilot, runs_dir / FINISHED)
        matrix = screen.query_one("#confusion")
        assert matrix.row_count == 10 and len(matrix.columns) == 10
        for i in range(10):
            for j in range(10):
                shown = str(matrix.get_cell_at((i, j))).strip()
                assert shown == (str(cm[i][j]) if cm[i][j] else "·")
        assert "76.00%" in static_text(app, "#eval-title")
        # percent of the true class (row)
        await pilot.press("n")
        await pilot.pause()
        assert matrix.percent
        assert str(matrix.get_cell_at((3, 5))).strip() == f"{100 * cm[3][5] / sum(cm[3]):.1f}"
        assert str(matrix.get_cell_at((3, 3))).strip() == f"{100 * cm[3][3] / sum(cm[3]):.1f}"
        await pilot.press("n")
        await pilot.pause()
        assert str(matrix.get_cell_at((3, 5))).strip() == str(cm[3][5])
        # per-class table: 10 classes + macro and weighted averages
        await pilot.press("2")
        await pilot.pause()
        table = screen.query_one("#per-class", DataTable)
        assert table.row_count == 12
        cat = table.get_row("cat")
        per = report["per_class"]["cat"]
        assert [str(c) for c in cat] == ["cat", f"{per['precision']:.3f}", f"{per['recall']:.3f}",
                                         f"{per['f1']:.3f}", str(per["support"]), f"{per['roc_auc']:.4f}"]
        assert str(table.get_row("macro_avg")[1]) == f"{report['macro_avg']['precision']:.3f}"
        assert str(table.get_row("weighted_avg")[3]) == f"{report['weighted_avg']['f1']:.3f}"
        # ROC: all ten classes plus the chance line, or one
        await pilot.press("3")
        await pilot.pause()
        chart = screen.query_one("#roc-chart")
        assert len(chart.series) == 11
        legend = static_text(pilot.app, "#roc-legend").splitlines()  # beside the chart, not over it
        assert legend[0] == f"━━ airplane {report['per_class']['airplane']['roc_auc']:.3f}" and len(legend) == 11
        screen.query_one("#roc-class").value = "cat"
        await pilot.pause()
        assert [k for k in chart.series if k != "chance"] == [f"cat {per['roc_auc']:.3f}"]
        assert static_text(pilot.app, "#roc-legend").splitlines() == [f"━━ cat {per['roc_auc']:.3f}", "━━ chance"]
        # most confused pairs
        await pilot.press("4")
        await pilot.pause()
        confused = screen.query_one("#confused", DataTable)
        assert [str(c) for c in confused.get_row_at(0)[:3]] == ["cat", "dog", "3"]


async def test_evaluate_cell_shows_misclassified_images(runs_dir, monkeypatch):
    from tui_cifar.engine import data

    loads = []
    monkeypatch.setattr(data, "load_test_images", lambda data_dir: loads.append(data_dir) or fake_test_images())
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_evaluate(app, pilot, runs_dir / FINISHED)
        matrix = screen.query_one("#confusion")
        matrix.focus()
        matrix.move_cursor(row=3, column=5)  # true cat, predicted dog
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(screen.query(".thumb")) == 3, what="thumbnails")
        assert "cat predicted as dog: 3 images" in static_text(app, "#mistakes-title")
        assert loads == [None]
        captions = [str(t.caption) for t in screen.query(".thumb")]
        assert all(c.startswith("#") and c.endswith("%") for c in captions)
        # the half-block image is drawn with the image's pixels
        thumb = screen.query(".thumb").first()
        assert thumb.image.shape == (32, 32, 3)
        # a cell with no images
        matrix.move_cursor(row=0, column=1)
        await pilot.press("enter")
        await pilot.pause()
        assert "no test images" in static_text(app, "#mistakes-title")
        assert len(screen.query(".thumb")) == 0
        # the test images were loaded once and kept
        matrix.move_cursor(row=0, column=0)
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(screen.query(".thumb")) == 3)
        assert loads == [None]


async def test_evaluate_without_test_data_says_so(runs_dir, monkeypatch):
    from tui_cifar.engine import data

    def missing(data_dir):
        raise data.DatasetNotFound("CIFAR-10 not found in /nowhere")

    monkeypatch.setattr(data, "load_test_images", missing)
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_evaluate(app, pilot, runs_dir / FINISHED)
        screen.show_cell_images(3, 5)
        await wait_for(pilot, lambda: "cannot load" in static_text(app, "#mistakes-title"))
        assert app.is_running


async def test_evaluate_garbled_report(runs_dir):
    run_dir = runs_dir / FINISHED
    (run_dir / "metrics.json").write_text("{not json")
    (run_dir / "predictions.npz").write_bytes(b"garbage")
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        app.open_run(run_dir, "evaluate")
        await wait_for(pilot, lambda: app.screen.predictions_problem is not None)
        assert "metrics.json is unreadable" in static_text(app, "#eval-title")
        assert "predictions.npz is unreadable" in app.screen.predictions_problem
        assert app.is_running


# ---------------------------------------------------------------------------- predict


class FakeClassifier:
    def __init__(self):
        self.calls = []

    def classify_files(self, paths, top_k=5):
        from tui_cifar.engine.images import ImageLoadError, load_image
        from tui_cifar.engine.prediction import FilePrediction

        out = []
        for p in paths:
            self.calls.append(Path(p))
            try:
                load_image(p)
            except ImageLoadError as exc:
                out.append(FilePrediction(Path(p), None, str(exc)))
                continue
            top = [("cat", 0.81), ("dog", 0.12), ("deer", 0.04), ("frog", 0.02), ("bird", 0.01)][:top_k]
            out.append(FilePrediction(Path(p), top))
        return out


@pytest.fixture
def fake_classifier(monkeypatch):
    from tui_cifar.engine import prediction

    clf = FakeClassifier()
    loaded = []
    monkeypatch.setattr(prediction, "load_classifier", lambda run_dir: loaded.append(Path(run_dir)) or clf)
    clf.loaded = loaded
    return clf


@pytest.fixture
def pictures(tmp_path) -> Path:
    from PIL import Image

    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(folder / "good.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    return folder


async def test_predict_good_and_broken_files(runs_dir, fake_classifier, pictures):
    (runs_dir / FINISHED / "model.keras").write_bytes(b"fake")
    notes = []
    app = make_app(runs_dir, start_screen="predict")
    async with app.run_test(size=(120, 36)) as pilot:
        original_notify = app.notify
        app.notify = lambda message, **kw: (notes.append((message, kw.get("severity"))), original_notify(message, **kw))
        screen = app.screen
        await wait_for(pilot, lambda: screen.classifier is not None, what="model loaded")
        assert fake_classifier.loaded == [runs_dir / FINISHED]
        panel = screen.query_one(PicturePanel)
        screen.classify(pictures / "good.png")
        await wait_for(pilot, lambda: panel.result is not None, what="classified")
        assert panel.result.top[0] == ("cat", 0.81)
        topk = static_text(app, "#topk")
        assert "cat" in topk and "81.0%" in topk and "dog" in topk
        # on screen, beside the preview: every class name and percentage in full, nothing cut to "…"
        box = screen.query_one("#topk")
        shown = "\n".join(strip.text for strip in box.render_lines(Region(0, 0, box.size.width, box.size.height)))
        assert "…" not in shown
        for name, prob in panel.result.top[:5]:
            assert name in shown and f"{100 * prob:.1f}%" in shown, shown
        assert screen.query_one("#preview").image.size == (64, 48)
        assert panel.error is None
        # a broken file: a message in the UI and a notification, and the app keeps going
        screen.classify(pictures / "broken.jpg")
        await wait_for(pilot, lambda: panel.error is not None, what="error shown")
        assert "broken.jpg" in panel.error
        assert "broken.jpg" in static_text(app, "#predict-error")
        assert any("broken.jpg" in m and sev == "error" for m, sev in notes)
        assert app.is_running
        screen.classify(pictures / "good.png")
        await wait_for(pilot, lambda: panel.result is not None and panel.error is None)


async def test_predict_keeps_the_chosen_model_when_asked_for_a_run_without_one(runs_dir, fake_classifier):
    for name in (FINISHED, GARBLED):
        (runs_dir / name / "model.keras").write_bytes(b"fake")
    no_model = runs_dir / "20250302-080000-mobilenetv2-96px"
    shutil.copytree(runs_dir / FINISHED, no_model)
    (no_model / "model.keras").unlink()
    notes = []
    app = make_app(runs_dir, start_screen="predict")
    async with app.run_test(size=SIZE) as pilot:
        app.notify = lambda message, **kw: notes.append(message)
        screen = app.screen
        select = screen.query_one("#model-select")
        await wait_for(pilot, lambda: screen.classifier is not None, what="the first model")
        select.value = str(runs_dir / GARBLED)  # the user picks the other run
        await wait_for(pilot, lambda: screen.run_dir == runs_dir / GARBLED and screen.classifier is not None)
        screen.post_message(ShowRun(no_model))  # p on the runs screen, on a run without a model
        await wait_for(pilot, lambda: any("has no trained model" in n for n in notes), what="the warning")
        assert f"{no_model.name} has no trained model; using {GARBLED}" in notes
        assert select.value == str(runs_dir / GARBLED) and screen.run_dir == runs_dir / GARBLED


def test_predict_tree_shows_only_images_and_folders(pictures):
    from tui_cifar.tui.widgets.image_tree import ImageTree

    (pictures / "sub").mkdir()
    (pictures / ".hidden.png").write_bytes(b"x")
    kept = sorted(p.name for p in ImageTree.filter_paths(None, pictures.iterdir()))
    assert kept == ["broken.jpg", "good.png", "sub"]


async def test_predict_enter_in_tree_classifies(runs_dir, fake_classifier, pictures, monkeypatch):
    from tui_cifar.tui.screens import predict_screen as predict

    (runs_dir / FINISHED / "model.keras").write_bytes(b"fake")
    monkeypatch.setattr(predict.Path, "cwd", classmethod(lambda cls: pictures))
    app = make_app(runs_dir, start_screen="predict")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.classifier is not None)
        tree = screen.query_one("#image-tree")
        tree.focus()
        await wait_for(pilot, lambda: len(tree.root.children) == 2, what="tree loaded")
        await pilot.press("down", "down", "enter")  # broken.jpg, good.png (sorted)
        panel = screen.query_one(PicturePanel)
        await wait_for(pilot, lambda: panel.result is not None and panel.result.top is not None)
        assert panel.path == pictures / "good.png"


async def test_predict_without_models(tmp_path):
    app = make_app(tmp_path / "runs", start_screen="predict")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "No run with a model" in static_text(app, "#model-status"))
        app.screen.classify(tmp_path / "whatever.png")
        await pilot.pause(0.3)
        assert app.is_running
