"""The app's modes, declared once: each one's key, footer label, palette entry, screen and stylesheet.

The app's bindings, its screen factory and stylesheet list, run_app's ``screen`` choices and the command palette
are all read from MODES (kept apart from app.py so the palette can read it without an import loop).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    name: str  # GotoScreen(name), run_app(screen=name)
    key: str
    label: str  # the footer's
    title: str  # the palette's
    help: str  # the palette's, the key added
    module: str  # under tui/screens/, beside its .tcss; imported when the mode is first shown
    screen: str  # the screen class in it
    footer: bool = True  # the footer keeps its 80-column set; the palette lists every mode

    @property
    def palette_help(self) -> str:
        return f"{self.help} ({self.key})"


MODES: tuple[Mode, ...] = (
    Mode("configure", "c", "Configure", "Configure a training run", "the configure screen", "configure_screen",
         "ConfigureScreen"),
    Mode("train", "t", "Train", "Watch training", "the live training screen", "training_screen", "TrainingScreen"),
    Mode("runs", "r", "Runs", "Runs", "all runs in the runs folder", "runs_screen", "RunsScreen"),
    Mode("evaluate", "e", "Evaluate", "Evaluate", "confusion matrix, per-class scores, ROC", "evaluate_screen",
         "EvaluateScreen"),
    Mode("predict", "p", "Predict", "Predict", "classify your own images", "predict_screen", "PredictScreen"),
    Mode("sweep", "w", "Sweep", "Sweep", "an Optuna study of runs, followed live: trials, curves, what mattered",
         "sweep_screen", "SweepScreen", footer=False),
)
MODE_BY_NAME = {mode.name: mode for mode in MODES}
