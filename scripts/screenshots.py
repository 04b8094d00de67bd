#!/usr/bin/env python
"""Write SVG screenshots of every cifar-tui screen, driven headless with Textual's Pilot.

    .venv/bin/python scripts/screenshots.py --runs-dir runs
    .venv/bin/python scripts/screenshots.py --runs-dir tests/fixtures/runs --data-dir ../shared/datasets
    .venv/bin/python scripts/screenshots.py --sweep sqlite:///bench/sweep_full.db   # the Sweep screen only

It picks the newest running run (else the newest run) for the training screen,
the newest finished run for the evaluate screen, the two newest runs with
epochs for the comparison, the newest run that overfits for the overfitting
signal, the newest run recorded by RunLogger from a Keras script, the
environment panel, and classifies --image on the predict screen when a run has
a model (that loads TensorFlow). The end-of-run notification is shot on a copy of the
newest finished run, in a temporary folder, replayed up to its last record.
Nothing is written into the runs folder. Screens that have nothing to show are
still captured, as users see them.

The Train screen's own set (``--only training``: just these): the watched run at
80x24, with smoothing and log scale, the newest run with telemetry records, and
a TensorBoard run (``--tensorboard-dir``, default the PyTorch logdir in
tests/fixtures/tb).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def settle(pilot, seconds: float = 0.6) -> None:
    await pilot.pause(seconds)


async def wait(pilot, condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.1)
        try:
            if condition():
                return True
        except Exception:
            pass
    return False


# --- the scenarios: how each screen is reached, shared with tests/test_snapshots.py --------------------
# Each is (name, the CifarApp's start, what Pilot does before the shot); `steps` returns False when the
# runs folder has nothing for that screen (the screenshot is then skipped; the snapshot test fails).


async def _runs(app, pilot) -> bool:
    await wait(pilot, lambda: app.screen.loaded)
    return True


async def _runs_compare(app, pilot) -> bool:
    runs = app.screen
    await wait(pilot, lambda: runs.loaded)
    with_epochs = [k for k in runs.order if runs.summaries[k].best_val_accuracy is not None][:2]
    if len(with_epochs) != 2:
        return False
    runs.marked = set(with_epochs)
    runs.action_compare()
    await wait(pilot, lambda: len(getattr(app.screen, "curves", {})) == 2)
    return True


async def _configure(app, pilot) -> bool:
    await pilot.press("c")
    return True


async def _configure_help(app, pilot) -> bool:
    await pilot.press("c")
    await settle(pilot, 0.3)
    app.screen.query_one("#advanced").collapsed = False
    await settle(pilot, 0.3)
    field = app.screen.query_one("#f-dropout")
    field.focus()  # the help panel follows the focus
    screen = app.screen
    # the cost estimate and the parameter count arrive from workers, each after a short debounce
    await wait(pilot, lambda: "Cost on this machine" in str(screen.query_one("#run-estimate").content)
               and "counting" not in str(screen.query_one("#blocks-desc").content))
    screen.query_one("#config-form").scroll_to_widget(field, animate=False)  # where focus's animation ends
    await settle(pilot, 0.7)
    return True


async def _training(app, pilot) -> bool:
    watch = app.latest_run("running") or app.latest_run("any")
    if watch is None:
        return False
    app.open_run(watch, "train")
    await settle(pilot, 0.7)
    return True


async def _training_overfitting(app, pilot) -> bool:
    await wait(pilot, lambda: app.screen.loaded)
    overfit = newest_overfitting(app.screen)
    if overfit is None:
        return False
    app.open_run(overfit, "train")
    await settle(pilot, 0.7)
    return True


async def _training_keras_run(app, pilot) -> bool:
    runs = app.screen
    await wait(pilot, lambda: runs.loaded)
    keras_run = next((Path(k) for k in runs.order if runs.summaries[k].kind == "keras"), None)
    if keras_run is None:
        return False
    app.open_run(keras_run, "train")
    await settle(pilot, 0.7)
    return True


async def _evaluate(app, pilot, tab: str = "1", percent: bool = False) -> bool:
    finished = app.latest_run("finished")
    if finished is None:
        return False
    app.open_run(finished, "evaluate")
    screen = app.screen
    await wait(pilot, lambda: screen.predictions is not None or screen.predictions_problem is not None)
    cm = screen._matrix()
    if cm is not None and screen.predictions is not None and tab == "1":
        # the biggest confusion, and its images (needs the CIFAR-10 test set)
        n = len(cm)
        i, j = max(((i, j) for i in range(n) for j in range(n) if i != j), key=lambda c: cm[c[0]][c[1]])
        matrix = screen.query_one("#confusion")
        matrix.focus()
        matrix.move_cursor(row=i, column=j)
        screen.show_cell_images(i, j)
        await wait(pilot, lambda: len(screen.query(".thumb")) > 0
                   or "cannot" in str(screen.query_one("#mistakes-title").content), timeout=60)
    if percent:
        await pilot.press("n")
    await pilot.press(tab)
    return True


async def _predict(app, pilot, image: str | None = None) -> bool:
    await pilot.press("p")
    predict = app.screen
    await settle(pilot, 0.5)
    if image:
        predict.classify(Path(image))
        picture = predict.query_one("#picture")
        await wait(pilot, lambda: picture.result is not None or picture.error is not None
                   or "no model" in str(predict.query_one("#topk").content), timeout=120)
        if picture.result is not None:  # and Grad-CAM's heatmap beside the model input
            await wait(pilot, lambda: picture.explanation is not None, timeout=60)
    return True


async def _file_picker(app, pilot) -> bool:
    """The predict screen's image picker (o), in the last photo folder."""
    await pilot.press("p")
    await settle(pilot, 0.5)
    await pilot.press("o")
    await settle(pilot, 0.5)
    return True


async def _data_folder(app, pilot) -> bool:
    """The dialog a run started without CIFAR-10 on the machine opens."""
    from tui_cifar.tui.screens.dialogs import DataFolderScreen

    await pilot.press("c")
    await settle(pilot, 0.3)
    app.push_screen(DataFolderScreen("Keras' cache (~/.keras/datasets)", "~/datasets"))
    return True


async def _command_palette(app, pilot) -> bool:
    await wait(pilot, lambda: app.screen.loaded)
    await pilot.press("ctrl+p")
    return True


async def _environment(app, pilot) -> bool:
    """About / environment (doctor's facts; TensorFlow is asked in a worker)."""
    from tui_cifar.tui.messages import ShowEnvironment

    app.post_message(ShowEnvironment())
    await wait(pilot, lambda: getattr(app.screen, "facts", None) is not None, timeout=120)
    return True


SCENARIOS = {
    "runs": _runs,
    "runs-compare": _runs_compare,
    "configure": _configure,
    "configure-help": _configure_help,
    "training": _training,
    "training-overfitting": _training_overfitting,
    "evaluate": _evaluate,
    "evaluate-percent": lambda app, pilot: _evaluate(app, pilot, percent=True),
    "evaluate-per-class": lambda app, pilot: _evaluate(app, pilot, "2"),
    "evaluate-roc": lambda app, pilot: _evaluate(app, pilot, "3"),
    "evaluate-confused": lambda app, pilot: _evaluate(app, pilot, "4"),
    "predict": _predict,
    "file-picker": _file_picker,
    "data-folder": _data_folder,
    "command-palette": _command_palette,
    "environment": _environment,
    "training-keras-run": _training_keras_run,
}


def scenario_app(runs_dir: Path, data_dir: str | None = None):
    """The app every scenario starts from: on the runs screen, polling fast."""
    from tui_cifar.tui.app import CifarApp

    return CifarApp(runs_dir, data_dir, start_screen="runs", poll_interval=0.25)


async def capture_training(args: argparse.Namespace, out: Path, width: int, height: int) -> list[Path]:
    """The Train screen: as watched, at 80x24, smoothed on a log scale, with telemetry, on a TensorBoard run."""
    from tui_cifar.runs import store, tbreader
    from tui_cifar.tui.app import CifarApp

    written: list[Path] = []

    def shot(app, name: str) -> None:
        path = Path(app.save_screenshot(f"{name}.svg", str(out)))
        written.append(path)
        print(f"  {path}")

    runs_dir = Path(args.runs_dir)
    dirs = sorted(store.iter_run_dirs(runs_dir), key=lambda d: d.name, reverse=True)
    live = [d for d in dirs if store.effective_state(store.read_status(d)) == "running"]
    watch = (live or dirs or [None])[0]
    with_telemetry = next((d for d in dirs if any(r.get("type") == "telemetry"
                                                  for r in store.read_metrics(d)[0])), None)
    if watch is not None:
        # "training" itself is a scenario (SCENARIOS) in a full capture
        shots = ((width, height), "training"), ((80, 24), "training-80x24")
        for size, name in shots if args.only == "training" else shots[1:] + (((width, height), ""),):
            app = CifarApp(runs_dir, args.data_dir, run_dir=watch, poll_interval=0.25)
            async with app.run_test(size=size) as pilot:
                app.theme = args.theme
                await settle(pilot, 1.5)
                if name:
                    shot(app, name)
                if size == (width, height):
                    for key in ("z", "z", "y"):  # smoothing 0.8 over the raw curve, log-scale y
                        await pilot.press(key)
                    await settle(pilot, 0.5)
                    shot(app, "training-smoothing-log")
    if with_telemetry is not None:
        app = CifarApp(runs_dir, args.data_dir, run_dir=with_telemetry, poll_interval=0.25)
        async with app.run_test(size=(80, 24)) as pilot:
            app.theme = args.theme
            await settle(pilot, 1.5)
            shot(app, "training-telemetry")
    tb_run = next(iter(tbreader.iter_tensorboard_runs(Path(args.tensorboard_dir))), None)
    if tb_run is not None:
        app = CifarApp(tb_run.parent, args.data_dir, run_dir=tb_run, poll_interval=0.25)
        async with app.run_test(size=(width, height)) as pilot:
            app.theme = args.theme
            await settle(pilot, 1.5)
            shot(app, "training-tensorboard")
    return written


async def capture(args: argparse.Namespace) -> list[Path]:
    from tui_cifar.tui.app import CifarApp

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.only == "training":
        return await capture_training(args, out, width, height)

    def shot(app, name: str) -> None:
        path = Path(app.save_screenshot(f"{name}.svg", str(out)))
        written.append(path)
        print(f"  {path}")

    runs_dir = Path(args.runs_dir)
    for name, steps in SCENARIOS.items():
        app = scenario_app(runs_dir, args.data_dir)
        async with app.run_test(size=(width, height)) as pilot:
            app.theme = args.theme
            done = await (_predict(app, pilot, args.image) if name == "predict" else steps(app, pilot))
            if done:
                await settle(pilot)
                shot(app, name)
            finished = app.latest_run("finished")

    # the Train screen's own set (training-80x24, smoothing and log scale, telemetry, TensorBoard)
    written += await capture_training(args, out, width, height)
    # small terminal and the light theme
    app = CifarApp(runs_dir, args.data_dir, start_screen="configure")
    async with app.run_test(size=(80, 24)) as pilot:
        app.theme = args.theme
        await settle(pilot, 0.5)
        app.screen.query_one("#f-fine_tune_blocks").focus()
        await settle(pilot, 0.5)
        shot(app, "configure-help-80x24")
    if finished is not None:
        with tempfile.TemporaryDirectory(prefix="cifar-tui-replay-") as tmp:
            replay, end = replay_until_end(finished, Path(tmp))
            app = CifarApp(replay.parent, args.data_dir, run_dir=replay, poll_interval=0.25)
            async with app.run_test(size=(width, height), notifications=True) as pilot:  # toasts shown
                app.theme = args.theme
                await settle(pilot, 1.0)
                with open(replay / "metrics.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps(end) + "\n")
                status = json.loads((finished / "status.json").read_text())
                (replay / "status.json").write_text(json.dumps(status))
                await wait(pilot, lambda: len(app._notifications) > 0)
                await settle(pilot, 0.5)
                shot(app, "training-ended")
    if finished is not None:
        app = CifarApp(runs_dir, args.data_dir, run_dir=finished, start_screen="evaluate")
        async with app.run_test(size=(width, height)) as pilot:
            app.theme = args.light_theme
            await settle(pilot, 1.0)
            shot(app, "evaluate-light")
    return written


# What capture_sizes shoots at 80x24 and 120x40 into screenshots/NAME-COLSxROWS.svg.
SIZED = ("runs", "runs-compare", "configure", "evaluate", "predict", "file-picker", "data-folder",
         "command-palette", "environment")


async def capture_sizes(args: argparse.Namespace, shot_into: Path) -> list[Path]:
    """Every screen of SIZED (args.sized: those named) at 80x24 and 120x40: Runs and its comparison, Configure
    (with the "Not the defaults" note), Evaluate (a cell's images), Predict (--image), the image picker, the
    data-folder dialog, the palette and the About panel."""
    from tui_cifar.config import TrainConfig
    from tui_cifar.tui import remembered

    written: list[Path] = []
    remembered.save_last_config({**TrainConfig().to_json(), "limit_train": 3000, "limit_test": 1000, "epochs_fine": 6})
    if args.photos:
        remembered.save_photo_folder(Path(args.photos).resolve())
    for width, height in ((80, 24), (120, 40)):
        for name in args.sized.split(",") if args.sized else SIZED:
            app = scenario_app(Path(args.runs_dir), args.data_dir)
            async with app.run_test(size=(width, height)) as pilot:
                app.theme = args.theme
                steps = SCENARIOS[name]
                done = await (_predict(app, pilot, args.image) if name == "predict" else steps(app, pilot))
                if done:
                    await settle(pilot)
                    path = Path(app.save_screenshot(f"{name}-{width}x{height}.svg", str(shot_into)))
                    written.append(path)
                    print(f"  {path}")
    return written


async def capture_sweep(args: argparse.Namespace) -> list[Path]:
    """The Sweep screen on the study at args.sweep (its newest study), at 120x40 and 80x24."""
    from tui_cifar.tui.app import CifarApp

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for size, name in (((120, 40), "sweep"), ((80, 24), "sweep-80x24")):
        app = CifarApp(args.runs_dir, args.data_dir, start_screen="sweep", sweep_storage=args.sweep)
        async with app.run_test(size=size) as pilot:
            app.theme = args.theme
            await wait(pilot, lambda app=app: app.screen.summary is not None)
            await settle(pilot, 1.0)
            path = Path(app.save_screenshot(f"{name}.svg", str(out)))
            written.append(path)
            print(f"  {path}")
    return written


def newest_overfitting(runs) -> Path | None:
    """The newest run whose last epochs show the overfitting signal."""
    from tui_cifar.runs import diagnostics, reader

    for key in runs.order:
        progress, _ = reader.read_progress(Path(key))
        if diagnostics.overfitting(progress.epochs, progress.config) is not None:
            return Path(key)
    return None


def replay_until_end(run_dir: Path, tmp: Path) -> tuple[Path, dict]:
    """A copy of run_dir in tmp that reads as running (this process), without its run_end record (returned)."""
    copy = tmp / run_dir.name
    shutil.copytree(run_dir, copy)
    records = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines() if line.strip()]
    end = next(r for r in reversed(records) if r.get("type") == "run_end")
    with open(copy / "metrics.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records if r is not end)
    status = json.loads((copy / "status.json").read_text())
    status.update(state="running", pid=os.getpid(), host=socket.gethostname())
    (copy / "status.json").write_text(json.dumps(status))
    return copy, end


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", default="runs", help="runs folder to show (default ./runs)")
    parser.add_argument("--data-dir", help="CIFAR-10 folder, for the misclassified test images")
    parser.add_argument("--image", help="an image to classify on the predict screen")
    parser.add_argument("--photos", help="a folder of photos in class subfolders, scored on the predict screen")
    parser.add_argument("--only-sizes", action="store_true",
                        help="only the 80x24 and 120x40 shots (NAME-80x24.svg, NAME-120x40.svg) of every screen")
    parser.add_argument("--sized", metavar="NAMES", help=f"comma-separated, for those shots (default: {','.join(SIZED)})")
    parser.add_argument("--out", default=str(ROOT / "screenshots"), help="output folder (default screenshots/)")
    parser.add_argument("--size", default="120x36", help="terminal size, COLSxROWS (default 120x36)")
    parser.add_argument("--theme", default="textual-dark")
    parser.add_argument("--light-theme", default="textual-light")
    parser.add_argument("--only", choices=["training"], help="capture only the Train screen's set")
    parser.add_argument("--tensorboard-dir", default=str(ROOT / "tests" / "fixtures" / "tb"),
                        help="a TensorBoard logdir for the TensorBoard run's shot (default: tests/fixtures/tb)")
    parser.add_argument("--sweep", metavar="URL", help="only the Sweep screen, on this Optuna storage's newest study "
                        "(e.g. sqlite:///bench/sweep_full.db), as sweep.svg (120x40) and sweep-80x24.svg")
    args = parser.parse_args(argv)
    if args.sweep:
        os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="cifar-tui-shots-")
        written = asyncio.run(capture_sweep(args))
        print(f"{len(written)} screenshots written")
        return 0
    if not Path(args.runs_dir).is_dir():
        parser.error(f"no runs folder at {args.runs_dir}")
    # never touch the user's remembered settings
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="cifar-tui-shots-")
    os.environ.setdefault("CIFAR_TUI_IMAGES", "halfblock")
    print(f"screenshots of {args.runs_dir} into {args.out}:")
    written = [] if args.only_sizes else asyncio.run(capture(args))
    written += asyncio.run(capture_sizes(args, Path(args.out)))
    print(f"{len(written)} screenshots written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
