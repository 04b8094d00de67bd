"""SVG snapshots of every screen at 80x24 and 120x40, with scripts/screenshots.py's scenarios.

The fixture runs folder (tests/fixtures/runs, finished runs: no clock in what they show) is opened by
its path relative to the repository, and what depends on the machine is fixed: doctor()'s facts,
the parameter count of the configure form (a TensorFlow model otherwise), the CIFAR-10 folder
(none: the evaluate screen says so, in the same words everywhere) and the folder the predict
screen's picture tree starts in. After a deliberate change of a
screen, regenerate the baselines and review the SVGs' diff:

    .venv/bin/python -m pytest tests/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual.widgets import Input

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from screenshots import SCENARIOS, scenario_app, settle, wait

pytest.importorskip("pytest_textual_snapshot")

# One scenario per screen (the runs table, its comparison, the form, the live view, the test report,
# predict, the palette and the About panel); scripts/screenshots.py shoots the rest of its list too.
# (Not the image picker: it lists files with their sizes and dates, which differ on every checkout.)
SCREENS = ["runs", "runs-compare", "configure-help", "training", "evaluate", "predict", "data-folder",
           "command-palette", "environment"]
SIZES = [(80, 24), (120, 40)]
RUNS = Path("tests/fixtures/runs")
NO_DATA = "no-cifar-here"  # a data folder that does not exist, named the same on every machine
# The predict screen's picture tree starts in the working folder and shows its absolute path: an empty
# folder of the same name everywhere stands in for it.
PHOTOS = Path("/tmp/cifar-tui-snapshot-photos")

FACTS = {
    "versions": {"cifar-tui": "0.1.0", "python": "3.11.7", "tensorflow": "2.20.0", "keras": "3.13.0"},
    "warnings": [],
    "tensorflow": {"cuda_build": False, "cuda_version": None, "cudnn_version": None, "devices": ["CPU:0"]},
    "nvidia_gpus": [],
    "locations": {"data": NO_DATA, "weights": "~/.keras/models", "feature_cache": "~/.cache/cifar-tui/features"},
    "feature_cache": {"files": 0, "bytes": 0},
}


@pytest.fixture
def fixed_machine(monkeypatch):
    from tui_cifar.engine import backbones, data, doctor

    def no_test_images(data_dir=None):
        raise data.DatasetNotFound("CIFAR-10 was not found (the snapshot tests show no pictures)")

    monkeypatch.chdir(ROOT)
    PHOTOS.mkdir(exist_ok=True)
    monkeypatch.setattr(Path, "cwd", classmethod(lambda cls: cls(PHOTOS)))
    monkeypatch.setattr(data, "load_test_images", no_test_images)
    monkeypatch.setattr(doctor, "doctor", lambda cache_dir=None, data_dir=None: FACTS)
    monkeypatch.setattr(backbones, "describe_fine_tune",
                        lambda name, size, blocks: f"{blocks} of 17 blocks, 1.23 M of 2.26 M backbone parameters trainable")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", SCREENS)
def test_screen(snap_compare, fixed_machine, name, size):
    async def run_before(pilot) -> None:
        pilot.app.animation_level = "none"  # a scroll to the focused field lands at once, not mid-way
        assert await SCENARIOS[name](pilot.app, pilot), f"the fixture runs have nothing for {name}"
        await settle(pilot)
        for field in pilot.app.screen.query(Input):  # a blinking cursor is on or off by the clock
            field.cursor_blink = False
        await pilot.wait_for_scheduled_animations()
        await settle(pilot, 0.2)

    assert snap_compare(scenario_app(RUNS, NO_DATA), terminal_size=size, run_before=run_before)


# The Train screen on runs other tools wrote: a Keras script's RunLogger run (docs/runlogger_example.py, 4 epochs,
# recorded into tests/fixtures/keras-runs) and a PyTorch SummaryWriter logdir (recorded on an H200,
# tests/fixtures/tb/torchrun); the cifar-tui run's Train screen is the "training" scenario above.
OTHER_RUNS = {"runlogger": Path("tests/fixtures/keras-runs/20261204-192012-small_cnn"),
              "tensorboard": Path("tests/fixtures/tb/torchrun")}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("kind", list(OTHER_RUNS))
def test_train_screen_of_another_tool(snap_compare, fixed_machine, monkeypatch, kind, size):
    from tui_cifar.runs import tbreader
    from tui_cifar.runs.reader import read_progress
    from tui_cifar.tui.app import CifarApp

    monkeypatch.setattr(tbreader, "LIVE_SECONDS", 0.0)  # a fresh clone's event file is new, yet its run has ended

    run = OTHER_RUNS[kind]

    async def run_before(pilot) -> None:
        pilot.app.animation_level = "none"
        # every record read and the run seen ended (a loaded machine takes longer than a fixed pause)
        records = read_progress(run)[0].records_seen
        assert await wait(pilot, lambda: pilot.app.screen.state == "finished"
                          and pilot.app.screen.progress.records_seen == records, timeout=60)
        await settle(pilot, 0.5)
        await pilot.wait_for_scheduled_animations()

    app = CifarApp(run.parent, NO_DATA, run_dir=run, poll_interval=0.25)
    assert snap_compare(app, terminal_size=size, run_before=run_before)
