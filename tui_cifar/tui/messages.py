"""How the screens, the command palette and the app talk: dataclass messages.

Screens and the palette never call each other. A request (go to a screen,
open a run, start one, stop the watched run...) is posted as a message and
bubbles up to :class:`~tui_cifar.tui.app.CifarApp`, which handles them all in
one place. Where a screen owns the work (the stop dialog, the folder picker,
the preset form values), the app forwards the request to that screen; those
messages do not bubble, so a forwarded one cannot come back to the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from ..config import TrainConfig

# ---------------------------------------------------------------- requests to the app


@dataclass
class GotoScreen(Message):
    """Switch to a mode's screen ("configure", "train", "runs", "evaluate", "predict")."""

    mode: str


@dataclass
class OpenRun(Message):
    """Show a run folder on the training (live), evaluate or predict screen."""

    run_dir: Path
    mode: str = "train"


@dataclass
class StartRun(Message):
    """Start a detached training process with this config and watch it."""

    config: TrainConfig


@dataclass
class ResumeRun(Message):
    """Continue a stopped or killed run in a detached process (``cifar-tui train --resume``) and watch it."""

    run_dir: Path


@dataclass
class RunStateChanged(Message):
    """The training screen's watched run changed state (the palette offers Stop while it runs)."""

    run_dir: Path | None
    state: str


@dataclass
class ShowEnvironment(Message):
    """Open the About / environment panel (the facts of `cifar-tui doctor`)."""


# ---------------------------------------------------------------- requests the app forwards to a screen


@dataclass
class StartPreset(Message, bubble=False):
    """Start a run with a preset, keeping the machine settings (folders, backbone) of the form."""

    preset: str


@dataclass
class StopRun(Message, bubble=False):
    """Stop the watched run (the training screen asks first)."""


@dataclass
class CompareRuns(Message, bubble=False):
    """Overlay the validation curves of the runs marked on the runs screen."""


@dataclass
class ClassifyFolder(Message, bubble=False):
    """Pick a folder of images and write the predictions to a CSV file (predict screen)."""


# ---------------------------------------------------------------- from the app to a screen


@dataclass
class ScreenEntered(Message, bubble=False):
    """The user switched to this screen with its key; ``current_run`` is the app's current run."""

    current_run: Path | None


@dataclass
class ShowRun(Message, bubble=False):
    """Show this run folder (replacing the one shown before)."""

    run_dir: Path
