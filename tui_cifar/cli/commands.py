"""`cifar-tui`: the Textual app with no arguments, headless commands otherwise.

Nothing heavy is imported at module level: `cifar-tui --help` must not pay for TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..engine.doctor import package_version, platform_problem, tensorflow_problem
from ..errors import EXIT_FAILED, EXIT_STOPPED, EXIT_USAGE, CifarTuiError

# `predict`: some inputs could not be read (each named on stderr), every other one was classified (and scored).
EXIT_SOME_UNREADABLE = 3


def _add_train(sub) -> None:
    from ..config import PRESETS

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
    p.add_argument("--notify", metavar="CMD",
                   help="shell command run when the run ends (also with --detach), with CIFAR_TUI_STATE, CIFAR_TUI_RUN, "
                   "CIFAR_TUI_RUN_NAME, CIFAR_TUI_TEST_ACCURACY, CIFAR_TUI_BEST_VAL_ACCURACY, CIFAR_TUI_MESSAGE, "
                   "CIFAR_TUI_WALL_TIME_S in its environment (default: none)")
    p.add_argument("--in-run-dir", type=Path, help=argparse.SUPPRESS)  # used by --detach
    p.add_argument("--lock-fd", type=int, help=argparse.SUPPRESS)  # the run's lock, taken by --detach's launcher


def _add_setting_flags(p) -> None:
    """One flag per TrainConfig setting, from its declaration (config.SETTINGS); make_config checks the values."""
    from ..config import SETTINGS

    for s in SETTINGS:
        about = (f"{s.label}: {s.help}" if s.help else s.label).replace("%", "%%")  # argparse formats help with %
        if s.kind == "bool":  # --augment / --no-augment, --tta / --no-tta
            positive = s.flag.replace("--no-", "--", 1)
            p.add_argument(positive, dest=s.name, action=argparse.BooleanOptionalAction, default=None,
                           help=f"turn {about} on or off (default: {'on' if s.default else 'off'})")
            continue
        p.add_argument(s.flag, dest=s.name, type={"int": int, "float": float}.get(s.kind),
                       choices=s.values if s.kind == "choice" else None,
                       help=f"{about} (default: {'none' if s.default is None else s.default})")


def _add_devices_flag(p) -> None:
    """--devices for the commands that run a model, as `train` has it (config.py declares the setting)."""
    from ..config import SETTING_BY_NAME

    s = SETTING_BY_NAME["devices"]
    p.add_argument(s.flag, dest=s.name, default=s.default, type=_devices_arg, help=f"{s.label}: {s.help} (default {s.default})")


def _devices_arg(text: str) -> str:
    from ..engine.devices import parse_devices

    try:
        parse_devices(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _configure_tensorflow(devices: str) -> None:
    """Before a command's first TensorFlow operation (see engine.devices.configure_tensorflow)."""
    from ..engine.devices import configure_tensorflow

    try:
        configure_tensorflow(devices)
    except ValueError as exc:  # e.g. --devices 3 on a box with 2 GPUs
        from ..config import ConfigError

        raise ConfigError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    from ..config import SETTING_BY_NAME

    parser = argparse.ArgumentParser(
        prog="cifar-tui",
        description="Train, watch, evaluate and use a CIFAR-10 transfer-learning classifier. "
        "With no command, opens the terminal app.",
    )
    parser.add_argument("--runs-dir", dest="app_runs_dir", type=Path, metavar="DIR",
                        help=f"runs folder of the app and of every command; run names are looked up there (default: {_default_runs_dir()})")
    parser.add_argument("--data-dir", dest="app_data_dir", metavar="DIR",
                        help="CIFAR-10 folder of the app and of `train` (default: the usual places, see README)")
    parser.add_argument("--version", action="version", version=f"cifar-tui {package_version() or '(not installed)'}",
                        help="print cifar-tui's version and exit, without loading TensorFlow")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    run_help = "run folder, or a run's name in the runs folder"
    p = sub.add_parser("evaluate", help="test-set report of a run")
    p.add_argument("run", type=Path, help=run_help)
    p.add_argument("--json", action="store_true", help="print the report as JSON, as report.json holds it (default: tables)")
    p.add_argument("--recompute", action="store_true", help="score the saved model again (default: show the saved report)")
    p.add_argument("--data-dir", help="CIFAR-10 folder for --recompute (default: the usual places; never the run's own)")
    _add_devices_flag(p)
    p = sub.add_parser("predict", help="classify images with a run's model",
                       epilog=f"Exit codes: 0 every picture classified, {EXIT_SOME_UNREADABLE} some could not be read "
                       "(each named on stderr; the others are classified, scored and written), 1 none classified or "
                       "an output not written.")
    p.add_argument("run", type=Path, help=f"{run_help}, or a .keras file")
    p.add_argument("images", nargs="+", type=Path, help="image files or folders (searched with their subfolders)")
    p.add_argument("--top-k", type=int, default=3, help="classes shown per image (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the results as JSON (default: one line per image)")
    p.add_argument("--csv", type=Path, help="also write all probabilities to this CSV file (default, when a folder "
                   "is given: RUN/predictions/FOLDER.csv, or ./predictions-MODEL-FOLDER.csv for a .keras file)")
    p.add_argument("--labels-from-folders", action="store_true",
                   help="score the model on your photos: each subfolder named after a CIFAR-10 class (cat/, cars/, "
                   "Plane/...) labels the pictures in it; prints accuracy, per-class recall and a confusion matrix "
                   "(default: off)")
    p.add_argument("--label-map", type=Path, metavar="FILE",
                   help='with --labels-from-folders: JSON {"folder": "class"} or CSV folder,class naming the class '
                   "of folders whose names are not classes (default: none)")
    p.add_argument("--explain", type=Path, metavar="OUT_DIR",
                   help="write one PNG per picture: the photo, the 32x32 input the model gets, and its Grad-CAM "
                   "heatmap for the top class (default: none)")
    p.add_argument("--runtime", choices=SETTING_BY_NAME["runtime"].values,
                   help="runs the forward pass (default: the run's setting; auto: LiteRT on a CPU)")
    _add_devices_flag(p)
    p = sub.add_parser("runs", help="list runs")
    p.add_argument("--runs-dir", type=Path, help=f"the runs folder to list (default: {_default_runs_dir()})")
    p.add_argument("--json", action="store_true", help="print the runs as JSON (default: a table)")
    p.add_argument("--csv", type=Path, metavar="FILE",
                   help="also write one row per run (settings and results) to FILE (default: none)")
    sub.add_parser("backbones", help="list the available backbones")
    p = sub.add_parser("watch", help="open the app on a run's live training view (attach to a running run)")
    p.add_argument("run", type=Path, help=run_help + " (or a folder of TensorBoard event files)")
    p.add_argument("--alerts", action="store_true",
                   help="no app: print one plain line per alert (NaN loss, divergence, plateau, overfitting) "
                        "as the run goes, until it ends (default: the app)")
    p.add_argument("--notify", metavar="CMD",
                   help="shell command run for each alert (with --alerts, or in the app beside its bell and toast), "
                        "with CIFAR_TUI_ALERT (the rule), CIFAR_TUI_MESSAGE, CIFAR_TUI_ALERT_WHY, CIFAR_TUI_ALERT_ADVICE, "
                        "CIFAR_TUI_STAGE, CIFAR_TUI_EPOCH, CIFAR_TUI_RUN, CIFAR_TUI_RUN_NAME in its environment "
                        "(default: none)")
    _add_sweep(sub)
    _add_export(sub)
    _add_doctor(sub)
    _add_cache(sub)
    return parser


def add_metrics_export_args(p: argparse.ArgumentParser) -> None:
    """`export`'s options for a run's metrics (any run, a Keras script's too)."""
    p.add_argument("--tensorboard", type=Path, metavar="DIR",
                   help="write TensorBoard event files under DIR/RUN (default: none)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="write the run's metrics log (batch and epoch records) to FILE (default: none)")


def main(argv: list[str] | None = None) -> int:
    """Run a command; every expected failure (errors.CifarTuiError) is one line on stderr and its exit code."""
    args = build_parser().parse_args(argv)
    handlers = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "runs": cmd_runs,
                "backbones": cmd_backbones, "watch": cmd_watch, "export": cmd_export, "doctor": cmd_doctor,
                "cache": cmd_cache, "sweep": cmd_sweep, None: cmd_app}
    try:
        problem = platform_problem()
        if problem:
            raise CifarTuiError(problem)
        _apply_global_dirs(args)
        if args.command in QUIET_TENSORFLOW:
            _tensorflow_lines_to_log()
        return handlers[args.command](args)
    except CifarTuiError as exc:
        error = exc
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("tensorflow", "keras"):
            raise
        error = CifarTuiError(tensorflow_problem() or str(exc))
    except KeyboardInterrupt:  # Ctrl-C outside training (which stops itself cleanly): no traceback
        error = CifarTuiError("interrupted", exit_code=EXIT_STOPPED)
    except OSError as exc:  # a full or read-only disk at any write (report, export, status): one line, exit 1
        if exc.errno is None:
            raise
        from ..formatting import shown

        where = f"{shown(exc.filename)}: " if exc.filename else ""
        error = CifarTuiError(f"{where}{exc.strerror or exc}")
    print(f"cifar-tui: {error}", file=sys.stderr)
    return error.exit_code


# Commands that load TensorFlow for a short job: its start-up lines ("failed call to cuInit" on a CPU box,
# oneDNN's) go to the app's stderr log, not between their output (`train` sends them to the run's train.log).
QUIET_TENSORFLOW = ("doctor", "predict", "evaluate", "export")


def _tensorflow_lines_to_log() -> None:
    """Descriptor 2 to the stderr log for the rest of the process (TensorFlow writes at exit too); Python's
    stderr stays on the terminal."""
    from ..paths import stderr_log_path
    from .console import divert_native_stderr

    divert_native_stderr(stderr_log_path())


# The commands that `cifar-tui --runs-dir X COMMAND` and `--data-dir` mean something to; the others refuse them.
GLOBAL_DIR_COMMANDS = {"runs_dir": ("train", "runs", "evaluate", "predict", "watch", "export", "sweep"),
                       "data_dir": ("train", "watch", "doctor", "sweep", "evaluate")}


def _apply_global_dirs(args) -> None:
    """Hand the folders given before the command to the command's own option (train --runs-dir, runs --runs-dir)."""
    from ..config import ConfigError

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
    from ..config import SETTING_BY_NAME

    return SETTING_BY_NAME["runs_dir"].default


def _runs_dir(args) -> Path:
    """The runs folder a command lists or looks run names up in: its own --runs-dir, the one before it, or the default."""
    return Path(getattr(args, "runs_dir", None) or args.app_runs_dir or _default_runs_dir())


def _find_run(path: Path, runs_dir: Path) -> Path:
    """A run given as a path, or by its bare name in the runs folder (what `cifar-tui runs` lists)."""
    from ..runs.store import RunStoreError

    if path.exists():
        return path
    if len(path.parts) == 1 and (runs_dir / path).exists():
        return runs_dir / path
    where = f"here or in the runs folder {runs_dir}" if len(path.parts) == 1 else "there"
    raise RunStoreError(f"{path}: no such run folder {where}; `cifar-tui runs` lists the runs")


def cmd_app(args) -> int:
    from ..tui.app import run_app

    return run_app(_runs_dir(args), args.app_data_dir)


def cmd_watch(args) -> int:
    from ..runs.store import CONFIG_FILE, RunStoreError
    from ..runs.tbreader import is_tensorboard_run
    from ..tui.app import run_app

    run = _find_run(args.run, _runs_dir(args))
    if not (run / CONFIG_FILE).is_file() and not is_tensorboard_run(run):
        raise RunStoreError(f"{run} is not a run folder (no {CONFIG_FILE}) nor TensorBoard event files")
    if args.alerts:
        return watch_alerts(run, notify=args.notify)
    return run_app(run.parent, args.app_data_dir, run_dir=run, notify=args.notify)


def watch_alerts(run: Path, poll: float = 1.0, out=None, notify: str | None = None) -> int:
    """Follow a run and print each alert once, when its rule starts to hold, as one plain line (and run the
    ``notify`` command for it); return when it ends."""
    import time

    from ..notify import run_notify_command
    from ..runs import store, tbreader
    from ..runs.diagnostics import AlertWatch
    from ..runs.reader import RunProgress, is_tensorboard_dir

    out = out or sys.stdout
    tb_tail = tbreader.TensorBoardTail(run) if is_tensorboard_dir(run) else None
    tail = tb_tail or store.MetricsTail(run / store.METRICS_LOG)
    progress, watch = RunProgress(), AlertWatch()
    while True:
        records = tail.read_new()
        progress.feed(records)
        for alert in watch.new_alerts(progress.epochs, progress.config or {},
                                      [progress.last_batch] if progress.last_batch else []):
            print(f"{run.name}: stage {alert.stage} epoch {alert.epoch}: {alert.rule}: {alert.line}", file=out, flush=True)
            if notify:
                run_notify_command(notify, run, alert)
        state = tb_tail.state() if tb_tail else store.effective_state(store.read_status(run))
        if state != "running" and not records:
            return 0
        time.sleep(poll)


def _config_from_args(args):
    from ..config import ConfigError, load_config_file, with_flags

    if not args.config:  # every setting came from a flag: a refusal names the flag (--val-size), not the key
        try:
            return _config_from_values(args, {})
        except ConfigError as exc:
            raise ConfigError(with_flags(str(exc)), exc.fields) from None
    return _config_from_values(args, load_config_file(args.config))


def _config_from_values(args, values: dict):
    from ..config import SETTINGS, ConfigError, make_config

    values.update({s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name) is not None})
    if isinstance(values.get("data_dir"), str) and values["data_dir"]:
        # Absolute in the run's config.json: a detached run, `evaluate` and the app may start elsewhere.
        values["data_dir"] = str(Path(values["data_dir"]).expanduser().resolve())
    config = make_config(values, preset=args.preset)
    if args.epochs_fine and config.fine_tune_blocks == 0:  # stage 2 would be skipped: say so, not train without it
        whose = f" (the {args.preset} preset's)" if args.preset and "fine_tune_blocks" not in values else ""
        raise ConfigError(f"--epochs-fine {args.epochs_fine} would fine-tune nothing: fine_tune_blocks is 0{whose}; "
                          "add --fine-tune-blocks N (3 by default) or leave --epochs-fine out",
                          ("epochs_fine", "fine_tune_blocks"))
    return config


def cmd_train(args) -> int:
    """Train in this process, or start a detached one (--detach); --resume continues a run, --in-run-dir is the child."""
    import signal

    # A closed terminal must not end a run: ignore hangups from the start, before the slow TensorFlow import.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from ..engine.devices import multi_worker_problem

    problem = multi_worker_problem()
    if problem:
        raise CifarTuiError(problem, exit_code=EXIT_USAGE)
    from ..runs.store import RunLock, adopt_lock

    if args.in_run_dir:  # the detached child of `--detach` (with --resume when it continues the run)
        lock = adopt_lock(args.in_run_dir, args.lock_fd) if args.lock_fd is not None else RunLock.acquire(args.in_run_dir)
        return _train_here(_run_config(args.in_run_dir), args.in_run_dir, lock, resume=args.resume is not None,
                           notify=args.notify)
    if args.resume:
        run = _find_run(args.resume, _runs_dir(args))
        config = _run_config(run)
        from ..engine.launcher import lock_for_resume

        if args.detach:  # start_detached refuses a finished run too
            return _detach(config, run, notify=args.notify)
        # Before TensorFlow loads: a second trainer of this run is refused at once.
        return _train_here(config, run, lock_for_resume(run), resume=True, notify=args.notify)
    config = _config_from_args(args)
    from ..engine.data import find_cifar10, load_cifar10, remember_data_dir

    if config.data_dir and find_cifar10(config.data_dir):  # the app and later commands find it without --data-dir
        remember_data_dir(config.data_dir)
    if args.detach:
        return _detach(config, notify=args.notify)
    from ..engine.launcher import create_run

    load_cifar10(config.data_dir)  # fail before any model is built when the data is nowhere to be found or refused
    run_dir = create_run(config)
    lock = RunLock.acquire(run_dir)
    print(f"run folder: {run_dir}", flush=True)
    return _train_here(config, run_dir, lock, resume=False, notify=args.notify)


def _run_config(run_dir: Path):
    """The TrainConfig a run folder holds, or a RunStoreError saying why it cannot be used."""
    from ..config import config_from_run
    from ..runs import store

    data, problem = store.read_json(run_dir / store.CONFIG_FILE)
    if data is None:
        raise store.RunStoreError(f"cannot resume {run_dir}: {problem}")
    return config_from_run(data, run_dir)


def _detach(config, resume: Path | None = None, notify: str | None = None) -> int:
    from ..engine.launcher import start_detached
    from ..runs.store import TRAIN_LOG

    run_dir = start_detached(config, resume=resume, notify=notify)
    print(run_dir)
    print(f"training in the background (log: {run_dir / TRAIN_LOG}); watch it with `cifar-tui`", file=sys.stderr)
    return 0


def _train_here(config, run_dir: Path, lock, resume: bool, notify: str | None = None) -> int:
    """Train holding the run's lock (store.RunLock), released once its final status is written."""
    from ..engine.launcher import keep_stop_signals
    from ..runs.store import TRAIN_LOG
    from .console import make_reporter, native_stderr_to_file

    keep_stop_signals(run_dir)  # a stop while TensorFlow loads ends the run 'stopped', not the process
    try:
        with native_stderr_to_file(run_dir / TRAIN_LOG):  # TensorFlow's start-up lines: in the run's log, not over the bars
            if sys.stdout.isatty():  # the import takes seconds: say so to a person waiting
                print("starting TensorFlow …", flush=True)
            from ..engine.training import train_run

            state = train_run(config, run_dir, resume=resume, listeners=[make_reporter()])
    finally:
        lock.release()
    if notify:
        from ..notify import run_notify_command

        run_notify_command(notify, run_dir)
    return {"finished": 0, "stopped": EXIT_STOPPED}.get(state, EXIT_FAILED)


def cmd_evaluate(args) -> int:
    from ..runs import store

    run = _find_run(args.run, _runs_dir(args))
    report, _ = store.read_report(run)
    if report is None or args.recompute:
        _configure_tensorflow(args.devices)
        from ..engine.evaluation import evaluate_run

        report = evaluate_run(run, data_dir=args.data_dir)  # the user's data folder, not the run's
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from .report import print_report

    print_report(report)
    return 0


def cmd_predict(args) -> int:
    from ..engine.data import CLASS_NAMES
    from ..engine.prediction import default_csv_path, load_classifier, write_csv

    if args.label_map and not args.labels_from_folders:
        raise CifarTuiError("--label-map needs --labels-from-folders", exit_code=EXIT_USAGE)
    label_map = None
    if args.label_map:
        from ..engine.folder_labels import load_label_map

        label_map = load_label_map(args.label_map)
    run = _find_run(args.run, _runs_dir(args))  # before searching a large photo folder
    groups, folder_errors = _gather_inputs(args.images)
    if sys.stderr.isatty():  # the model takes seconds to load (TensorFlow first): say so to a person waiting
        print(f"loading the model of {run} …", file=sys.stderr, flush=True)
    _configure_tensorflow(args.devices)
    classifier = load_classifier(run, args.runtime)
    results = folder_errors + [r for paths, root in groups if paths
                               for r in classifier.classify_files(paths, top_k=len(CLASS_NAMES), root=root)]
    folders = [root for _, root in groups if root is not None]
    csv_path = args.csv or (default_csv_path(run, folders) if folders else None)
    top_k = max(1, min(args.top_k, len(CLASS_NAMES)))
    failed = sum(r.error is not None for r in results)
    score = _photo_score(run, results, label_map) if args.labels_from_folders else None
    if args.json:
        predictions = [
            {"path": str(r.path), "relative_path": r.relative_path.as_posix(),
             "top": [{"class": c, "probability": round(p, 6)} for c, p in r.top[:top_k]] if r.top else None,
             "error": r.error} for r in results
        ]
        print(json.dumps({"predictions": predictions, **score} if score else predictions, indent=2))
    else:
        from ..formatting import shown

        for r in results:  # file names are anyone's: control characters shown, never sent to the terminal
            if r.error:  # the error starts with the file's name: the line names the path once
                print(f"{shown(r.path)}: error: {shown(r.error.removeprefix(f'{r.path.name}: '))}", file=sys.stderr)
            else:
                print(f"{shown(r.path)}: " + ", ".join(f"{c} {p:.1%}" for c, p in r.top[:top_k]))
        if score:
            from .report import print_photo_score

            print_photo_score(score["photos"], score["test"])
    # The files last: when one cannot be written, the predictions above are not lost.
    if csv_path:
        try:
            write_csv(results, csv_path)
        except OSError as exc:
            raise CifarTuiError(f"cannot write {csv_path}: {exc.strerror or exc}") from exc
        print(f"predictions written to {csv_path}", file=sys.stderr)
    if args.explain:
        _write_explanations(classifier, [r for r in results if r.error is None], args.explain)
    if failed == len(results):
        return EXIT_FAILED
    return EXIT_SOME_UNREADABLE if failed else 0


def _gather_inputs(inputs: list[Path]):
    """([(pictures, the folder they were found in or None)], a failed result per unusable folder), in argument order.

    Each folder's search is reported on stderr: what was found, and each entry skipped with the reason.
    """
    from ..engine.images import IMAGE_SUFFIXES, ImageLoadError, find_images
    from ..engine.prediction import FilePrediction
    from ..formatting import shown

    groups: list[tuple[list[Path], Path | None]] = []
    folder_errors: list[FilePrediction] = []  # a folder that gives no picture is a failed input too
    for p in inputs:
        if not p.is_dir():
            groups.append(([p], None))
            continue
        try:
            scan = find_images(p)
        except ImageLoadError as exc:
            folder_errors.append(FilePrediction(p, None, str(exc)))
            continue
        print(f"{shown(p)}: {scan.summary()}", file=sys.stderr)
        for path, reason in scan.skipped:
            print(f"{shown(path)}: skipped: {shown(reason)}", file=sys.stderr)
        if not scan.images:
            folder_errors.append(FilePrediction(p, None, f"{p.name}: no images in this folder or its subfolders "
                                                         f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})"))
        groups.append((scan.images, scan.root))
    return groups, folder_errors


def _photo_score(run: Path, results, label_map) -> dict:
    """{"photos": folder_labels.score_photos, "test": the run's test accuracy and recalls, or None}."""
    from ..engine.folder_labels import score_photos, test_set_scores

    return {"photos": score_photos(results, label_map), "test": test_set_scores(run)}


def _write_explanations(classifier, results, out_dir: Path) -> None:
    """--explain: one Grad-CAM PNG per classified picture, named after its path under the searched folder."""
    from ..engine.explain import ExplainError, explain_files, png_names

    names = png_names([r.relative_path if r.root is not None else Path(r.path.name) for r in results])
    try:
        written = explain_files(classifier.keras_model, [r.path for r in results], [r.top[0][0] for r in results],
                                out_dir, names, [r.top[0][1] for r in results])
    except (ExplainError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise CifarTuiError(f"no explanations written to {out_dir}: {reason}") from exc
    print(f"{len(written)} explanation{'s' * (len(written) != 1)} written to {out_dir}", file=sys.stderr)


RUNS_COLUMN_PRIORITY = ("run", "state", "best val", "test", "time", "backbone", "size", "last")  # what a narrow `runs` keeps


def cmd_runs(args) -> int:
    from ..runs.reader import list_runs

    runs_dir = _runs_dir(args)
    if args.csv:
        from ..runs.rows import runs_rows, write_csv

        count = write_csv(runs_rows(runs_dir), args.csv)
        print(f"{count} runs written to {args.csv}", file=sys.stderr)
    runs = sorted(list_runs(runs_dir, tensorboard=True), key=lambda r: (r.started_at or "", r.name),
                  reverse=True)  # newest first, as the app lists them
    if args.json:
        print(json.dumps([{**r.__dict__, "path": str(r.path)} for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs in {runs_dir}")
        return 0
    from rich.cells import cell_len
    from rich.console import Console

    from ..formatting import ASCII_DASH, fmt, shown

    columns: dict[str, list[str]] = {  # names and settings come from run folders: text, never markup or control codes
        "run": [shown(r.name) for r in runs],
        "state": [r.state for r in runs],
        "backbone": [shown(r.backbone or (f"{r.model} ({r.kind})" if r.model else
                                          "(tensorboard)" if r.kind == "tensorboard" else "?")) for r in runs],
        "size": [str(r.image_size or (ASCII_DASH if r.model or r.kind == "tensorboard" else "?")) for r in runs],
        "best val": [fmt(r.best_val_accuracy, ".4f", ASCII_DASH) for r in runs],
        "test": [fmt(r.test_accuracy, ".4f", ASCII_DASH) for r in runs],
        "time": [f"{r.duration_s / 60:.1f} min" if r.duration_s else ASCII_DASH for r in runs],
        "last": [shown(" ".join(f"{k} {v:.3g}" for k, v in list(r.last.items())[:4])) or ASCII_DASH for r in runs],
    }
    # Run names are what users copy into other commands: always whole. Lesser columns give way first.
    console = Console()
    kept, width = [], 1
    priority = list(RUNS_COLUMN_PRIORITY)
    if any(r.kind != "cifar-tui" for r in runs):  # a TensorBoard or Keras run says most in its last values
        priority.remove("last")
        priority.insert(priority.index("state") + 1, "last")
    for header in priority:
        needed = max(map(cell_len, [header, *columns[header]])) + 3  # padding and border
        if header == "run" or width + needed <= console.width:
            kept.append(header)
            width += needed
    shown_columns = {h: values for h, values in columns.items() if h in kept}
    # A name wider than the terminal stays whole (wrapped by the terminal). Drawn here, not by rich.table,
    # which took 10 s for 2,000 runs (bench/load.json): the cells are plain text already.
    sys.stdout.write("".join(line + "\n" for line in _box_table(list(shown_columns), list(zip(*shown_columns.values())))))
    left_out = [h for h in columns if h not in kept]
    if left_out:
        console.print(f"(too narrow for {', '.join(left_out)}: see --json)", highlight=False)
    for r in runs:
        for problem in r.problems:
            print(f"{shown(r.name)}: {shown(problem)}", file=sys.stderr)
    return 0


def _box_table(headers: list[str], rows: list[tuple[str, ...]]) -> list[str]:
    """A table of plain-text cells in rich.table's default look (box.HEAVY_HEAD), ASCII where the output
    cannot encode the box characters."""
    from rich.cells import cell_len

    widths = [max(map(cell_len, [h, *(r[i] for r in rows)])) for i, h in enumerate(headers)]
    try:
        "┏━┃┡└─│".encode(sys.stdout.encoding or "ascii")
        box = ("┏━┳┓", "┃", "┡━╇┩", "│", "└─┴┘")
    except (LookupError, UnicodeEncodeError):
        box = ("+-++", "|", "+=++", "|", "+-++")

    def rule(chars: str) -> str:
        left, fill, middle, right = list(chars)  # four box-drawing characters
        return left + middle.join(fill * (w + 2) for w in widths) + right

    def row(cells, bar: str) -> str:
        return bar + bar.join(f" {c}{' ' * (w - cell_len(c))} " for c, w in zip(cells, widths)) + bar

    return [rule(box[0]), row(headers, box[1]), rule(box[2]), *(row(r, box[3]) for r in rows), rule(box[4])]


def export_metrics(args) -> bool:
    """Do what `export`'s --tensorboard and --csv ask for; False when neither was given."""
    if args.csv:
        from ..runs.rows import write_metrics_csv

        count = write_metrics_csv(args.run, args.csv)
        print(f"{count} records written to {args.csv}", file=sys.stderr)
    if args.tensorboard:
        from ..runs.tbexport import export_tensorboard

        target = export_tensorboard(args.run, args.tensorboard)
        print(f"TensorBoard event files in {target}; view them with: tensorboard --logdir {args.tensorboard}",
              file=sys.stderr)
    return bool(args.csv or args.tensorboard)


def cmd_backbones(args) -> int:
    from ..engine.backbones import BACKBONES

    for spec in BACKBONES.values():
        print(f"{spec.name:18} {spec.label:26} default {spec.default_size}px  {spec.description}")
    return 0


def _add_export(sub) -> None:
    """`export`: a run's model in another format and its metrics for other tools (every export flag in one place)."""
    from ..engine.export import FORMATS

    p = sub.add_parser("export", help="a run's model (SavedModel, TFLite) or its metrics (TensorBoard, CSV)",
                       description="Write a run's model for TF Serving (saved_model) or phones and small boards "
                       "(tflite; input float32 32x32 RGB 0..255, output the 10 probabilities), and/or its metrics "
                       "as TensorBoard event files or CSV (any run, a Keras script's RunLogger run too).")
    p.add_argument("run", type=Path, help="run folder (or a .keras file, with --format)")
    p.add_argument("--format", choices=FORMATS, help="write the model in this format (default: no model)")
    p.add_argument("--out", type=Path, help="where --format writes (default: beside model.keras)")
    _add_devices_flag(p)
    add_metrics_export_args(p)


def cmd_export(args) -> int:
    from ..runs import store

    if not (args.format or args.tensorboard or args.csv):
        print("cifar-tui export: say what to write: --format saved_model|tflite, --tensorboard DIR and/or --csv FILE",
              file=sys.stderr)
        return EXIT_USAGE
    args.run = _find_run(args.run, _runs_dir(args))
    if (args.tensorboard or args.csv) and not (args.run / store.CONFIG_FILE).is_file():
        raise store.RunStoreError(f"{args.run} is not a run folder (no {store.CONFIG_FILE})")
    if args.format or args.tensorboard:  # the CSV needs no TensorFlow
        _configure_tensorflow(args.devices)
    if args.format:
        from ..engine.export import export_model

        print(export_model(args.run, args.format, args.out))
    export_metrics(args)
    return 0


def _add_sweep(sub) -> None:
    from ..sweep import DEFAULT_HEARTBEAT_S, DEFAULT_PRUNER, DEFAULT_SPACE, DEFAULT_STUDY, PRUNERS, STORAGE_FILE

    p = sub.add_parser(
        "sweep", help="search settings with Optuna: every trial a run, chosen on validation accuracy",
        description="An Optuna study over training settings; every trial is a run folder trained without its test "
        "report. The same command on several machines with one --storage URL works on one study; a rerun "
        f"continues it. Default search space: {', '.join(DEFAULT_SPACE)}.")
    p.add_argument("--trials", type=int, metavar="N",
                   help="stop when the study holds N finished (complete or pruned) trials, all workers' counted (default: no limit)")
    p.add_argument("--budget", metavar="TIME", help="start no trial after TIME (30m, 2h, 900s) of this worker (default: no limit)")
    p.add_argument("--set", action="append", default=None, metavar="NAME=VALUE",
                   help="fix a setting for every trial, e.g. --set image_size=160 (repeatable; default: none)")
    p.add_argument("--space", type=Path, metavar="FILE",
                   help='JSON or TOML narrowing the search space: {"image_size": {"low": 128, "high": 192, "step": 32}, '
                   '"augment": [false, true], "fine_tune_blocks": 3} (a plain value fixes a setting; default: none)')
    p.add_argument("--study", default=DEFAULT_STUDY, help="the study's name (default: %(default)s)")
    p.add_argument("--storage", metavar="URL",
                   help=f"an Optuna storage URL, e.g. postgresql://user:password@host/db for workers on several machines "
                   f"(default: sqlite in the runs folder, RUNS/{STORAGE_FILE})")
    p.add_argument("--pruner", choices=tuple(PRUNERS), default=DEFAULT_PRUNER,
                   help="stops poor trials after an epoch, from their validation accuracy (default: %(default)s)")
    p.add_argument("--heartbeat", type=int, default=DEFAULT_HEARTBEAT_S, metavar="S",
                   help="a trial whose worker is silent for 2xS seconds is failed and retried (default: %(default)s)")
    p.add_argument("--runs-dir", help="where trials' run folders go (default: the runs folder)")
    p.add_argument("--data-dir", help="CIFAR-10 folder (default: the usual places)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true", help="print the study's trials and best so far, then exit (default: off, run trials)")
    what.add_argument("--finish", action="store_true",
                      help="score the best trial on the test set (once; its run gets report.json), then exit (default: off)")
    what.add_argument("--watch", action="store_true", help="open the app's Sweep screen on the study, followed live (default: off)")


def cmd_sweep(args) -> int:
    """Run trials (this process is one worker), or --status / --finish."""
    from .. import sweep

    runs_dir = _runs_dir(args)
    url = args.storage or sweep.default_storage(runs_dir)
    if args.watch:
        from ..tui.app import run_app

        return run_app(runs_dir, args.data_dir, screen="sweep", sweep_storage=args.storage, sweep_study=args.study)
    if args.status or args.finish:
        if not args.storage and not (runs_dir / sweep.STORAGE_FILE).is_file():
            raise _no_study(args.study, url)
        storage = sweep.open_storage(url)
        if args.study not in sweep.study_names(storage):
            raise _no_study(args.study, url)
        if args.finish:
            _configure_tensorflow("auto")
            result = sweep.finish(storage, args.study, data_dir=args.data_dir)
            print(f"trial {result['trial']} (val acc {result['val_accuracy']:.4f}): test accuracy "
                  f"{result['test_accuracy']:.4f}; its run: {result['run_dir']}")
            return 0
        sweep.print_status(sweep.read_study(storage, args.study))
        return 0
    if args.trials is None and args.budget is None:
        print("cifar-tui sweep: say how long: --trials N and/or --budget TIME", file=sys.stderr)
        return EXIT_USAGE
    if args.trials is not None and args.trials < 1:
        print(f"cifar-tui sweep: --trials must be at least 1, not {args.trials}", file=sys.stderr)
        return EXIT_USAGE
    budget = sweep.parse_budget(args.budget) if args.budget else None
    fixed = sweep.parse_set(args.set or [])
    fixed["runs_dir"] = str(runs_dir)
    if args.data_dir:
        fixed["data_dir"] = args.data_dir
    space = sweep.build_space(fixed, args.space)
    from ..engine.data import load_cifar10

    load_cifar10(fixed.get("data_dir"))  # fail before the study is touched when the data is nowhere to be found
    storage = sweep.open_storage(url, args.heartbeat)
    study = sweep.open_study(storage, args.study, space, args.pruner)
    print(f"study {args.study!r} in {sweep.describe_storage(url)}: {sweep.finished_count(study)} finished trials; "
          "searching " + ", ".join(f"{n} {d.describe()}" for n, d in space.dimensions.items()), flush=True)
    import signal

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal must not end a worker mid-trial
    from .console import plain_reporter

    ended = sweep.run_worker(study, space, args.trials, budget, listeners=[plain_reporter()])
    print(f"sweep {ended}: `cifar-tui sweep --status` lists the trials, `--finish` scores the best on the test set")
    return EXIT_STOPPED if ended == "stopped" else 0


def _no_study(name: str, url: str):
    from ..runs.store import RunStoreError
    from ..sweep import describe_storage

    return RunStoreError(f"no study {name!r} in {describe_storage(url)}; start one with `cifar-tui sweep --trials N`")


def _add_doctor(sub) -> None:
    p = sub.add_parser("doctor", help="versions, TensorFlow's build and devices, GPUs, where data and caches are")
    p.add_argument("--cache-dir", help="feature cache to measure (default: the user cache folder's cifar-tui/features, "
                   "as `doctor` prints it)")
    p.add_argument("--json", action="store_true", help="print the facts as JSON (default: lines of text)")


def cmd_doctor(args) -> int:
    """Exit 1 when something needs fixing (every warning says how)."""
    from ..engine.doctor import doctor, doctor_lines

    facts = doctor(args.cache_dir, args.app_data_dir)
    if args.json:
        print(json.dumps(facts, indent=2))
        return EXIT_FAILED if facts["warnings"] else 0
    for label, value in doctor_lines(facts):
        print(f"{label:14} {value}")
    for warning in facts["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_FAILED if facts["warnings"] else 0


def _add_cache(sub) -> None:
    p = sub.add_parser("cache", help="the feature cache: `cache clear` deletes it (runs recompute what they need)")
    p.add_argument("action", choices=("clear",))
    p.add_argument("--cache-dir", help="the feature cache to clear (default: the user cache folder's "
                   "cifar-tui/features, as `doctor` prints it)")


def cmd_cache(args) -> int:
    from ..engine.doctor import clear_cache
    from ..paths import features_cache_dir

    cache = features_cache_dir(args.cache_dir)
    files, size = clear_cache(cache)
    print(f"removed {files} files ({size / 2**20:.1f} MiB) from {cache}")
    return 0
