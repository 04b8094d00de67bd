"""One root for the errors cifar-tui expects: one exit code each in commands.main, one display in the app."""

from __future__ import annotations

import pytest
from fixtures.tui_support import copy_runs, make_app, wait_for

from tui_cifar.cli import commands
from tui_cifar.config import ConfigError, make_config
from tui_cifar.engine.backbones import WeightsUnavailable
from tui_cifar.engine.data import DatasetNotFound
from tui_cifar.engine.explain import ExplainError
from tui_cifar.engine.folder_labels import LabelMapError
from tui_cifar.engine.images import ImageLoadError
from tui_cifar.engine.prediction import ModelLoadError
from tui_cifar.engine.training import TrainingDiverged
from tui_cifar.errors import EXIT_FAILED, EXIT_USAGE, CifarTuiError
from tui_cifar.runs.store import RunStoreError
from tui_cifar.runs.tbexport import TensorBoardMissing
from tui_cifar.tui.widgets.picture_panel import PicturePanel


@pytest.mark.parametrize("cls", [ConfigError, RunStoreError, DatasetNotFound, ModelLoadError, LabelMapError,
                                 ExplainError, TensorBoardMissing, WeightsUnavailable, TrainingDiverged])
def test_every_expected_error_has_the_root(cls):
    error = cls("what went wrong")
    assert isinstance(error, CifarTuiError) and str(error) == error.message == "what went wrong"
    assert error.exit_code == (EXIT_USAGE if cls in (ConfigError, LabelMapError) else EXIT_FAILED)
    image = ImageLoadError("/x/cat.png", "not an image")
    assert isinstance(image, CifarTuiError) and str(image) == "cat.png: not an image"


def test_config_error_carries_its_fields():
    with pytest.raises(ConfigError) as caught:
        make_config({"epochs_head": 0, "epochs_fine": 0})
    assert caught.value.fields == ("epochs_head", "epochs_fine")
    with pytest.raises(ConfigError) as caught:
        make_config({"batch_size": "large"})
    assert caught.value.fields == ("batch_size",)
    with pytest.raises(ConfigError) as caught:
        make_config({"learning_rate": 0.1})
    assert caught.value.fields == ()  # no setting of that name: the form shows it at the top


def test_cli_main_maps_each_error_to_its_exit_code(tmp_path, capsys):
    assert commands.main(["--data-dir", str(tmp_path), "backbones"]) == EXIT_USAGE  # a ConfigError
    assert capsys.readouterr().err == "cifar-tui: --data-dir does not apply to `backbones`\n"
    assert commands.main(["evaluate", str(tmp_path / "nowhere")]) == EXIT_FAILED  # a RunStoreError
    err = capsys.readouterr().err
    assert err.startswith("cifar-tui: ") and "no such run folder" in err and err.count("\n") == 1
    label_map = tmp_path / "map.json"
    label_map.write_text('{"pets": "unicorn"}')
    assert commands.main(["predict", str(tmp_path), str(tmp_path), "--labels-from-folders", "--label-map", str(label_map)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("cifar-tui: label map") and "unicorn" in err and err.count("\n") == 1
    assert commands.main(["predict", str(tmp_path), str(tmp_path), "--label-map", str(label_map)]) == EXIT_USAGE
    assert capsys.readouterr().err == "cifar-tui: --label-map needs --labels-from-folders\n"


def test_epochs_fine_with_no_block_to_fine_tune_is_refused_not_ignored(tmp_path, capsys):
    """`--preset quick --epochs-fine 3` trained the quick preset's head alone and said nothing of the 3 epochs."""
    assert commands.main(["train", "--preset", "quick", "--epochs-fine", "3", "--data-dir", str(tmp_path)]) == EXIT_USAGE
    assert capsys.readouterr().err == ("cifar-tui: --epochs-fine 3 would fine-tune nothing: --fine-tune-blocks is 0 "
                                       "(the quick preset's); add --fine-tune-blocks N (3 by default) or leave "
                                       "--epochs-fine out\n")
    assert not (tmp_path / "runs").exists()


async def test_a_screen_shows_an_expected_error_under_its_title(tmp_path):
    app = make_app(copy_runs(tmp_path / "runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.current_mode == "runs" and app.screen.loaded)
        app.screen.run_worker(_raise(ModelLoadError("no model at run/model.keras")), name="load", exit_on_error=False)
        app.screen.run_worker(_raise(KeyError("a bug")), name="bug", exit_on_error=False)
        await wait_for(pilot, lambda: len(app._notifications) >= 2, what="both shown")
        shown = {(n.title, n.message) for n in app._notifications}
        assert ("Cannot load the model", "no model at run/model.keras") in shown
        assert ("Something went wrong", "bug: 'a bug'") in shown


async def test_a_widgets_worker_failure_is_shown_too(tmp_path):
    """A worker's state messages stay with the widget that runs it: the picture panel shows its own failures."""
    app = make_app(copy_runs(tmp_path / "runs"), start_screen="predict")
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.screen.query_one(PicturePanel)
        panel.run_worker(_raise(KeyError("a bug")), name="classify", exit_on_error=False)
        await wait_for(pilot, lambda: ("Something went wrong", "classify: 'a bug'") in
                       {(n.title, n.message) for n in app._notifications}, what="shown")
        assert app.is_running


async def _raise(error: Exception) -> None:
    raise error
