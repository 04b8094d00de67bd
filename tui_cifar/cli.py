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
    p = sub.add_parser("train", help="train a model into a new run folder",
                       description="Two-stage transfer learning on CIFAR-10 into a run folder.")
    p.add_argument("--config", type=Path, help="JSON or TOML file of settings (command-line flags override it)")
    p.add_argument("--preset", choices=("quick", "default", "best"), help="start from a preset")
    p.add_argument("--backbone", help="see `cifar-tui backbones`")
    p.add_argument("--image-size", type=int, help="input size the 32x32 images are upsampled to")
    p.add_argument("--fine-tune-blocks", help="top blocks of the backbone unfrozen in stage 2: N or 'all'")
    p.add_argument("--epochs-head", type=int, help="stage 1 epochs (head on frozen features)")
    p.add_argument("--epochs-fine", type=int, help="stage 2 epochs (fine-tuning)")
    p.add_argument("--lr-head", type=float)
    p.add_argument("--lr-fine", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None, help="no mirrored view")
    p.add_argument("--no-tta", dest="tta_flip", action="store_false", default=None, help="no flip test-time augmentation")
    p.add_argument("--weights", choices=("imagenet", "none"))
    p.add_argument("--mixed-precision", choices=("auto", "on", "off"), help="float16 compute (auto: on with a GPU)")
    p.add_argument("--runtime", choices=("auto", "keras", "litert"),
                   help="runs the frozen forward passes (auto: LiteRT on a CPU, Keras on a GPU)")
    p.add_argument("--seed", type=int)
    p.add_argument("--val-size", type=int)
    p.add_argument("--data-dir", help="folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz")
    p.add_argument("--runs-dir", help="where run folders go (default ./runs)")
    p.add_argument("--cache-dir", help="feature cache (default ~/.cache/cifar-tui/features)")
    p.add_argument("--limit-train", type=int, help="use a stratified subset of N training images")
    p.add_argument("--limit-test", type=int, help="use a stratified subset of N test images")
    p.add_argument("--detach", action="store_true", help="run in the background, detached from this terminal; prints the run folder")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue a killed or stopped run from its last completed epoch")
    p.add_argument("--in-run-dir", type=Path, help=argparse.SUPPRESS)  # used by --detach


CONFIG_FLAGS = ("backbone", "image_size", "fine_tune_blocks", "epochs_head", "epochs_fine", "lr_head", "lr_fine",
                "batch_size", "augment", "tta_flip", "weights", "seed", "val_size", "data_dir", "runs_dir",
                "cache_dir", "limit_train", "limit_test", "mixed_precision", "runtime")


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
    p.add_argument("--json", action="store_true", help="print metrics.json")
    p.add_argument("--recompute", action="store_true", help="score the saved model again")
    p = sub.add_parser("predict", help="classify images with a run's model")
    p.add_argument("run", type=Path, help="run folder or .keras file")
    p.add_argument("images", nargs="+", type=Path, help="image files or folders")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--csv", type=Path, help="also write all probabilities to this CSV file")
    p.add_argument("--runtime", choices=("auto", "keras", "litert"), help="default: the run's setting (auto: LiteRT on a CPU)")
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
    from .config import load_config_file, make_config

    values = load_config_file(args.config) if args.config else {}
    values.update({k: getattr(args, k) for k in CONFIG_FLAGS if getattr(args, k) is not None})
    return make_config(values, preset=args.preset)


def cmd_train(args) -> int:
    from . import runstore
    from .config import config_from_run

    if args.in_run_dir:
        import signal

        # The detached child of `--detach`: ignore hangups from the start, not only once
        # train_run is reached after the slow TensorFlow import.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if args.resume or args.in_run_dir:
        run_dir = args.resume or args.in_run_dir
        data, problem = runstore.read_json(run_dir / runstore.CONFIG_FILE)
        if problem:
            raise runstore.RunStoreError(f"cannot resume {run_dir}: {problem}")
        config = config_from_run(data, run_dir)
        if args.resume and runstore.effective_state(runstore.read_status(run_dir)) == "running":
            raise runstore.RunStoreError(f"{run_dir} is still running (pid {runstore.read_status(run_dir).pid})")
    else:
        config = _config_from_args(args)
        if not args.detach:
            # Fail before any model is built when the data is nowhere to be found.
            from .data import load_cifar10

            load_cifar10(config.data_dir)
        run_dir = None
    if args.detach:
        from .launcher import start_detached

        run_dir = start_detached(config, resume=args.resume)
        print(run_dir)
        print(f"training in the background (log: {run_dir / runstore.TRAIN_LOG}); watch it with `cifar-tui`", file=sys.stderr)
        return 0
    if run_dir is None:
        run_dir = runstore.create_run_dir(Path(config.runs_dir), config.run_name)
    from .console import make_reporter
    from .training import train_run

    if not args.in_run_dir:
        print(f"run folder: {run_dir}", flush=True)
    state = train_run(config, run_dir, resume=bool(args.resume), listeners=[make_reporter()])
    return {"finished": 0, "stopped": EXIT_STOPPED}.get(state, EXIT_FAILED)


def cmd_evaluate(args) -> int:
    from . import runstore

    report, problem = runstore.read_json(args.run / runstore.REPORT_FILE)
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
        classifier = load_classifier(args.run, args.runtime)
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
    from .runstore import list_runs

    runs = list_runs(Path(args.runs_dir))
    if args.json:
        print(json.dumps([{**r.__dict__, "path": str(r.path)} for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs in {args.runs_dir}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("run", "state", "backbone", "size", "best val", "test", "time")
    for r in runs:
        table.add_row(r.name, r.state, r.backbone or "?", str(r.image_size or "?"),
                      f"{r.best_val_accuracy:.4f}" if r.best_val_accuracy is not None else "-",
                      f"{r.test_accuracy:.4f}" if r.test_accuracy is not None else "-",
                      f"{r.duration_s / 60:.1f} min" if r.duration_s else "-")
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
