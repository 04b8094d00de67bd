"""Pilot tests: a run recorded by RunLogger from a plain model.fit shows as what it is (issue 13 item 1, app side),
and the About / environment panel (issue 10 item 2, app side)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures.tui_support import make_app, static_text, wait_for
from textual.widgets import DataTable

from tui_cifar.runs import store
from tui_cifar.tui.widgets.charts import LineChart


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A finished RunLogger run: a binary classifier compiled with an AUC metric and no accuracy, 2 epochs."""
    import keras

    from tui_cifar import RunLogger

    rng = np.random.default_rng(0)
    x = rng.random((96, 4)).astype("float32")
    y = (x.sum(1) > 2).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")], name="plain_auc")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc")])
    logger = RunLogger(tmp_path_factory.mktemp("keras_runs"))
    model.fit(x, y, validation_split=0.25, epochs=2, batch_size=16, verbose=0, callbacks=[logger])
    return logger.run_dir


@pytest.fixture
def runs_dir(tmp_path, recorded) -> Path:
    runs = tmp_path / "runs"
    shutil.copytree(recorded, runs / recorded.name)
    return runs


async def test_runs_screen_names_the_keras_model(runs_dir, recorded):
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.loaded, what="runs listed")
        table = app.screen.query_one("#runs-table", DataTable)
        key = str(runs_dir / recorded.name)
        assert str(table.get_cell(key, "backbone")) == "plain_auc"
        assert str(table.get_cell(key, "size")) != "?"


async def test_train_screen_shows_the_model_and_the_metrics_the_run_has(runs_dir, recorded):
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        app.open_run(runs_dir / recorded.name, "train")
        await wait_for(pilot, lambda: app.current_mode == "train" and "plain_auc" in static_text(app, "#run-info"),
                       what="run info")
        info = static_text(app, "#run-info")
        assert "Keras model plain_auc" in info and "optimizer adam" in info.lower()
        assert "?" not in info and "fine-tune" not in info
        chart = app.screen.query_one("#acc-chart", LineChart)
        await wait_for(pilot, lambda: chart.point_count("train") == 2, what="metric chart")
        stats = static_text(app, "#run-stats")
        assert "stage" not in stats and "head only" not in stats
        assert re.search(r"val auc \d\.\d{4}", stats) and "val acc" not in stats
        assert chart.chart_title == "Auc per epoch"
        assert chart.point_count("val") == 2
        assert app.screen.query_one("#loss-chart", LineChart).point_count("val") == 2


async def test_evaluate_and_predict_say_why_they_do_not_apply(runs_dir, recorded):
    notes = []
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        original = app.notify
        app.notify = lambda message, **kw: (notes.append(message), original(message, **kw))
        reason = store.no_cifar_model_reason({"kind": store.KERAS_KIND})
        app.open_run(runs_dir / recorded.name, "evaluate")
        await wait_for(pilot, lambda: app.current_mode == "evaluate" and "RunLogger" in static_text(app, "#eval-title"),
                       what="evaluate says why")
        assert reason in " ".join(static_text(app, "#eval-title").split())
        app.open_run(runs_dir / recorded.name, "predict")
        await wait_for(pilot, lambda: any(reason in n for n in notes), what="predict says why")
        assert not any("has no trained model; using" in n for n in notes)


async def test_about_panel_shows_the_doctor_facts_from_the_palette(tmp_path):
    from tui_cifar.engine.doctor import versions
    from tui_cifar.tui.screens.environment_screen import EnvironmentScreen

    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"About / environment")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EnvironmentScreen), what="about panel")
        await wait_for(pilot, lambda: app.screen.facts is not None, timeout=60, what="facts gathered")
        text = static_text(app, "#environment-facts")
        assert f"python {versions()['python']}" in " ".join(text.split())
        assert "TF devices" in text and "CPU:0" in text and "feature cache" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, EnvironmentScreen), what="closed")
