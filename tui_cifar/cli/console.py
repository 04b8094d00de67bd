"""Headless progress: a Rich display on a terminal, plain lines in logs and pipes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import VAL_FRACTION
from ..formatting import ASCII_DASH, fmt, format_duration
from ..runs.diagnostics import overfitting
from ..runs.reader import RunProgress
from ..runs.records import Malformed, decode_record


def _fmt(value: Any, spec: str = ".4f") -> str:
    return fmt(value, spec, ASCII_DASH)


def epoch_line(r: dict[str, Any]) -> str:
    return (
        f"stage {r.get('stage', '?')} epoch {r.get('epoch', '?')}/{r.get('epochs', '?')}: loss {_fmt(r.get('loss'))} "
        f"acc {_fmt(r.get('accuracy'))} val_loss {_fmt(r.get('val_loss'))} val_acc {_fmt(r.get('val_accuracy'))} "
        f"lr {_fmt(r.get('lr'), '.2e')} {_fmt(r.get('images_per_sec'), '.0f')} img/s ({r.get('epoch_time', 0):.1f}s)"
    )


def speed_text(progress: RunProgress) -> str:
    """The running phase's images/s and ETA, from that phase's own records: the app's figures (RunProgress.speed)."""
    what, ips, eta = progress.speed()
    if not what:
        return ""
    bits = [f"{ips:,.0f} img/s" if ips else f"{ASCII_DASH} img/s",
            f"ETA {format_duration(eta)}" if eta is not None else f"ETA {ASCII_DASH}"]
    return " ".join(bits)


def _decoded(r: dict[str, Any]) -> dict[str, Any] | None:
    """The record as records.decode_record checked it, or None: a reporter never raises out of a writer."""
    try:
        return decode_record(r)
    except Malformed:
        return None


def plain_reporter(stream=None) -> Callable[[dict[str, Any]], None]:
    """One line per meaningful record, flushed: what a log file or `tail -f` wants.

    An overfitting signal (diagnostics.overfitting) gets a line when it appears.
    """
    out = stream or sys.stdout
    last_progress: dict[str, int] = {}  # percent last printed, per progress name
    config: dict[str, Any] = {}
    epochs: list[dict[str, Any]] = []
    flagged = [False]
    progress = RunProgress()

    def report(record: dict[str, Any]) -> None:
        r = _decoded(record)
        if r is None:
            return
        kind = r.get("type")
        progress.feed([r])
        line = None
        if kind in ("run_start", "run_resume"):
            config.update(r.get("config") or {})
            line = f"{'resuming' if kind == 'run_resume' else 'starting'} on {r.get('device')}"
        elif kind == "data":
            split = f" ({VAL_FRACTION:.0%}: --val-size sets it)" if config and config.get("val_size") is None else ""
            line = (f"data: {r.get('train')} train / {r.get('val')} val{split} / {r.get('test')} test images from "
                    f"{r.get('source')}")
        elif kind == "phase":
            line = r.get("message")
        elif kind == "progress":
            done, total = r.get("done", 0), r.get("total", 0)
            name, pct = _progress_name(r), int(100 * done / max(1, total))
            if pct // 10 != last_progress.get(name, -1) // 10 or done == total:
                last_progress[name] = pct
                line = f"  {name} {done}/{total} ({pct}%)"
                if done < total and (speed := speed_text(progress)):
                    line += f" {speed}"
        elif kind == "features_done":
            line = f"  features ready in {_fmt(r.get('seconds'), '.0f')}s ({_fmt(r.get('images_per_sec'), '.0f')} img/s)"
        elif kind == "epoch":
            line = epoch_line(r)
            epochs.append(r)
            signal = overfitting(epochs, config)
            if signal is not None and not flagged[0]:
                line += f"\n  overfitting: {signal.why} {signal.advice}"
            flagged[0] = signal is not None
        elif kind == "run_end":
            line = f"run {r.get('state')}: {r.get('message', '')} (wall time {_fmt(r.get('wall_time'), '.0f')}s)"
        if line:
            print(line, file=out, flush=True)

    return report


def _progress_name(r: dict[str, Any]) -> str:
    """What a progress record counts: feature extraction's images, or the test report's forward passes."""
    return "test set" if r.get("phase") == "evaluate" else "features"


class RichReporter:
    """Live progress bars for feature extraction and each training stage, with epoch lines above."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=False)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            # images/s and ETA of the phase, from its own records: the figures the app shows (RunProgress.speed)
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("{task.fields[speed]}"),
            console=self.console, transient=False,
        )
        self.plain = plain_reporter(stream=_ConsoleStream(self.console))
        self.tasks: dict[str, Any] = {}  # rich TaskIDs
        self.run = RunProgress()
        self.progress.start()

    def _task(self, key: str, description: str, total: int):
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(description, total=total, info="", speed="")
        return self.tasks[key]

    def __call__(self, record: dict[str, Any]) -> None:
        r = _decoded(record)
        if r is None:
            return
        kind, stage = r.get("type"), r.get("stage", 1)
        self.run.feed([r])
        if kind == "progress":
            name = _progress_name(r)
            task = self._task(name, name, r.get("total", 0))
            self.progress.update(task, completed=r.get("done", 0), speed=speed_text(self.run))
            return
        if kind == "stage_start":
            self._task(f"stage{stage}", f"stage {stage}", (r.get("epochs") or 0) * (r.get("steps_per_epoch") or 0))
        elif kind == "batch":
            steps = r.get("steps") or 0
            task = self._task(f"stage{stage}", f"stage {stage}", steps)
            done = (r.get("epoch", 1) - 1) * steps + r.get("batch", 0)
            self.progress.update(task, completed=done, info=f"epoch {r.get('epoch')} loss {_fmt(r.get('loss'), '.3f')}",
                                 speed=speed_text(self.run))
        elif kind == "stage_end":
            task = self.tasks.get(f"stage{stage}")
            if task is not None:
                self.progress.update(task, completed=self.progress.tasks[task].total)
        self.plain(r)
        if kind == "run_end":
            self.progress.stop()


class _ConsoleStream:
    """Lets plain_reporter print above the live progress bars."""

    def __init__(self, console) -> None:
        self.console = console

    def write(self, text: str) -> None:
        if text.strip():
            self.console.print(text.rstrip("\n"), highlight=False, markup=False)  # messages may name files

    def flush(self) -> None:
        pass


def make_reporter() -> Callable[[dict[str, Any]], None]:
    return RichReporter() if sys.stdout.isatty() else plain_reporter()


@contextmanager
def native_stderr_to_file(path: Path) -> Iterator[None]:
    """Keep C libraries' stderr (TensorFlow's absl and oneDNN start-up lines) off a terminal being drawn on.

    The app (Textual) and `train`'s progress bars draw on the terminal; TensorFlow writes its
    start-up lines straight to descriptor 2 whatever TF_CPP_MIN_LOG_LEVEL says, which would
    scribble over them. So Python's stderr gets a duplicate of the terminal and descriptor 2
    goes to a log file (the app's, or the run's train.log). Nothing changes when stderr is not a terminal.
    """
    restore = divert_native_stderr(path)
    try:
        yield
    finally:
        if restore is not None:
            restore()


def divert_native_stderr(path: Path) -> Callable[[], None] | None:
    """native_stderr_to_file's diversion, returning what undoes it (None: nothing was diverted).

    A short command diverts for the rest of its process, TensorFlow's lines at exit included.
    """
    stream = sys.__stderr__
    if stream is None or not stream.isatty():
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        return None  # no log file: leave stderr alone
    stream.flush()
    tty_fd = os.dup(2)
    tty = os.fdopen(tty_fd, "w", buffering=1, encoding=stream.encoding, errors=stream.errors)
    saved = (sys.__stderr__, sys.stderr)
    sys.__stderr__ = sys.stderr = tty  # type: ignore[misc]  # C libraries' stderr moves; Python's stays
    os.dup2(log_fd, 2)
    os.close(log_fd)

    def restore() -> None:
        tty.flush()
        os.dup2(tty_fd, 2)
        sys.__stderr__, sys.stderr = saved  # type: ignore[misc]
        tty.close()

    return restore
