"""`cifar-tui` as a user runs it: subprocesses, pipes (not a terminal), a config file, the fake CIFAR-10.

With ../shared beside the project the model is trained from the real MobileNetV2 ImageNet
weights and must classify the fake classes; without it, random weights check the plumbing only.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import SHARED, tiny_config
from fixtures.tui_support import FINISHED, GARBLED, copy_runs
from PIL import Image

from tui_cifar.cli.commands import _apply_global_dirs, _config_from_args, build_parser
from tui_cifar.engine.backbones import BACKBONES
from tui_cifar.engine.data import CLASS_NAMES, load_cifar10

ANSI = re.compile(r"\x1b\[")
EXE = Path(sys.executable).with_name("cifar-tui")
CLI = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "tui_cifar"]
HAVE_WEIGHTS = (SHARED / "make_keras_home.sh").exists()


def cli_env(keras_home: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR")}
    env.update(KERAS_HOME=str(keras_home), XDG_CACHE_HOME=str(cache), TF_CPP_MIN_LOG_LEVEL="2", COLUMNS="200")
    return env


def cifar_tui(*args, env, timeout=300, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def trained(fake_cifar, tmp_path_factory, request):
    """One `cifar-tui train --config FILE` run, shared by the tests below."""
    base = tmp_path_factory.mktemp("cli")
    keras_home = request.getfixturevalue("keras_home") if HAVE_WEIGHTS else base / "keras_home"
    env = cli_env(keras_home, base / "xdg_cache")
    values = tiny_config(fake_cifar, base / "runs", cache_dir=str(base / "features"), epochs_fine=2, limit_test=40)
    if HAVE_WEIGHTS:
        values.update(weights="imagenet", epochs_head=8, lr_head=0.01, lr_fine=1e-5, seed=5)
    config_file = base / "config.json"
    config_file.write_text(json.dumps(values))
    started = time.perf_counter()
    out = cifar_tui("train", "--config", config_file, "--epochs-fine", "1", env=env, cwd=base)
    assert out.returncode == 0, out.stdout + out.stderr
    runs = sorted((base / "runs").iterdir())
    assert len(runs) == 1
    return SimpleNamespace(base=base, env=env, out=out, run_dir=runs[0], config_file=config_file, values=values,
                           seconds=time.perf_counter() - started)


def test_backbones_lists_them_all(tmp_path):
    out = cifar_tui("backbones", env=cli_env(tmp_path, tmp_path))
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(BACKBONES)
    for spec, line in zip(BACKBONES.values(), lines):
        assert spec.label in line and f"{spec.default_size}px" in line


def test_a_bad_config_file_is_a_usage_error_naming_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs_headd = 3\n")
    out = cifar_tui("train", "--config", bad, env=cli_env(tmp_path, tmp_path))
    assert out.returncode == 2
    assert "epochs_headd" in out.stderr and "Traceback" not in out.stderr


def test_train_prints_plain_lines_and_fills_the_run_folder(trained):
    out, run_dir = trained.out, trained.run_dir
    assert not ANSI.search(out.stdout) and not ANSI.search(out.stderr)
    lines = out.stdout.splitlines()
    assert lines[0] == f"run folder: {run_dir}"
    epoch_lines = [line for line in lines if re.match(r"stage \d epoch \d+/\d+: loss ", line)]
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [(r["stage"], r["epoch"]) for r in logged if r["type"] == "epoch"]  # early stopping may cut stage 1
    assert [tuple(map(int, re.match(r"stage (\d) epoch (\d+)", line).groups())) for line in epoch_lines] == epochs
    assert {stage for stage, _ in epochs} == {1, 2}
    assert any(line.startswith("  features ") for line in lines)
    assert re.search(r"^run finished: test accuracy \d\.\d{4}", out.stdout, re.M)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["epochs_fine"] == 1  # the flag overrode the file
    assert config["epochs_head"] == trained.values["epochs_head"]  # the file overrode the default
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
    for name in ("model.keras", "report.json", "metrics.jsonl"):
        assert (run_dir / name).is_file()
    if HAVE_WEIGHTS:
        assert json.loads((run_dir / "report.json").read_text())["test_accuracy"] >= 0.6


def test_runs_as_a_table_and_as_json(trained):
    runs_dir = trained.base / "runs"
    table = cifar_tui("runs", "--runs-dir", runs_dir, env=trained.env)
    assert table.returncode == 0 and not ANSI.search(table.stdout)
    assert trained.run_dir.name in table.stdout
    assert "finished" in table.stdout and "mobilenetv2-0.35" in table.stdout
    report = json.loads((trained.run_dir / "report.json").read_text())
    assert f"{report['test_accuracy']:.4f}" in table.stdout

    listed = json.loads(cifar_tui("runs", "--runs-dir", runs_dir, "--json", env=trained.env).stdout)
    assert len(listed) == 1
    run = listed[0]
    assert run["path"] == str(trained.run_dir) and run["name"] == trained.run_dir.name
    assert run["state"] == "finished" and run["backbone"] == "mobilenetv2-0.35" and run["image_size"] == 32
    assert run["test_accuracy"] == report["test_accuracy"]
    assert run["best_val_accuracy"] == report["best_val_accuracy"]
    assert run["problems"] == []

    empty = cifar_tui("runs", "--runs-dir", trained.base / "none", env=trained.env)
    assert empty.returncode == 0 and "no runs" in empty.stdout


def test_evaluate_human_json_and_recompute(trained, fake_cifar):
    run_dir = trained.run_dir
    report = json.loads((run_dir / "report.json").read_text())
    human = cifar_tui("evaluate", run_dir, env=trained.env)
    assert human.returncode == 0, human.stderr
    assert not ANSI.search(human.stdout)
    assert f"test accuracy {report['test_accuracy']:.4f}" in human.stdout
    for name in CLASS_NAMES:
        assert name in human.stdout

    as_json = cifar_tui("evaluate", run_dir, "--json", env=trained.env)
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == report

    before = (run_dir / "report.json").stat().st_mtime_ns
    # the data folder is the user's flag: a run's config.json is never obeyed (tests/test_foreign_runs.py)
    again = cifar_tui("--data-dir", fake_cifar, "evaluate", run_dir, "--json", "--recompute", env=trained.env)
    assert again.returncode == 0, again.stderr
    recomputed = json.loads(again.stdout)
    assert (run_dir / "report.json").stat().st_mtime_ns != before  # scored again, and saved
    assert json.loads((run_dir / "report.json").read_text()) == recomputed
    for key in ("test_accuracy", "confusion_matrix", "per_class", "most_confused", "num_test"):
        assert recomputed[key] == report[key], key


@pytest.fixture(scope="module")
def pictures(trained, fake_cifar):
    """Fake test images, saved 3x larger as PNG files, one per class; their labels by file name."""
    _, _, x_test, y_test, _ = load_cifar10(fake_cifar)
    folder = trained.base / "pictures"
    folder.mkdir()
    labels = {}
    for k in range(10):
        i = int(np.flatnonzero(y_test == k)[0])
        path = folder / f"img_{k}.png"
        Image.fromarray(x_test[i]).resize((96, 96), Image.NEAREST).save(path)
        labels[path.name] = CLASS_NAMES[k]
    return folder, labels


def test_predict_files_as_json(trained, pictures):
    folder, labels = pictures
    files = [folder / "img_0.png", folder / "img_3.png", folder / "img_7.png"]
    out = cifar_tui("predict", trained.run_dir, *files, "--top-k", "3", "--json", env=trained.env)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert [r["path"] for r in results] == [str(f) for f in files]
    for r in results:
        assert r["error"] is None and len(r["top"]) == 3
        probs = [t["probability"] for t in r["top"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
        assert all(t["class"] in CLASS_NAMES for t in r["top"])
        assert len({t["class"] for t in r["top"]}) == 3
    if HAVE_WEIGHTS:
        right = sum(r["top"][0]["class"] == labels[Path(r["path"]).name] for r in results)
        assert right >= 2, results


def test_predict_a_folder_to_csv_and_plain_lines(trained, pictures):
    folder, labels = pictures
    table = trained.base / "predictions.csv"
    out = cifar_tui("predict", trained.run_dir, folder, "--csv", table, env=trained.env)
    assert out.returncode == 0, out.stderr
    assert not ANSI.search(out.stdout)
    lines = out.stdout.splitlines()
    assert len(lines) == 10
    for line in lines:
        path, _, rest = line.partition(": ")
        assert Path(path).name in labels
        assert len(re.findall(r"[a-z]+ \d+\.\d%", rest)) == 3  # the default --top-k
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10
    right = 0
    for row in rows:
        probs = [float(row[c]) for c in CLASS_NAMES]
        assert sum(probs) == pytest.approx(1, abs=0.01)
        assert row["prediction"] == CLASS_NAMES[int(np.argmax(probs))]
        assert float(row["confidence"]) == pytest.approx(max(probs), abs=1e-4)
        assert row["error"] == ""
        right += row["prediction"] == labels[Path(row["path"]).name]
    if HAVE_WEIGHTS:
        assert right >= 6, rows


def test_train_detach_returns_at_once_and_the_run_finishes(trained):
    started = time.perf_counter()
    notified = trained.base / "notified.txt"
    out = cifar_tui("train", "--config", trained.config_file, "--detach", "--epochs-head", "1", "--epochs-fine", "1",
                    "--runs-dir", trained.base / "detached", "--notify", f"env | grep ^CIFAR_TUI_ | sort > {notified}",
                    env=trained.env, cwd=trained.base)
    elapsed = time.perf_counter() - started
    assert out.returncode == 0, out.stderr
    assert not ANSI.search(out.stdout + out.stderr)
    run_dir = Path(out.stdout.strip())
    assert out.stdout.strip().splitlines() == [str(run_dir)]  # the run folder, alone, for scripts
    assert run_dir.parent == trained.base / "detached" and (run_dir / "config.json").is_file()
    assert elapsed < 10, f"--detach took {elapsed:.1f}s: it should not wait for TensorFlow"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "running" and status["pid"] != os.getpid()

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = json.loads((run_dir / "status.json").read_text())["state"]
        if state != "running":
            break
        time.sleep(1)
    log = (run_dir / "train.log").read_text()
    assert state == "finished", log
    assert "run finished: test accuracy" in log and not ANSI.search(log)
    assert (run_dir / "model.keras").is_file() and (run_dir / "report.json").is_file()
    listed = json.loads(cifar_tui("runs", "--runs-dir", run_dir.parent, "--json", env=trained.env).stdout)
    assert [r["state"] for r in listed] == ["finished"]
    # --notify: the detached process ran the command with the run's outcome once the run ended
    while time.monotonic() < deadline and not (notified.exists() and notified.read_text().endswith("\n")):
        time.sleep(0.5)  # the shell creates the file before sort writes to it
    env = dict(line.split("=", 1) for line in notified.read_text().splitlines())
    report = json.loads((run_dir / "report.json").read_text())
    assert env["CIFAR_TUI_STATE"] == "finished" and env["CIFAR_TUI_RUN"] == str(run_dir.resolve())
    assert env["CIFAR_TUI_TEST_ACCURACY"] == f"{report['test_accuracy']:.4f}"


# --- the headless commands at a terminal's width, run names, the runs folder, help -----------------------


@pytest.fixture
def fixture_runs(tmp_path):
    """The fixture runs folder (no TensorFlow needed to read it), with a run of a long name beside them."""
    runs = copy_runs(tmp_path / "runs")
    shutil.copytree(runs / FINISHED, runs / f"{FINISHED}-{LONG}")
    return runs


LONG = "augment-off-lr-3e-4-seed-7-longer"


def test_runs_prints_whole_run_names_at_80_columns(fixture_runs, tmp_path):
    out = cifar_tui("runs", "--runs-dir", fixture_runs, env={**cli_env(tmp_path, tmp_path), "COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    assert max(len(line) for line in out.stdout.splitlines()) <= 80
    for name in (FINISHED, GARBLED, f"{FINISHED}-{LONG}"):
        assert name in out.stdout, out.stdout


def test_a_bare_run_name_is_found_in_the_runs_folder(fixture_runs, tmp_path):
    env = cli_env(tmp_path, tmp_path)
    here = cifar_tui("evaluate", FINISHED, "--json", env=env, cwd=tmp_path)  # ./runs, the default
    assert here.returncode == 0, here.stderr
    assert json.loads(here.stdout)["test_accuracy"] == 0.76
    elsewhere = cifar_tui("--runs-dir", fixture_runs, "evaluate", FINISHED, "--json", env=env, cwd=tmp_path / "runs" / GARBLED)
    assert elsewhere.returncode == 0 and json.loads(elsewhere.stdout) == json.loads(here.stdout)
    missing = cifar_tui("evaluate", "no-such-run", env=env, cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.strip() == ("cifar-tui: no-such-run: no such run folder here or in the runs folder runs; "
                                      "`cifar-tui runs` lists the runs")


def test_evaluate_at_80_columns_shows_every_column_of_the_confusion_matrix(fixture_runs, tmp_path):
    report = json.loads((fixture_runs / FINISHED / "metrics.json").read_text())
    for columns in (80, 50):
        out = cifar_tui("evaluate", fixture_runs / FINISHED, env={**cli_env(tmp_path, tmp_path), "COLUMNS": str(columns)})
        assert out.returncode == 0, out.stderr
        assert max(len(line) for line in out.stdout.splitlines()) <= columns
        shown: dict[str, list[int]] = {name: [] for name in CLASS_NAMES}
        for line in out.stdout.splitlines():
            name, *cells = line.split() or [""]
            if name in shown and cells and all(c.isdigit() for c in cells):
                shown[name] += map(int, cells)
        assert [shown[name] for name in CLASS_NAMES] == report["confusion_matrix"], out.stdout


def test_runs_dir_before_the_command_is_honoured_or_refused(fixture_runs, tmp_path):
    env = cli_env(tmp_path, tmp_path)
    listed = cifar_tui("--runs-dir", fixture_runs, "runs", "--json", env=env, cwd=tmp_path / "runs" / GARBLED)
    assert listed.returncode == 0, listed.stderr
    assert {r["name"] for r in json.loads(listed.stdout)} == {FINISHED, GARBLED, f"{FINISHED}-{LONG}"}
    twice = cifar_tui("--runs-dir", fixture_runs, "runs", "--runs-dir", tmp_path, env=env)
    assert twice.returncode == 2 and "--runs-dir is given twice" in twice.stderr
    assert cifar_tui("--runs-dir", fixture_runs, "runs", "--runs-dir", fixture_runs, env=env).returncode == 0
    refused = cifar_tui("--runs-dir", fixture_runs, "backbones", env=env)
    assert refused.returncode == 2 and "--runs-dir does not apply to `backbones`" in refused.stderr


def test_train_takes_the_runs_folder_given_before_the_command(tmp_path):
    args = build_parser().parse_args(["--runs-dir", str(tmp_path / "elsewhere"), "train", "--epochs-head", "1"])
    _apply_global_dirs(args)
    assert _config_from_args(args).runs_dir == str(tmp_path / "elsewhere")


def test_evaluate_takes_the_data_folder_before_or_after_the_command(tmp_path):
    """`evaluate RUN --recompute --data-dir D` as `train` takes it: refused with a usage error before (the session
    that scored the sweep's defaults typed it there); the global form still works, and the two must agree."""
    from tui_cifar.config import ConfigError

    for argv in (["evaluate", "run", "--recompute", "--data-dir", "d"], ["--data-dir", "d", "evaluate", "run"]):
        args = build_parser().parse_args(argv)
        _apply_global_dirs(args)
        assert args.data_dir == "d", argv
    args = build_parser().parse_args(["--data-dir", "d", "evaluate", "run", "--data-dir", "e"])
    with pytest.raises(ConfigError, match="given twice"):
        _apply_global_dirs(args)


def test_every_flag_says_what_it_does_and_its_default():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in [("", parser), *commands.items()]:
        for action in sub._actions:
            if not action.option_strings or action.help in (argparse.SUPPRESS,) or isinstance(
                    action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            shown = sub._get_formatter()._expand_help(action) if action.help else ""
            assert shown and "default" in shown, f"{name} {action.option_strings[0]}: {shown!r}"
            if action.default not in (None, False):
                assert str(action.default) in shown, f"{name} {action.option_strings[0]}: {shown!r}"
