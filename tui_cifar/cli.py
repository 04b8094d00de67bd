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
    p.add_argument("--config", type=Path, help="JSON or TOML file of settings (command-line flags override it)")
    p.add_argument("--preset", choices=tuple(PRESETS), help="start from a preset")
    _add_setting_flags(p)
    p.add_argument("--detach", action="store_true", help="run in the background, detached from this terminal; prints the run folder")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue a killed or stopped run from its last completed epoch")
    p.add_argument("--in-run-dir", type=Path, help=argparse.SUPPRESS)  # used by --detach


def _add_setting_flags(p) -> None:
    """One flag per TrainConfig setting, from its declaration (config.SETTINGS); make_config checks the values."""
    from .config import SETTINGS

    for s in SETTINGS:
        if s.kind == "bool":  # on by default: the flag turns it off
            p.add_argument(s.flag, dest=s.name, action="store_false", default=None, help=f"off: {s.help}")
            continue
        default = "" if s.default is None else f" (default {s.default})"
        p.add_argument(s.flag, dest=s.name, type={"int": int, "float": float}.get(s.kind),
                       choices=s.values if s.kind == "choice" else None,
                       help=f"{s.label}: {s.help}{default}" if s.help else f"{s.label}{default}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifar-tui",
        description="Train, watch, evaluate and use a CIFAR-10 transfer-learning classifier. "
        "With no command, opens the terminal app.",
    )
    parser.add_argument("--runs-dir", dest="app_runs_dir", default="runs", help="runs folder for the app (default ./runs)")
    parser.add_argument("--data-dir", dest="app_data_dir", help="CIFAR-10 folder for the app")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    p = sub.add_parser("evaluate", help="test-set report of a run")
    p.add_argument("run", type=Path)
    p.add_argument("--json", action="store_true", help="print the report as JSON (report.json)")
    p.add_argument("--recompute", action="store_true", help="score the saved model again")
    p = sub.add_parser("predict", help="classify images with a run's model")
    p.add_argument("run", type=Path, help="run folder or .keras file")
    p.add_argument("images", nargs="+", type=Path, help="image files or folders")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--csv", type=Path, help="also write all probabilities to this CSV file")
    p = sub.add_parser("runs", help="list runs")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--json", action="store_true")
    sub.add_parser("backbones", help="list the available backbones")
    p = sub.add_parser("watch", help="open the app on a run's live training view (attach to a running run)")
    p.add_argument("run", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
                "runs": cmd_runs, "backbones": cmd_backbones, "watch": cmd_watch, None: cmd_app}
    from .config import ConfigError
    from .data import DatasetNotFound
    from .runstore import RunStoreError

    try:
        return handlers[args.command](args)
    except (ConfigError, RunStoreError, DatasetNotFound) as exc:
        print(f"cifar-tui: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED
    except KeyboardInterrupt:  # Ctrl-C outside training (which stops itself cleanly): no traceback
        print("cifar-tui: interrupted", file=sys.stderr)
        return EXIT_STOPPED


def cmd_app(args) -> int:
    from .tui.app import run_app

    run_app(Path(args.app_runs_dir), args.app_data_dir)
    return 0


def cmd_watch(args) -> int:
    from .runstore import CONFIG_FILE, RunStoreError
    from .tui.app import run_app

    if not (args.run / CONFIG_FILE).is_file():
        raise RunStoreError(f"{args.run} is not a run folder (no {CONFIG_FILE})")
    return run_app(args.run.parent, args.app_data_dir, run_dir=args.run)


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
        config = _run_config(args.resume)
        _refuse_if_running(args.resume)
        return _detach(config, args.resume) if args.detach else _train_here(config, args.resume, resume=True)
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
        from .training import train_run

        state = train_run(config, run_dir, resume=resume, listeners=[make_reporter()])
    return {"finished": 0, "stopped": EXIT_STOPPED}.get(state, EXIT_FAILED)


def cmd_evaluate(args) -> int:
    from . import runstore

    report, _ = runstore.read_report(args.run)
    if report is None or args.recompute:
        from .evaluation import evaluate_run
        from .prediction import ModelLoadError

        try:
            report = evaluate_run(args.run)
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
    try:
        classifier = load_classifier(args.run)
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


def cmd_runs(args) -> int:
    from .runreader import list_runs

    runs = list_runs(Path(args.runs_dir))
    if args.json:
        print(json.dumps([{**r.__dict__, "path": str(r.path)} for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs in {args.runs_dir}")
        return 0
    from rich.console import Console
    from rich.table import Table

    from .formatting import ASCII_DASH, fmt

    table = Table("run", "state", "backbone", "size", "best val", "test", "time")
    for r in runs:
        table.add_row(r.name, r.state, r.backbone or "?", str(r.image_size or "?"),
                      fmt(r.best_val_accuracy, ".4f", ASCII_DASH), fmt(r.test_accuracy, ".4f", ASCII_DASH),
                      f"{r.duration_s / 60:.1f} min" if r.duration_s else ASCII_DASH)
    Console().print(table)
    for r in runs:
        for problem in r.problems:
            print(f"{r.name}: {problem}", file=sys.stderr)
    return 0


def cmd_backbones(args) -> int:
    from .backbones import BACKBONES

    for spec in BACKBONES.values():
        print(f"{spec.name:18} {spec.label:26} default {spec.default_size}px  {spec.description}")
    return 0
