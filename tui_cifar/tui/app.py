"""The cifar-tui Textual app: configure, watch training live, list runs, evaluate, predict.

One mode per screen (c, t, r, e, p switch between them), so each keeps its own
state and dialogs while you look elsewhere. TensorFlow is only imported by the
predict screen (and the parameter count on the configure screen), in thread
workers.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal

from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen

from ..cli.console import native_stderr_to_file
from ..paths import stderr_log_path
from ..runs import reader, store, tbreader
from . import remembered
from .commands import CifarCommands
from .messages import (
    ClassifyFolder,
    CompareRuns,
    GotoScreen,
    OpenRun,
    ResumeRun,
    RunStateChanged,
    ScreenEntered,
    ShowEnvironment,
    ShowRun,
    StartPreset,
    StartRun,
    StopRun,
)
from .modes import MODE_BY_NAME, MODES
from .screens.base import NARROW_BELOW

HERE = Path(__file__).parent
# The global stylesheet, the dialogs', then one per mode's screen (in this order, as when they were one file).
STYLESHEETS = [HERE / "app.tcss", HERE / "screens" / "dialogs.tcss",
               *(HERE / "screens" / f"{mode.module}.tcss" for mode in MODES)]


class CifarApp(App):
    """Train, watch, evaluate and use a CIFAR-10 classifier."""

    TITLE = "cifar-tui"
    SUB_TITLE = "CIFAR-10 transfer learning"
    CSS_PATH = STYLESHEETS  # type: ignore[assignment]  # absolute: subclasses may live elsewhere
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_BELOW, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    COMMANDS = App.COMMANDS | {CifarCommands}
    COMMAND_PALETTE_BINDING = "ctrl+p"

    BINDINGS = [*(Binding(mode.key, f"goto({mode.name!r})", mode.label, show=mode.footer) for mode in MODES),
                Binding("q", "quit", "Quit")]

    def __init__(
        self,
        runs_dir: Path | str = "runs",
        data_dir: str | None = None,
        *,
        start_screen: str | None = None,
        run_dir: Path | str | None = None,
        image_backend: str = "halfblock",
        poll_interval: float = 0.5,
        runs_refresh_interval: float = 2.0,
        notify_command: str | None = None,
        sweep_storage: str | None = None,
        sweep_study: str | None = None,
        sweep_refresh_interval: float = 3.0,
    ) -> None:
        super().__init__()
        self.notify_command = notify_command  # run for each alert of the watched run (notify.run_notify_command)
        self._created_at = time.perf_counter()
        self.runs_dir = Path(runs_dir).expanduser()
        self.data_dir = data_dir
        self.start_screen = start_screen
        self.current_run: Path | None = Path(run_dir) if run_dir else None
        self.image_backend = image_backend
        self.poll_interval = poll_interval
        self.runs_refresh_interval = runs_refresh_interval
        # The Sweep screen's study: an Optuna storage URL (default: the runs folder's sweep.db) and name (default: its newest)
        self.sweep_storage, self.sweep_study = sweep_storage, sweep_study
        self.sweep_refresh_interval = sweep_refresh_interval
        # caches shared by screens (filled by thread workers)
        self.classifiers: dict[Path, Any] = {}
        self._classifiers_lock = threading.Lock()
        self.test_images: tuple[Any, Any] | None = None
        self._mode_screens: dict[str, Screen] = {}
        self.watched_run_running = False  # kept by RunStateChanged from the training screen
        for mode in MODES:
            self.add_mode(mode.name, self._screen_factory(mode.name))

    def load_classifier(self, run_dir: Path):
        """The run's Classifier, loaded once per app and shared by the screens (call from a thread worker)."""
        with self._classifiers_lock:
            classifier = self.classifiers.get(run_dir)
            if classifier is None:
                from ..engine import devices, prediction

                note = devices.configure_for_app(self.runs_dir)
                if note:
                    self.call_from_thread(self.notify, note)
                classifier = prediction.load_classifier(run_dir)
                self.classifiers[run_dir] = classifier
            return classifier

    # ------------------------------------------------------------ screens
    def _screen_factory(self, mode: str):
        def make() -> Screen:
            screen = self._make_screen(mode)
            self._mode_screens[mode] = screen
            return screen

        return make

    def _make_screen(self, mode: str) -> Screen:
        """The mode's screen, its module imported now (TensorFlow-heavy screens load only when first shown)."""
        declared = MODE_BY_NAME[mode]
        module = importlib.import_module(f"{__package__}.screens.{declared.module}")
        return getattr(module, declared.screen)()

    def mode_screen(self, mode: str) -> Screen | None:
        """The base screen of a mode, once it was created."""
        return self._mode_screens.get(mode)

    def on_mount(self) -> None:
        start = self.start_screen
        if start is None:
            if self.current_run is not None:
                start = "train"
            else:
                # a TensorBoard logdir as the runs folder lists its runs too, rather than offering a new one
                start = "runs" if any(store.iter_run_dirs(self.runs_dir)) or any(
                    tbreader.iter_tensorboard_runs(self.runs_dir)) else "configure"
        if start in ("train", "evaluate") and self.current_run is not None:
            self.open_run(self.current_run, start)
        else:
            self.action_goto(start)

    def on_ready(self) -> None:
        self.log.info(f"first frame {time.perf_counter() - self._created_at:.2f}s after CifarApp()")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer leaves out the key of the screen you are on (room for the rest in 80 columns)."""
        if action == "goto" and parameters and parameters[0] == self.current_mode:
            return False
        return True

    # ------------------------------------------------------------ what screens ask for (messages.py)
    def action_goto(self, mode: str) -> None:
        if mode == self.current_mode:
            return
        self.switch_mode(mode)
        self._tell(mode, ScreenEntered(self.current_run))

    def open_run(self, run_dir: Path, mode: str = "train") -> None:
        """Show a run on the training (live), evaluate or predict screen."""
        self.current_run = Path(run_dir)
        self.switch_mode(mode)
        self._tell(mode, ShowRun(self.current_run))

    def _tell(self, mode: str, message: Message) -> None:
        """Post a message to a mode's base screen (created by switch_mode if need be)."""
        screen = self.mode_screen(mode)
        if screen is not None:
            screen.post_message(message)

    def on_goto_screen(self, message: GotoScreen) -> None:
        self.action_goto(message.mode)

    def on_open_run(self, message: OpenRun) -> None:
        self.open_run(message.run_dir, message.mode)

    def on_start_run(self, message: StartRun) -> None:
        self.start_run(message.config)

    def on_resume_run(self, message: ResumeRun) -> None:
        self.resume_run(message.run_dir)

    def on_run_state_changed(self, message: RunStateChanged) -> None:
        self.watched_run_running = message.run_dir is not None and message.state == "running"

    def on_start_preset(self, message: StartPreset) -> None:
        configure = self.mode_screen("configure")
        if configure is not None and configure.is_mounted:
            self._tell("configure", StartPreset(message.preset))  # the form's folders and backbone
            return
        from .screens.configure_screen import start_preset

        current = remembered.load_last_config() or {}
        current["runs_dir"] = str(self.runs_dir)
        if self.data_dir:
            current["data_dir"] = self.data_dir
        start_preset(self, current, message.preset, str(self.runs_dir))

    def on_stop_run(self, _message: StopRun) -> None:
        self._tell("train", StopRun())

    def on_compare_runs(self, _message: CompareRuns) -> None:
        self._tell("runs", CompareRuns())

    def on_classify_folder(self, _message: ClassifyFolder) -> None:
        self.action_goto("predict")
        self._tell("predict", ClassifyFolder())

    def on_show_environment(self, _message: ShowEnvironment) -> None:
        from .screens.environment_screen import EnvironmentScreen

        self.push_screen(EnvironmentScreen(self.data_dir))

    def start_run(self, config) -> Path | None:
        """Start a detached training process; open its live view. Returns the run folder, or None.

        Without CIFAR-10 on this machine a dialog asks for its folder first (see ask_data_folder): None then.
        """
        from ..engine.data import find_cifar10

        if find_cifar10(config.data_dir) is None:
            self.ask_data_folder(config)
            return None
        return self._start_detached(config)

    def _start_detached(self, config) -> Path | None:
        from ..engine import launcher

        try:
            run_dir = launcher.start_detached(config)
        except Exception as exc:  # the launcher's message is what the user needs
            self.notify(f"Could not start the run: {exc}", title="Start failed", severity="error", timeout=10)
            return None
        run_dir = Path(run_dir)
        self.runs_dir = Path(config.runs_dir).expanduser()
        self.notify(f"Started {run_dir.name}", title="Training started")
        self.open_run(run_dir, "train")
        return run_dir

    def ask_data_folder(self, config) -> None:
        """The dataset is missing: ask for its folder (remembered, and the form's Data folder), then start the run."""
        import dataclasses

        from ..engine.data import default_data_dir, remember_data_dir
        from .screens.dialogs import DataFolderScreen

        given = config.data_dir or default_data_dir()[0]
        looked_in = f"{given} nor in Keras' cache" if given else "Keras' cache (~/.keras/datasets)"

        def answered(folder: str | None) -> None:
            if folder is None:
                return
            if folder == DataFolderScreen.DOWNLOAD:
                self._start_detached(config)
                return
            try:
                folder = str(remember_data_dir(folder))
            except OSError as exc:  # not remembered: this run still gets the folder
                self.notify(f"cannot remember the data folder: {exc.strerror or exc}", severity="warning")
            self.data_dir = folder
            from .screens.configure_screen import ConfigureScreen

            configure = self.mode_screen("configure")
            if isinstance(configure, ConfigureScreen) and configure.is_mounted:
                configure.set_values({"data_dir": folder})
            self._start_detached(dataclasses.replace(config, data_dir=folder))

        self.push_screen(DataFolderScreen(looked_in, str(given or "")), answered)

    def resume_run(self, run_dir: Path) -> None:
        """Continue a stopped or killed run in a detached process (the CLI's `train --resume --detach`)."""
        from ..config import config_from_run
        from ..engine import launcher

        run_dir = Path(run_dir)
        try:
            data, problem = store.read_json(run_dir / store.CONFIG_FILE)
            if data is None:
                raise store.RunStoreError(str(problem))
            launcher.start_detached(config_from_run(data, run_dir), resume=run_dir)
        except Exception as exc:  # the launcher's or the config's message is what the user needs
            self.notify(f"Could not resume {run_dir.name}: {exc}", title="Not resumed", severity="error", timeout=10)
            return
        self.notify(f"Resuming {run_dir.name} from its last completed epoch", title="Training resumed")
        self.open_run(run_dir, "train")

    # ------------------------------------------------------------ helpers
    def runs_with_report(self) -> list[Path]:
        """Run folders with a test report, newest first (what the evaluate screen can show)."""
        return reader.runs_with_report(self.runs_dir)

    def latest_run(self, want: Literal["any", "running", "finished"] = "any") -> Path | None:
        """The newest run folder of the runs folder: 'running', 'finished' (with a test report) or 'any'."""
        return reader.latest_run(self.runs_dir, want)


def _detect_image_backend() -> str:
    """Use textual-image (sixel / kitty graphics / half-cells) in a real terminal, our half-blocks otherwise.

    textual-image asks the terminal about its graphics support when imported,
    which must happen before Textual takes over stdin.
    """
    choice = os.environ.get("CIFAR_TUI_IMAGES", "auto").lower()
    if choice in ("halfblock", "off", "none") or not (sys.__stdout__ and sys.__stdout__.isatty()):
        return "halfblock"
    import logging

    # it logs a traceback when the terminal does not answer its query: that is the fallback working
    quiet = logging.getLogger("textual_image")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    try:
        import textual_image.widget  # noqa: F401  (queries the terminal now)
    except Exception:
        return "halfblock"
    return "textual-image"


def run_app(
    runs_dir: Path | str = "runs",
    data_dir: str | None = None,
    *,
    screen: str | None = None,
    run_dir: Path | str | None = None,
    notify: str | None = None,
    sweep_storage: str | None = None,
    sweep_study: str | None = None,
) -> int:
    """Entry point for the CLI: open the app (on `screen`, or on `run_dir`'s live view; `notify`: the
    shell command run for each alert, as `watch --notify` gives it)."""
    if screen is not None and screen not in MODE_BY_NAME:
        raise ValueError(f"unknown screen {screen!r}; choose one of: {', '.join(MODE_BY_NAME)}")
    image_backend = _detect_image_backend()
    with native_stderr_to_file(stderr_log_path()):
        # created inside: Textual keeps the stderr it finds when the App is made
        app = CifarApp(runs_dir, data_dir, start_screen=screen, run_dir=run_dir, image_backend=image_backend,
                       notify_command=notify, sweep_storage=sweep_storage, sweep_study=sweep_study)
        app.run()
    return app.return_code or 0
