"""The run-folder contract (tui_cifar/runs/records.py): a malformed run folder is "unreadable: why", never a crash.

Hypothesis writes run folders whose config.json, status.json, metrics.jsonl and report.json hold
whatever a careless or hostile copy could (deep nesting, 1e400, NaN, huge integers, lists where
strings belong, bytes that are not UTF-8, fields of every wrong type); every reader must list the run
with its problems and leave the good run beside it exactly as it was.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import typing
from pathlib import Path

import numpy as np
import pytest
from faultkit import cli_env, run_cli
from fixtures.tui_support import FINISHED, copy_runs
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tui_cifar.cli.console import plain_reporter
from tui_cifar.config import TrainConfig
from tui_cifar.runs import compare, reader, records, rows, store
from tui_cifar.runs.estimate import estimate_run

FIXTURE_RUN = Path(__file__).parent / "fixtures" / "runs" / FINISHED

# --- what a hostile run folder holds -------------------------------------------------------------

# Numbers as raw JSON text: what json.dumps never writes but a file can hold.
RAW_NUMBERS = ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "9" * 30, "-" + "9" * 5000, "1" * 4400, "-1",
               "0.5", "1e-400", "true", "null"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)


@st.composite
def hostile_value(draw) -> str:
    """A JSON value as text, valid JSON or not."""
    kind = draw(st.sampled_from(["value", "raw", "deep", "wrong"]))
    if kind == "value":
        return json.dumps(draw(json_values))
    if kind == "raw":
        return draw(st.sampled_from(RAW_NUMBERS))
    if kind == "deep":
        depth = draw(st.sampled_from([33, 200, 5000, 100_000]))
        return "[" * depth + "]" * depth
    return draw(st.sampled_from(['"a', "[1,", "{", "", "'x'", "[[[", '{"a" 1}']))


@st.composite
def hostile_object(draw, template: dict) -> bytes:
    """``template`` with some fields replaced by hostile values, or bytes that are no JSON object at all."""
    kind = draw(st.sampled_from(["fields", "fields", "fields", "value", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64)) + draw(st.sampled_from([b"", b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80"]))
    if kind == "value":
        return draw(hostile_value()).encode()
    keys = list(template) + ["extra"]
    chosen = draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True))
    values = {key: draw(hostile_value()) for key in chosen}
    body = {k: f"@@{k}@@" for k in chosen} | {k: v for k, v in template.items() if k not in chosen}
    text = json.dumps(body)
    for key, value in values.items():
        text = text.replace(json.dumps(f"@@{key}@@"), value)
    return text.encode()


def _templates() -> dict[str, dict]:
    config = json.loads((FIXTURE_RUN / "config.json").read_text())
    status = {"state": "finished", "pid": 4242, "host": "elsewhere", "started_at": "2025-03-01T09:30:00+00:00",
              "updated_at": "2025-03-01T10:00:00+00:00", "message": "done", "stage": 2, "version": 1}
    report = {"test_accuracy": 0.76, "test_loss": 0.7, "num_test": 4, "classes": ["a", "b"],
              "per_class": {"a": {"precision": 1.0, "recall": 0.5, "f1": 0.6, "support": 2, "roc_auc": None}},
              "macro_avg": {"precision": 1.0, "recall": 0.5, "f1": 0.6, "support": 4, "roc_auc": 0.9},
              "confusion_matrix": [[1, 1], [0, 2]], "roc_curves": {"a": {"fpr": [0, 1], "tpr": [0, 1]}},
              "most_confused": [{"true": "a", "predicted": "b", "count": 1}]}
    return {"config.json": config, "status.json": status, "report.json": report}


TEMPLATES = _templates()
GOOD_RECORDS = [json.loads(line) for line in (FIXTURE_RUN / "metrics.jsonl").read_text().splitlines()
                if line.strip().endswith("}")][:60]


@st.composite
def hostile_log(draw) -> bytes:
    """The fixture run's records with a few of them made hostile (a field replaced, or the whole line)."""
    lines = [json.dumps(r, allow_nan=True).encode() for r in GOOD_RECORDS]
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        whole = draw(st.booleans())
        lines[i] = draw(hostile_value()).encode() if whole else draw(hostile_object(GOOD_RECORDS[i]))
        lines[i] = lines[i].replace(b"\n", b" ")
    return b"\n".join(lines) + b"\n"


@st.composite
def hostile_run(draw) -> dict[str, bytes]:
    """The files of one run folder, at least one of them hostile."""
    files = {name: json.dumps(template).encode() for name, template in TEMPLATES.items()}
    files["metrics.jsonl"] = (FIXTURE_RUN / "metrics.jsonl").read_bytes()
    for name in draw(st.lists(st.sampled_from(sorted(files)), min_size=1, max_size=4, unique=True)):
        files[name] = draw(hostile_log()) if name == "metrics.jsonl" else draw(hostile_object(TEMPLATES[name]))
    return files


def _write(run_dir: Path, files: dict[str, bytes]) -> Path:
    run_dir.mkdir(parents=True)
    for name, data in files.items():
        (run_dir / name).write_bytes(data)
    return run_dir


def _read_everything(run_dir: Path) -> None:
    """What the CLI, the app and the exports read of one run: none of it may raise."""
    progress, _ = reader.read_progress(run_dir)
    progress.epochs_total, progress.eta_seconds(), progress.epoch_series(progress.metric_names or None)
    progress.phase_label(), progress.lr, progress.stage_boundary, progress.best_val_accuracy, progress.images_per_sec
    progress.elapsed(), progress.planned_epochs(1), progress.main_metric
    report = plain_reporter(open("/dev/null", "w"))
    for record in store.read_metrics(run_dir)[0]:
        report(record)
    rows.write_metrics_csv(run_dir, run_dir.parent / f"{run_dir.name}-metrics.csv")
    store.read_report(run_dir)
    compare.differing_settings([compare.load_compared(run_dir), compare.load_compared(FIXTURE_RUN)])


# --- the property ----------------------------------------------------------------------------------

GOOD_SUMMARY = reader.summarize_run(FIXTURE_RUN)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=hostile_run())
# found by this property: a setting named "\n" in config.json broke its problem's line in two
@example(files={**{name: json.dumps(template).encode() for name, template in TEMPLATES.items()},
                "metrics.jsonl": (FIXTURE_RUN / "metrics.jsonl").read_bytes(), "config.json": b'{"\\n": null}'})
def test_a_malformed_run_folder_never_takes_down_the_others(files):
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        shutil.copytree(FIXTURE_RUN, runs / FINISHED)
        bad = _write(runs / "zz-hostile", files)
        summaries = {s.name: s for s in reader.list_runs(runs)}
        assert set(summaries) == {FINISHED, bad.name}
        good = summaries[FINISHED]
        assert (good.state, good.best_val_accuracy, good.test_accuracy, good.problems) == (
            GOOD_SUMMARY.state, GOOD_SUMMARY.best_val_accuracy, GOOD_SUMMARY.test_accuracy, GOOD_SUMMARY.problems)
        hostile = summaries[bad.name]
        assert hostile.state in typing.get_args(records.ShownState)
        assert hostile.backbone is None or isinstance(hostile.backbone, str)
        assert hostile.image_size is None or isinstance(hostile.image_size, int)
        assert all(isinstance(p, str) and "\n" not in p for p in hostile.problems)
        assert len(rows.runs_rows(runs)) == 2
        estimate_run(TrainConfig(), cache_dir=Path(tmp) / "cache", runs_dir=runs)
        _read_everything(bad)


# --- named cases ---------------------------------------------------------------------------------

NAMED = {
    "deep-config": ({"config.json": b"[" * 100_000}, "config.json is unreadable (nested more than 32 levels deep)"),
    "huge-number-pid": ({"status.json": b'{"state": "running", "pid": 1e400}'}, "status.json has invalid pid"),
    "pid-minus-one": ({"status.json": b'{"state": "running", "pid": -1}'}, "status.json has invalid pid"),
    "huge-int-pid": ({"status.json": b'{"state": "running", "pid": 999999999999999}'}, "status.json has invalid pid"),
    "list-backbone": ({"config.json": b'{"backbone": ["x"], "image_size": 96}'}, "config.json is unreadable (invalid backbone)"),
    "nan-image-size": ({"config.json": b'{"backbone": "x", "image_size": NaN}'}, "config.json is unreadable (invalid image_size)"),
    "not-utf8": ({"status.json": b'{"state": "\xff"}'}, "status.json is unreadable (not UTF-8 text: byte 11)"),
    "metrics-wrong-types": ({"metrics.jsonl": b'{"type": "epoch", "stage": [1], "epoch": 1e400, "val_accuracy": 0.5}\n'},
                            "metrics.jsonl line 1 is garbled and was skipped (epoch record with invalid stage, epoch)"),
    "metrics-deep": ({"metrics.jsonl": b'{"type": "batch", "loss": ' + b"[" * 5000 + b"]" * 5000 + b"}\n"},
                     "metrics.jsonl line 1 is garbled and was skipped"),
    "report-ragged": ({"report.json": b'{"test_accuracy": 0.5, "confusion_matrix": [[1, 2], [3]]}'},
                      "report.json is unreadable (the confusion matrix is not classes x classes)"),
    "report-string-accuracy": ({"report.json": b'{"test_accuracy": "high"}'}, "report.json is unreadable (invalid test_accuracy)"),
}


def _named_runs(runs: Path) -> Path:
    copy_runs(runs)
    for name, (files, _) in NAMED.items():
        base = {"status.json": b'{"state": "finished"}', "config.json": b'{"backbone": "mobilenetv2", "image_size": 96}'}
        _write(runs / name, base | files)
    return runs


@pytest.mark.parametrize("name", NAMED)
def test_named_malformed_files_are_said_in_one_line(tmp_path, name):
    runs = _named_runs(tmp_path / "runs")
    summary = {s.name: s for s in reader.list_runs(runs)}[name]
    reason = NAMED[name][1]
    assert reason in summary.problems or any(p.startswith(reason) for p in summary.problems), summary.problems
    _read_everything(runs / name)


def test_a_file_over_the_size_limit_is_not_read(tmp_path, monkeypatch):
    run = tmp_path / "runs" / "big"
    _write(run, {"status.json": b'{"state": "finished", "message": "' + b"x" * 2000 + b'"}'})
    from tui_cifar import files

    monkeypatch.setattr(files.read_json, "__defaults__", (1000,))
    assert store.read_status(run).problem == "status.json is unreadable (longer than 1000 bytes)"


def test_cifar_tui_runs_lists_every_run_and_says_why_the_bad_ones_are_unreadable(tmp_path):
    runs = _named_runs(tmp_path / "runs")
    result = run_cli("runs", "--runs-dir", runs, timeout=120, env=cli_env(COLUMNS="250"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    for name, (_, reason) in NAMED.items():
        assert any(f" {name} " in line for line in result.stdout.splitlines()), name  # a row of the table
        assert f"{name}: {reason}" in result.stderr, name
    assert FINISHED in result.stdout and "0.7600" in result.stdout
    listed = json.loads(run_cli("runs", "--runs-dir", runs, "--json", timeout=120).stdout)
    assert len(listed) == len(NAMED) + 2
    csv_path = tmp_path / "runs.csv"
    assert run_cli("runs", "--runs-dir", runs, "--csv", csv_path, timeout=120).returncode == 0
    assert len(csv_path.read_text().splitlines()) == len(NAMED) + 3
    result = run_cli("export", runs / "list-backbone", "--csv", tmp_path / "m.csv", timeout=120)
    assert result.returncode == 0, result.stderr
    result = run_cli("export", runs / "metrics-deep", "--tensorboard", tmp_path / "tb", timeout=180)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]


async def test_the_runs_screen_lists_a_malformed_run_beside_the_others(tmp_path):
    from fixtures.tui_support import make_app, static_text, wait_for
    from textual.widgets import DataTable

    runs = _named_runs(tmp_path / "runs")
    app = make_app(runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.current_mode == "runs" and app.screen.loaded, what="runs listed")
        table = app.screen.query_one("#runs-table", DataTable)
        assert table.row_count == len(NAMED) + 2
        table.move_cursor(row=table.get_row_index(str(runs / "deep-config")))
        await pilot.pause()
        assert "config.json is unreadable (nested more than 32 levels deep)" in static_text(app, "#run-detail")


# --- the contract itself -------------------------------------------------------------------------

def test_states_are_declared_once():
    assert store.STATES == typing.get_args(records.RunState) == ("running", "finished", "stopped", "failed")
    assert set(records.ENDED_STATES) == {"finished", "stopped", "failed", "killed"}
    from tui_cifar.tui.screens.runs_screen import STATE_STYLES

    assert set(STATE_STYLES) == set(records.SHOWN_STATES)


def test_every_record_kind_a_writer_builds_passes_the_decoder():
    built = [
        records.run_start_record({"backbone": "x"}, "CPU", 1234, versions={"keras": "3"}),
        records.run_start_record({}, "CPU", 1234, resume=True),
        records.phase_record("load_data", "loading"), records.data_record("here", 10, 2, 3),
        records.progress_record("extract_features", 1, 2),
        records.features_done_record(12, 1.5, 0, "keras", None, ["k"], 8.0),
        records.stage_start_record(1, 3, 10, 1e-3, 100),
        records.batch_record({"loss": float("nan"), "accuracy": 0.5}, 1, 1, 5, 10),
        records.epoch_record({"loss": float("inf"), "val_accuracy": 0.5}, 1, 1, 3, 1e-3, 100.0, 2.0, False, {"rss": 1}),
        records.stage_end_record(1, 3.5), records.run_end_record("finished", "done", 12.0),
        records.telemetry_record(150.0, 16, 2**30, gpus=[{"index": 0, "name": "GPU", "util": 80.0, "mem_used": 1,
                                                          "mem_total": 2, "power_w": 300.0}]),
        records.telemetry_record(None, None, None, gpu_problem="no GPU telemetry"),
    ]
    assert {r["type"] for r in built} == set(records.RECORD_TYPES)
    for record in built:
        line = json.dumps(record, allow_nan=True).encode()
        assert records.decode_line(line) == json.loads(line)


def test_bookkeeping_keys_are_one_list():
    epoch = records.epoch_record({"loss": 1.0, "auc": 0.5}, 1, 1, 3, 1e-3, 100.0, 2.0, False, None, wall_time=3.0)
    assert reader.epoch_metric_names([epoch]) == ["auc"]  # neither lr nor images_per_sec nor epoch_time
    assert set(records.scalar_items(epoch)) == {"loss", "auc", "lr", "images_per_sec", "epoch_time"}  # TensorBoard's


def test_predictions_are_read_without_pickles(tmp_path):
    good = tmp_path / "good.npz"
    records.write_predictions(good, np.array([1, 0]), np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([5, 7]))
    preds, problem = records.read_predictions(good)
    assert problem is None and preds["y_pred"].tolist() == [1, 0] and preds["test_index"].tolist() == [5, 7]
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, y_true=np.array([object()], dtype=object), y_prob=np.zeros((1, 2)), test_index=np.zeros(1, int))
    preds, problem = records.read_predictions(pickled)
    assert preds is None and problem.startswith("pickled.npz is unreadable") and "pickle" in problem
    (tmp_path / "garbage.npz").write_bytes(b"garbage")
    assert records.read_predictions(tmp_path / "garbage.npz")[1].startswith("garbage.npz is unreadable")
    assert records.read_predictions(tmp_path / "none.npz") == (None, "none.npz is missing")
