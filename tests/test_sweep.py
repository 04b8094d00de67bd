"""`cifar-tui sweep`: real (tiny) trials on the fake CIFAR-10 into an embedded study, read back with plain Optuna."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from conftest import SHARED, tiny_config

from tui_cifar import sweep
from tui_cifar.cli import commands
from tui_cifar.config import ConfigError, make_config
from tui_cifar.runs import reader, store

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# What a seconds-long trial fixes (tiny_config's run, from the real ImageNet weights when ../shared has them, as
# conftest's Keras home does); the space searches the rest.
TINY = {k: v for k, v in tiny_config(Path("unused"), Path("unused"), epochs_fine=1, label_smoothing=0.1,
                                     weights="imagenet" if (SHARED / "make_keras_home.sh").exists() else "none").items()
        if k not in ("data_dir", "runs_dir", "augment", "lr_fine", "dropout")}
# Fine-tuning rates that make the fake data's fine-tuning diverge (1.9e-3 did) are pruned at once (sweep.TrialReporter);
# these tests of the plumbing want every trial complete, so the space stays below them, the default 6e-4 included.
SPACE = {"lr_fine": {"low": 1e-4, "high": 8e-4, "log": True}, "dropout": {"low": 0.1, "high": 0.5}, "augment": [False, True]}


def sweep_cli(*args) -> int:
    """`cifar-tui sweep ...` in this process, restoring the signal handlers it and train_run set."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return commands.main(["sweep", *map(str, args)])
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def tiny_sweep_args(base: Path, data: Path, trials: int, *extra) -> list:
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    return ["--trials", trials, "--space", base / "space.json", "--data-dir", data, "--runs-dir", base / "runs",
            "--set", f"cache_dir={base / 'cache'}", "--pruner", "none", *sets, *extra]


@pytest.fixture(scope="module")
def swept(fake_cifar, tmp_path_factory):
    """Three trials, then the same command asking for four: the rerun continues the study."""
    base = tmp_path_factory.mktemp("sweep")
    (base / "space.json").write_text(json.dumps(SPACE))
    assert sweep_cli(*tiny_sweep_args(base, fake_cifar, 3)) == 0
    first = optuna.load_study(study_name=sweep.DEFAULT_STUDY, storage=f"sqlite:///{base / 'runs' / 'sweep.db'}").trials
    assert sweep_cli(*tiny_sweep_args(base, fake_cifar, 4)) == 0
    return SimpleNamespace(base=base, data=fake_cifar, first=first,
                           study=optuna.load_study(study_name="cifar-tui", storage=f"sqlite:///{base / 'runs' / 'sweep.db'}"))


def test_each_trial_is_a_run_folder_read_back_with_plain_optuna(swept):
    trials = swept.study.trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert [t.number for t in swept.first] == [0, 1, 2]  # the rerun added one trial to the three
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # The first trial is the settings' defaults: the baseline the others must beat.
    defaults = make_config({})
    assert trials[0].params == {"lr_fine": defaults.lr_fine, "dropout": defaults.dropout, "augment": defaults.augment}
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4
    run_dirs = [Path(t.user_attrs["run_dir"]) for t in trials]
    assert len(set(run_dirs)) == 4 and all(d.parent == swept.base / "runs" for d in run_dirs)
    for t, run_dir in zip(trials, run_dirs):
        config = json.loads((run_dir / store.CONFIG_FILE).read_text())
        assert {k: config[k] for k in t.params} == t.params
        assert t.user_attrs["settings"]["image_size"] == TINY["image_size"] and "runs_dir" not in t.user_attrs["settings"]
        assert t.user_attrs["host"] and t.user_attrs["worker"].startswith(t.user_attrs["host"] + ":")
        # Validation only: the run finished without its test report.
        assert store.read_status(run_dir).state == "finished"
        assert not store.has_report(run_dir)
        records, _ = store.read_metrics(run_dir)
        assert "evaluate" not in [r.get("phase") for r in records if r.get("type") == "phase"]
        epochs = reader.epoch_records(records)
        # One intermediate value per epoch: stage 1's steps, then stage 2's after them.
        expected = {e["epoch"] + (TINY["epochs_head"] if e["stage"] == 2 else 0): e["val_accuracy"] for e in epochs}
        assert t.intermediate_values == pytest.approx(expected)
        assert sorted(expected) == [1, 2, 3]
        assert t.value == pytest.approx(max(expected.values()))
        # The feature cache is shared: after the first trial, the original view's features come from it.
        features = next(r for r in records if r["type"] == "features_done")
        assert features["cache_hits"] >= (2 if t.number > 0 else 0)


def test_status_and_finish_score_the_winner_once(swept, capsys):
    capsys.readouterr()
    assert sweep_cli("--status", "--runs-dir", swept.base / "runs") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["trial", "state", "val", "acc", "epochs", "time", "host", "augment", "dropout", "lr_fine"]
    assert len([line for line in out.splitlines() if " complete " in line]) == 4
    best = max(swept.study.trials, key=lambda t: t.value)
    assert f"best: trial {best.number}, val acc {best.value:.4f}" in out

    # the test set from the user's --data-dir, as `evaluate` takes it (a trial's config.json is not obeyed)
    assert sweep_cli("--finish", "--runs-dir", swept.base / "runs", "--data-dir", swept.data) == 0
    run_dir = Path(best.user_attrs["run_dir"])
    report, _ = store.read_report(run_dir)
    assert report["num_test"] == 60
    study = optuna.load_study(study_name="cifar-tui", storage=f"sqlite:///{swept.base / 'runs' / 'sweep.db'}")
    assert study.user_attrs[sweep.FINISHED_ATTR]["test_accuracy"] == report["test_accuracy"]
    assert study.user_attrs[sweep.FINISHED_ATTR]["trial"] == best.number
    others = [Path(t.user_attrs["run_dir"]) for t in study.trials if t.number != best.number]
    assert not any(store.has_report(d) for d in others)  # the test set was read for the winner only


def test_a_rerun_with_other_fixed_settings_is_refused(swept, capsys):
    args = tiny_sweep_args(swept.base, swept.data, 5, "--set", "image_size=48")
    assert sweep_cli(*args) == commands.EXIT_USAGE
    assert "was started with another search space or other fixed settings" in capsys.readouterr().err
    assert len(optuna.load_study(study_name="cifar-tui", storage=f"sqlite:///{swept.base / 'runs' / 'sweep.db'}").trials) == 4


def test_a_pruned_trial_stops_its_run_after_the_epoch(fake_cifar, tmp_path):
    """The pruner's decision after an epoch stops the run cleanly there; the trial is PRUNED with that one value."""
    space = sweep.build_space({**TINY, "data_dir": str(fake_cifar), "runs_dir": str(tmp_path / "runs"),
                               "cache_dir": str(tmp_path / "cache")})
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.1))
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        study.optimize(lambda t: sweep.run_trial(t, space), n_trials=1)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [1]
    run_dir = Path(trial.user_attrs["run_dir"])
    status = store.read_status(run_dir)
    assert status.state == "stopped" and sweep.STOPPED_BY in status.message
    records, _ = store.read_metrics(run_dir)
    assert [(e["stage"], e["epoch"], e["partial"]) for e in reader.epoch_records(records)] == [(1, 1, False)]
    assert not (run_dir / store.STOP_FILE).exists()


def test_the_space_comes_from_the_settings_declarations(tmp_path):
    space = sweep.build_space({"image_size": 160})
    assert "image_size" not in space.dimensions and space.fixed == {"image_size": 160}
    assert set(space.dimensions) == set(sweep.DEFAULT_SPACE) - {"image_size"}
    assert space.dimensions["lr_fine"].log
    narrow = tmp_path / "space.json"
    narrow.write_text(json.dumps({"image_size": {"low": 128, "high": 192, "step": 32}, "fine_tune_blocks": 3,
                                  "backbone": ["mobilenetv2", "mobilenetv2-0.35"]}))
    space = sweep.build_space({}, narrow)
    assert space.fixed == {"fine_tune_blocks": 3} and space.dimensions["backbone"].choices == ("mobilenetv2", "mobilenetv2-0.35")
    assert space.dimensions["image_size"].describe() == "128..192 step 32"
    for bad, message in [({"image_size": {"low": 16, "high": 64}}, "image_size must be between 32 and 600"),
                         ({"lr_fine": {"low": 1e-3}}, "needs both low and high"),
                         ({"backbone": ["vgg16"]}, "unknown backbone 'vgg16'"),
                         ({"learning_rate": [1]}, "unknown setting 'learning_rate'"),
                         ({"runs_dir": ["a", "b"]}, "says where a worker runs"),
                         ({"augment": {"low": 0, "high": 1}}, "augment is not a number")]:
        narrow.write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=message):
            sweep.build_space({}, narrow)
    assert sweep.parse_set(["image_size=160", "augment=true", "backbone=mobilenetv2"]) == {
        "image_size": 160, "augment": True, "backbone": "mobilenetv2"}
    with pytest.raises(ConfigError, match="takes name=value"):
        sweep.parse_set(["image_size"])
    assert [sweep.parse_budget(t) for t in ("30m", "2h", "90s", "45")] == [1800, 7200, 90, 45]
    for bad in ("soon", "-5m", "0", "inf"):
        with pytest.raises(ConfigError, match="--budget takes a time"):
            sweep.parse_budget(bad)


def test_a_damaged_study_file_or_bad_space_is_one_line(tmp_path, capsys):
    (tmp_path / "sweep.db").write_text("not a database")
    assert sweep_cli("--status", "--runs-dir", tmp_path) == commands.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.strip() == f"cifar-tui: cannot open the study storage sqlite:///{tmp_path / 'sweep.db'}: file is not a database"
    assert sweep_cli("--status", "--runs-dir", tmp_path / "none") == commands.EXIT_FAILED
    assert "no study 'cifar-tui'" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()  # looking creates nothing
    (tmp_path / "space.json").write_text('{"image_size": {"low": 16, "high": 64}}')
    assert sweep_cli("--trials", "1", "--space", tmp_path / "space.json", "--runs-dir", tmp_path / "r") == commands.EXIT_USAGE
    assert "image_size must be between 32 and 600, not 16" in capsys.readouterr().err
    assert sweep_cli("--runs-dir", tmp_path / "r") == commands.EXIT_USAGE  # neither --trials nor --budget
    assert sweep_cli("--trials", "0", "--runs-dir", tmp_path / "r") == commands.EXIT_USAGE
    assert not (tmp_path / "r").exists()


def test_ctrl_c_stops_the_trial_and_the_worker(fake_cifar, tmp_path):
    """SIGINT in the middle of a trial's epoch lets that epoch finish (its value reaches the study), then stops
    the run; the trial is failed, the worker ends."""
    import os

    space = sweep.build_space({**TINY, "data_dir": str(fake_cifar), "runs_dir": str(tmp_path / "runs"),
                               "cache_dir": str(tmp_path / "cache")})
    storage = sweep.open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    study = sweep.open_study(storage, "ctrl-c", space, "none")
    said: list[str] = []
    interrupted: list[tuple[int, int]] = []

    def interrupt_at_first_epoch(record):
        if record.get("type") == "batch" and record["steps"] and record["batch"] < record["steps"] and not said:
            said.append("interrupted")
            interrupted.append((record["stage"], record["epoch"]))  # mid-epoch: batches of it are left
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C in the worker's terminal sends

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert sweep.run_worker(study, space, 3, None, [interrupt_at_first_epoch], say=said.append) == "stopped"
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    assert "sweep stopped: stopped by SIGINT" in said[-1]
    trial = optuna.load_study(study_name="ctrl-c", storage=f"sqlite:///{tmp_path / 'sweep.db'}").trials[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    run_dir = Path(trial.user_attrs["run_dir"])
    assert store.read_status(run_dir).state == "stopped"
    records, _ = store.read_metrics(run_dir)
    epochs = reader.epoch_records(records)
    assert [(e["stage"], e["epoch"], e["partial"]) for e in epochs][-1] == (*interrupted[0], False)  # finished
    assert max(trial.intermediate_values) == sweep.epoch_step(epochs[-1], space.config(trial.params))  # reported


def test_watch_opens_the_apps_sweep_screen_on_the_storage(monkeypatch, tmp_path):
    import tui_cifar.tui.app as app_module

    opened = {}
    monkeypatch.setattr(app_module, "run_app", lambda runs_dir, data_dir, **kw: opened.update(kw, runs_dir=runs_dir) or 0)
    url = "postgresql://me@db.example/cifar"
    assert sweep_cli("--watch", "--storage", url, "--study", "big", "--runs-dir", tmp_path) == 0
    assert opened == {"screen": "sweep", "sweep_storage": url, "sweep_study": "big", "runs_dir": tmp_path}


def test_a_fine_tuning_that_falls_to_chance_is_pruned_at_once(tmp_path):
    """A stage-2 epoch below half the head's best has diverged: pruned whatever the pruner (the full-data
    sweep's trial at lr 9.3e-4 sat at 10% for every fine-tuning epoch), a mere dip is not."""
    config = make_config({"epochs_head": 2, "epochs_fine": 3})
    for fine_tuned, diverged in ((0.6, False), (0.1, True)):
        study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
        run_dir = tmp_path / str(fine_tuned)
        run_dir.mkdir()
        reporter = sweep.TrialReporter(study.ask(), config, run_dir)
        for stage, epoch, value in ((1, 1, 0.80), (1, 2, 0.85), (2, 1, fine_tuned)):
            reporter({"type": "epoch", "stage": stage, "epoch": epoch, "val_accuracy": value, "partial": False})
        assert reporter.diverged is diverged
        assert reporter.pruned_at == (3 if diverged else None)
        assert (run_dir / store.STOP_FILE).exists() is diverged
        if diverged:
            assert "fine-tuning diverged" in (run_dir / store.STOP_FILE).read_text()


def test_the_last_epoch_is_never_pruned(tmp_path):
    """Pruning a trial at its last epoch saves nothing and labels a whole trial pruned (full-data trial 11 was)."""
    config = make_config({"epochs_head": 2, "epochs_fine": 2})
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.99))
    reporter = sweep.TrialReporter(study.ask(), config, tmp_path)
    for stage, epoch in ((1, 1), (1, 2), (2, 1)):
        reporter({"type": "epoch", "stage": stage, "epoch": epoch, "val_accuracy": 0.9, "partial": False})
    assert reporter.pruned_at == 1  # below the threshold from the first step on
    head_only = tmp_path / "head-only"
    head_only.mkdir()
    reporter = sweep.TrialReporter(study.ask(), make_config({"epochs_head": 1, "epochs_fine": 0}), head_only)
    reporter({"type": "epoch", "stage": 1, "epoch": 1, "val_accuracy": 0.9, "partial": False})
    assert reporter.pruned_at is None and not (head_only / store.STOP_FILE).exists()
