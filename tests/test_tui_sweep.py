"""The Sweep screen driven with Pilot on a real small study, followed live as trials are added.

tests/fixtures/sweep.db is the study of a real tiny sweep (7 trials, 3 pruned by the median pruner, then without
warm-up) on the
fake CIFAR-10 of tests/conftest.py, with the real MobileNetV2 weights:

    cifar-tui sweep --study tiny --trials 7 --space SPACE --data-dir FAKE --runs-dir RUNS --set backbone=mobilenetv2-0.35
        --set epochs_head=3 --set batch_size=32 --set head_batch_size=32 --set val_size=50 --set lr_head=0.003
        --set runtime=keras --set seed=5
    SPACE: {"lr_fine": {"low": 1e-5, "high": 3e-3, "log": true}, "dropout": {"low": 0.1, "high": 0.6},
            "augment": [false, true], "image_size": 32, "fine_tune_blocks": 2, "label_smoothing": 0.1, "epochs_fine": 3}
"""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
from fixtures.tui_support import make_app, static_text, wait_for
from textual.widgets import DataTable

from tui_cifar import sweep

FIXTURE = Path(__file__).parent / "fixtures" / "sweep.db"


@pytest.fixture
def study_url(tmp_path) -> str:
    copy = tmp_path / "sweep.db"
    shutil.copy(FIXTURE, copy)
    return f"sqlite:///{copy}"


def loaded(app) -> bool:
    return app.current_mode == "sweep" and app.screen.summary is not None


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_sweep_screen_shows_trials_curves_and_what_mattered(study_url, tmp_path, size, monkeypatch):
    study = optuna.load_study(study_name="tiny", storage=study_url)
    trials = study.trials
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert pruned and len(complete) >= 2  # what the fixture is for
    app = make_app(tmp_path / "runs", sweep_storage=study_url, start_screen="sweep", sweep_refresh_interval=0.2)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: loaded(app), what="the study read")
        screen = app.screen
        table = screen.query_one("#sweep-table", DataTable)
        assert table.row_count == len(trials)
        states = [str(table.get_row(str(t.number))[1]) for t in trials]
        assert states == [t.state.name.lower() for t in trials]
        best = study.best_trial
        assert f"Best so far: trial {best.number}, val {100 * best.value:.2f}%" in static_text(app, "#sweep-head")
        # Every trial's curve on one chart; a pruned one ends where it was cut, the best in the success colour.
        chart = screen.query_one("#sweep-chart")
        assert set(chart.series) == {f"#{t.number}" for t in trials if t.intermediate_values}
        for t in trials:
            assert chart.series[f"#{t.number}"] == [(float(s), v) for s, v in sorted(t.intermediate_values.items())]
        longest = max(len(t.intermediate_values) for t in complete)
        assert all(len(t.intermediate_values) < longest for t in pruned)
        assert chart.series_colors[f"#{best.number}"] == "success"
        importance = static_text(app, "#sweep-importance")
        assert ("Mattered:" if size[1] < 30 else "Which settings mattered") in importance
        assert all(name in importance for name in optuna.importance.get_param_importances(study))

        # Live: a trial told to the storage by another worker appears, running, with its first epoch.
        trial = study.ask()
        trial.set_user_attr("host", "gpu-box-2")
        trial.set_user_attr("run_dir", str(tmp_path / "elsewhere" / "20261204-120000-mobilenetv2-160px"))
        trial.report(0.5, 1)
        await wait_for(pilot, lambda: chart.series.get(f"#{trial.number}") == [(1.0, 0.5)], what="the new trial's epoch")
        assert table.row_count == len(trials) + 1
        assert str(table.get_row(str(trial.number))[1]) == "running"

        # Enter on a trial whose run folder is on another machine says so.
        table.move_cursor(row=table.get_row_index(str(trial.number)))
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("Not on this machine" in (n.title or "") for n in app._notifications),
                       what="the notification")
        assert app.current_mode == "sweep"

        # f (test the best) on a study whose winner trained on another machine says where to run it, and gives
        # back the database connections it opened (on a shared server they are the workers' too).
        opened, closed = [], []
        open_storage, close_storage = sweep.open_storage, sweep.close_storage
        monkeypatch.setattr(sweep, "open_storage", lambda url: opened.append(open_storage(url)) or opened[-1])
        monkeypatch.setattr(sweep, "close_storage", lambda storage: closed.append(storage) or close_storage(storage))
        await pilot.press("f")
        await wait_for(pilot, lambda: any("Not tested" in (n.title or "") for n in app._notifications),
                       what="the finish notification")
        await wait_for(pilot, lambda: opened and all(any(s is c for c in closed) for s in opened),
                       what="every storage opened closed again")
        message = next(n.message for n in app._notifications if n.title == "Not tested")
        assert f"trial {best.number}'s run folder" in message and "run `cifar-tui sweep --finish` on that machine" in message


async def test_no_sweep_yet_says_how_to_start_one(tmp_path):
    app = make_app(tmp_path / "runs", start_screen="sweep", sweep_refresh_interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "no sweep here yet" in static_text(app, "#sweep-head"), what="the message")
        assert "cifar-tui sweep --trials N" in static_text(app, "#sweep-head")
        assert not (tmp_path / "runs" / sweep.STORAGE_FILE).exists()  # looking creates nothing
