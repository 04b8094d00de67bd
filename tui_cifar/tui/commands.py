"""Command palette (ctrl+p): screens, presets to start, runs to open."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from ..config import PRESETS, preset_summary
from ..runs import reader, store
from .messages import (
    ClassifyFolder,
    CompareRuns,
    GotoScreen,
    OpenRun,
    ResumeRun,
    ShowEnvironment,
    StartPreset,
    StopRun,
)
from .modes import MODES

if TYPE_CHECKING:
    from .app import CifarApp


class CifarCommands(Provider):
    """The app's own commands, shown beside Textual's (theme, keys, quit...)."""

    async def startup(self) -> None:
        app: CifarApp = self.app  # type: ignore[assignment]
        try:
            self._runs = await asyncio.to_thread(reader.list_runs, app.runs_dir)
        except OSError:
            self._runs = []

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app: CifarApp = self.app  # type: ignore[assignment]
        post = app.post_message
        commands: list[tuple[str, str, Callable[[], object]]] = [
            (mode.title, mode.palette_help, partial(post, GotoScreen(mode.name))) for mode in MODES]
        commands.append(("About / environment", "versions, TensorFlow's devices, GPUs, data and cache folders",
                         partial(post, ShowEnvironment())))
        for preset in PRESETS:
            commands.append((f"Start {preset} run", preset_summary(preset), partial(post, StartPreset(preset))))
        if app.watched_run_running:
            commands.append(("Stop the watched run", "graceful stop: keeps the best model", partial(post, StopRun())))
        if app.mode_screen("runs") is not None:
            commands.append(("Compare marked runs", "overlay validation accuracy (mark with space)",
                             partial(post, CompareRuns())))
        predict_help = "pick a folder of images and write predictions to a CSV file"
        commands.append(("Classify folder to CSV", predict_help, partial(post, ClassifyFolder())))
        for summary in reversed(getattr(self, "_runs", [])):
            mode = "evaluate" if store.has_report(summary.path) else "train"
            what = (f"{summary.state}, Keras model {summary.model or '?'}" if summary.kind == store.KERAS_KIND
                    else f"{summary.state}, {summary.backbone or '?'} {summary.image_size or ''}px")
            commands.append((f"Open run {summary.name}", what, partial(post, OpenRun(summary.path, mode))))
            if summary.state in store.RESUMABLE_STATES and summary.kind != store.KERAS_KIND:
                commands.append((f"Resume run {summary.name}", f"{what}: continue from its last completed epoch",
                                 partial(post, ResumeRun(summary.path))))
        return commands

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)

