"""`cifar-tui`: the Textual app with no arguments, headless commands otherwise.

Nothing heavy is imported at module level: `cifar-tui --help` must not pay for TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_FAILED = 1
EXIT_USAGE = 2
# A run stopped before its end (Ctrl-C, SIGTERM, the app's stop): the shell's "interrupted" code.
# Its best model so far is kept and `--resume` continues it.
EXIT_STOPPED = 130


def _add_train(sub) -> None:
    from .config import PRESETS

    p = sub.add_parser("train", help="train a model into a new run folder",
                       description="Two-stage transfer learning on CIFAR-10 into a run folder.")
    p.add_argument("--config", type=Path, help="JSON or TOML file of settings (command-line flags override it; default: none)")
    p.add_argument("--preset", choices=tuple(PRESETS), help="start from a preset (default: none, the settings' defaults)")
    _add_setting_flags(p)
    p.add_argument("--detach", action="store_true",
                   help="run in the background, detached from this terminal; prints the run folder (default: off)")
    p.add_argument("--resume", type=Path, metavar="RUN",
                   help="continue a killed or stopped run from its last completed epoch: a folder, or a name in the runs folder "
                        "(default: a new run)")
    p.add_argument("--in-run-dir", type=Path, help=argparse.SUPPRESS)  # used by --detach


def _add_setting_flags(p) -> None:
    """One flag per TrainConfig setting, from its declaration (config.SETTINGS); make_config checks the values."""
    from .config import SETTINGS

    for s in SETTINGS:
        about = f"{s.label}: {s.help}" if s.help else s.label
        if s.kind == "bool":  # on by default: the flag turns it off
            p.add_argument(s.flag, dest=s.name, action="store_false", default=None, help=f"turn off {about} (default: on)")
            continue
        p.add_argument(s.flag, dest=s.name, type={"int": int, "float": float}.get(s.kind),
                       choices=s.values if s.kind == "choice" else None,
                       help=f"{about} (default: {'none' if s.default is None else s.default})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifar-tui",
        description="Train, watch, evaluate and use a CIFAR-10 transfer-learning classifier. "
        "With no command, opens the terminal app.",
    )
    parser.add_argument("--runs-dir", dest="app_runs_dir", type=Path, metavar="DIR",
                        help=f"runs folder of the app and of every command; run names are looked up there (default: {_default_runs_dir()})")
    parser.add_argument("--data-dir", dest="app_data_dir", metavar="DIR",
                        help="CIFAR-10 folder of the app and of `train` (default: the usual places, see README)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    run_help = "run folder, or a run's name in the runs folder"
    p = sub.add_parser("evaluate", help="test-set report of a run")
    p.add_argument("run", type=Path, help=run_help)
    p.add_argument("--json", action="store_true", help="print the report as JSON, as report.json holds it (default: tables)")
    p.add_argument("--recompute", action="store_true", help="score the saved model again (default: show the saved report)")
    p = sub.add_parser("predict", help="classify images with a run's model")
    p.add_argument("run", type=Path, help=f"{run_help}, or a .keras file")
    p.add_argument("images", nargs="+", type=Path, help="image files or folders")
    p.add_argument("--top-k", type=int, default=3, help="classes shown per image (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the results as JSON (default: one line per image)")
    p.add_argument("--csv", type=Path, help="also write all probabilities to this CSV file (default: none)")
    p = sub.add_parser("runs", help="list runs")
    p.add_argument("--runs-dir", type=Path, help=f"the runs folder to list (default: {_default_runs_dir()})")
    p.add_argument("--json", action="store_true", help="print the runs as JSON (default: a table)")
    sub.add_parser("backbones", help="list the available backbones")
    p = sub.add_parser("watch", help="open the app on a run's live training view (attach to a running run)")
    p.add_argument("run", type=Path, help=run_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
                "runs": cmd_runs, "backbones": cmd_backbones, "watch": cmd_watch, None: cmd_app}
    from .config import ConfigError
    from .data import DatasetNotFound
    from .runstore import RunStoreError

    try:
        _apply_global_dirs(args)
        return handlers[args.command](args)
    except (ConfigError, RunStoreError, DatasetNotFound) as exc:
        print(f"cifar-tui: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED
    except KeyboardInterrupt:  # Ctrl-C outside training (which stops itself cleanly): no traceback
        print("cifar-tui: interrupted", file=sys.stderr)
        return EXIT_STOPPED


# The commands that `cifar-tui --runs-dir X COMMAND` and `--data-dir` mean something to; the others refuse them.
GLOBAL_DIR_COMMANDS = {"runs_dir": ("train", "runs", "evaluate", "predict", "watch"), "data_dir": ("train", "watch")}


def _apply_global_dirs(args) -> None:
    """Hand the folders given before the command to the command's own option (train --runs-dir, runs --runs-dir)."""
    from .config import ConfigError

    for dest, commands in GLOBAL_DIR_COMMANDS.items():
        value, option = getattr(args, f"app_{dest}"), "--" + dest.replace("_", "-")
        if value is None or args.command is None:
            continue
        if args.command not in commands:
            raise ConfigError(f"{option} does not apply to `{args.command}`")
        own = getattr(args, dest, None)
        if own is not None and Path(own) != Path(value):
            raise ConfigError(f"{option} is given twice, before and after `{args.command}`, with different folders")
        if hasattr(args, dest):
            setattr(args, dest, str(value))


def _default_runs_dir() -> str:
    from .config import SETTING_BY_NAME

    return SETTING_BY_NAME["runs_dir"].default


def _runs_dir(args) -> Path:
    """The runs folder a command lists or looks run names up in: its own --runs-dir, the one before it, or the default."""
    return Path(getattr(args, "runs_dir", None) or args.app_runs_dir or _default_runs_dir())


def _find_run(path: Path, runs_dir: Path) -> Path:
    """A run given as a path, or by its bare name in the runs folder (what `cifar-tui runs` lists)."""
    from .runstore import RunStoreError

    if path.exists():
        return path
    if len(path.parts) == 1 and (runs_dir / path).exists():
        return runs_dir / path
    where = f"here or in the runs folder {runs_dir}" if len(path.parts) == 1 else "there"
    raise RunStoreError(f"{path}: no such run folder {where}; `cifar-tui runs` lists the runs")


def cmd_app(args) -> int:
    from .tui.app import run_app

    run_app(_runs_dir(args), args.app_data_dir)
    return 0


def cmd_watch(args) -> int:
    from .runstore import CONFIG_FILE, RunStoreError
    from .tui.app import run_app

    run = _find_run(args.run, _runs_dir(args))
    if not (run / CONFIG_FILE).is_file():
        raise RunStoreError(f"{run} is not a run folder (no {CONFIG_FILE})")
    return run_app(run.parent, args.app_data_dir, run_dir=run)


def _config_from_args(args):
    from .config import SETTINGS, load_config_file, make_config

    values = load_config_file(args.config) if args.config else {}
    values.update({s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name) is not None})
    return make_config(values, preset=args.preset)


def cmd_train(args) -> int:
    """Train in this process, or start a detached one (--detach); --resume continues a run, --in-run-dir is the child."""
    import signal

    # A closed terminal must not end a run: ignore hangups from the start, before the slow TensorFlow import.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if args.in_run_dir:  # the detached child of `--detach` (with --resume when it continues the run)
        return _train_here(_run_config(args.in_run_dir), args.in_run_dir, resume=args.resume is not None)
    if args.resume:
        run = _find_run(args.resume, _runs_dir(args))
        config = _run_config(run)
        _refuse_if_running(run)
        return _detach(config, run) if args.detach else _train_here(config, run, resume=True)
    config = _config_from_args(args)
    if args.detach:
        return _detach(config)
    from .data import load_cifar10
    from .launcher import create_run

    load_cifar10(config.data_dir)  # fail before any model is built when the data is nowhere to be found
    run_dir = create_run(config)
    print(f"run folder: {run_dir}", flush=True)
    return _train_here(config, run_dir, resume=False)


def _run_config(run_dir: Path):
    """The TrainConfig a run folder holds, or a RunStoreError saying why it cannot be used."""
    from . import runstore
    from .config import config_from_run

    data, problem = runstore.read_json(run_dir / runstore.CONFIG_FILE)
    if problem:
        raise runstore.RunStoreError(f"cannot resume {run_dir}: {problem}")
    return config_from_run(data, run_dir)


def _refuse_if_running(run_dir: Path) -> None:
    from . import runstore

    status = runstore.read_status(run_dir)
    if runstore.effective_state(status) == "running":
        raise runstore.RunStoreError(f"{run_dir} is still running (pid {status.pid})")


def _detach(config, resume: Path | None = None) -> int:
    from .launcher import start_detached
    from .runstore import TRAIN_LOG

    run_dir = start_detached(config, resume=resume)
    print(run_dir)
    print(f"training in the background (log: {run_dir / TRAIN_LOG}); watch it with `cifar-tui`", file=sys.stderr)
    return 0


def _train_here(config, run_dir: Path, resume: bool) -> int:
    from .console import make_reporter, native_stderr_to_file
    from .runstore import TRAIN_LOG

    with native_stderr_to_file(run_dir / TRAIN_LOG):  # TensorFlow's start-up lines: in the run's log, not over the bars
        if sys.stdout.isatty():  # the import takes seconds: say so to a person waiting
            print("starting TensorFlow …", flush=True)
        from .training import train_run

        state = train_run(config, run_dir, resume=resume, listeners=[make_reporter()])
    return {"finished": 0, "stopped": EXIT_STOPPED}.get(state, EXIT_FAILED)


def cmd_evaluate(args) -> int:
    from . import runstore

    run = _find_run(args.run, _runs_dir(args))
    report, _ = runstore.read_report(run)
    if report is None or args.recompute:
        from .evaluation import evaluate_run
        from .prediction import ModelLoadError

        try:
            report = evaluate_run(run)
        except ModelLoadError as exc:
            print(f"cifar-tui: {exc}", file=sys.stderr)
            return EXIT_FAILED
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from .report import print_report

    print_report(report)
    return 0


def cmd_predict(args) -> int:
    from .data import CLASS_NAMES
    from .images import IMAGE_SUFFIXES, ImageLoadError, find_images
    from .prediction import FilePrediction, ModelLoadError, load_classifier, write_csv

    paths: list[Path] = []
    folder_errors: list[FilePrediction] = []  # a folder that gives no picture is a failed input too
    for p in args.images:
        if p.is_dir():
            try:
                found = find_images(p)
            except ImageLoadError as exc:
                folder_errors.append(FilePrediction(p, None, str(exc)))
                continue
            if not found:
                folder_errors.append(FilePrediction(
                    p, None, f"{p.name}: no images in this folder (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"))
            paths.extend(found)
        else:
            paths.append(p)
    run = _find_run(args.run, _runs_dir(args))
    if sys.stderr.isatty():  # the model takes seconds to load (TensorFlow first): say so to a person waiting
        print(f"loading the model of {run} …", file=sys.stderr, flush=True)
    try:
        classifier = load_classifier(run)
    except ModelLoadError as exc:
        print(f"cifar-tui: {exc}", file=sys.stderr)
        return EXIT_FAILED
    results = folder_errors + classifier.classify_files(paths, top_k=len(CLASS_NAMES))
    if args.csv:
        write_csv(results, args.csv)
    top_k = max(1, min(args.top_k, len(CLASS_NAMES)))
    failed = sum(r.error is not None for r in results)
    if args.json:
        print(json.dumps([
            {"path": str(r.path), "top": [{"class": c, "probability": round(p, 6)} for c, p in r.top[:top_k]] if r.top else None,
             "error": r.error} for r in results
        ], indent=2))
    else:
        for r in results:
            if r.error:  # the error starts with the file's name: the line names the path once
                print(f"{r.path}: error: {r.error.removeprefix(f'{r.path.name}: ')}", file=sys.stderr)
            else:
                print(f"{r.path}: " + ", ".join(f"{c} {p:.1%}" for c, p in r.top[:top_k]))
    return EXIT_FAILED if failed or not results else 0


RUNS_COLUMN_PRIORITY = ("run", "state", "best val", "test", "time", "backbone", "size")  # what a narrow `runs` keeps


def cmd_runs(args) -> int:
    from .runreader import list_runs

    runs_dir = _runs_dir(args)
    runs = list_runs(runs_dir)
    if args.json:
        print(json.dumps([{**r.__dict__, "path": str(r.path)} for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs in {runs_dir}")
        return 0
    from rich.console import Console
    from rich.table import Table

    from .formatting import ASCII_DASH, fmt

    columns = {
        "run": [r.name for r in runs],
        "state": [r.state for r in runs],
        "backbone": [r.backbone or "?" for r in runs],
        "size": [str(r.image_size or "?") for r in runs],
        "best val": [fmt(r.best_val_accuracy, ".4f", ASCII_DASH) for r in runs],
        "test": [fmt(r.test_accuracy, ".4f", ASCII_DASH) for r in runs],
        "time": [f"{r.duration_s / 60:.1f} min" if r.duration_s else ASCII_DASH for r in runs],
    }
    # Run names are what users copy into other commands: always whole. Lesser columns give way first.
    console = Console()
    shown, width = [], 1
    for header in RUNS_COLUMN_PRIORITY:
        needed = max(map(len, [header, *columns[header]])) + 3  # padding and border
        if header == "run" or width + needed <= console.width:
            shown.append(header)
            width += needed
    table = Table(*(h for h in columns if h in shown))
    for row in zip(*(values for h, values in columns.items() if h in shown)):
        table.add_row(*row)
    console.print(table, width=max(console.width, width), no_wrap=True)  # a name wider than the terminal: whole, wrapped by it
    left_out = [h for h in columns if h not in shown]
    if left_out:
        console.print(f"(too narrow for {', '.join(left_out)}: see --json)", highlight=False)
    for r in runs:
        for problem in r.problems:
            print(f"{r.name}: {problem}", file=sys.stderr)
    return 0


def cmd_backbones(args) -> int:
    from .backbones import BACKBONES

    for spec in BACKBONES.values():
        print(f"{spec.name:18} {spec.label:26} default {spec.default_size}px  {spec.description}")
    return 0
