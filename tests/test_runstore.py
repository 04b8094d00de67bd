"""tui_cifar.runs.store: the run-folder contract between a training process and its readers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tui_cifar.config import TrainConfig
from tui_cifar.runs import store
from tui_cifar.runs.reader import epoch_records, list_runs, summarize_run
from tui_cifar.runs.store import (
    MetricsTail,
    MetricsWriter,
    RunStatus,
    RunStoreError,
    atomic_write_json,
    atomic_write_text,
    create_run_dir,
    effective_state,
    read_metrics,
    read_status,
    write_status,
)

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "textual")


# --- run folders ------------------------------------------------------------------------------


def test_create_run_dir_names_are_unique_within_one_second(tmp_path):
    runs = tmp_path / "runs"  # created on demand
    made = [create_run_dir(runs, "mobilenetv2-160px") for _ in range(5)]
    assert len(set(made)) == 5
    for d in made:
        assert d.is_dir() and d.parent == runs
        assert "mobilenetv2-160px" in d.name
        assert not any(d.iterdir())


def test_create_run_dir_is_unique_under_concurrency(tmp_path):
    runs = tmp_path / "runs"
    with ThreadPoolExecutor(max_workers=8) as pool:
        made = list(pool.map(lambda _: create_run_dir(runs, "same"), range(32)))
    assert len(set(made)) == 32
    assert sorted(p.name for p in runs.iterdir()) == sorted(p.name for p in made)


def test_create_run_dir_from_several_processes(tmp_path):
    runs = tmp_path / "runs"
    code = (
        "import sys; from pathlib import Path; from tui_cifar.runs.store import create_run_dir\n"
        "for _ in range(5): print(create_run_dir(Path(sys.argv[1]), 'race'))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(runs)], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    lines = [line for p in procs for line in p.communicate(timeout=60)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert len(lines) == 20 and len(set(lines)) == 20


def test_create_run_dir_slugs_the_name_inside_the_runs_folder(tmp_path):
    runs = tmp_path / "runs"
    d = create_run_dir(runs, "../../etc/my run: best?")
    assert d.parent == runs
    assert "/" not in d.name and " " not in d.name and ":" not in d.name
    assert create_run_dir(runs, "///").name.endswith("-run")


def test_create_run_dir_refuses_a_runs_path_that_is_a_file(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    with pytest.raises(RunStoreError, match=str(blocker)):
        create_run_dir(blocker, "x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_create_run_dir_refuses_a_read_only_runs_folder(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o500)
    try:
        with pytest.raises(RunStoreError, match="not writable"):
            create_run_dir(runs, "x")
    finally:
        runs.chmod(0o700)


# --- atomic writes ----------------------------------------------------------------------------


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "status.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2, "b": [1, 2]})
    assert json.loads(target.read_text()) == {"a": 2, "b": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_atomic_write_failure_keeps_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "config.json"
    atomic_write_text(target, "old\n")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # the temporary file was removed


def test_a_reader_never_sees_half_a_file(tmp_path):
    target = tmp_path / "metrics.json"
    big = {"values": list(range(20000))}
    atomic_write_json(target, big)
    stop = threading.Event()

    def writer():
        n = 0
        while not stop.is_set():
            n += 1
            atomic_write_json(target, {**big, "n": n})

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 1.0
        reads = 0
        while time.monotonic() < deadline:
            data = json.loads(target.read_text())  # raises on a torn file
            assert len(data["values"]) == 20000
            reads += 1
    finally:
        stop.set()
        thread.join()
    assert reads > 10


# --- status -----------------------------------------------------------------------------------


def test_status_round_trip_keeps_started_at_and_stage(tmp_path):
    first = write_status(tmp_path, "running", "starting", stage=1)
    status = read_status(tmp_path)
    assert status.problem is None
    assert (status.state, status.message, status.stage) == ("running", "starting", 1)
    assert status.pid == os.getpid()
    assert status.host == socket.gethostname()
    assert status.started_at == first.started_at and status.updated_at
    assert status.version == store.FORMAT_VERSION

    write_status(tmp_path, "finished", "test accuracy 0.9", pid=1234)
    later = read_status(tmp_path)
    assert (later.state, later.message, later.pid) == ("finished", "test accuracy 0.9", 1234)
    assert later.started_at == first.started_at  # the run's start is kept across updates
    assert later.stage == 1  # kept unless given
    raw = json.loads((tmp_path / "status.json").read_text())
    assert "problem" not in raw


def test_write_status_refuses_an_unknown_state(tmp_path):
    with pytest.raises(ValueError, match="bogus"):
        write_status(tmp_path, "bogus")
    assert not (tmp_path / "status.json").exists()


@pytest.mark.parametrize(
    "content, reason",
    [(None, "missing"), ("{not json", "unreadable"), ('{"state": "exploded"}', "unreadable"), ("[1, 2]", "unreadable")],
)
def test_read_status_never_raises(tmp_path, content, reason):
    if content is not None:
        (tmp_path / "status.json").write_text(content)
    status = read_status(tmp_path)
    assert status.state == "unknown"
    assert reason in status.problem


def test_read_status_from_a_newer_version_says_so(tmp_path):
    (tmp_path / "status.json").write_text(json.dumps({"state": "finished", "version": 99, "future_field": 1}))
    status = read_status(tmp_path)
    assert status.state == "finished"
    assert "newer" in status.problem


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_effective_state_of_a_dead_process_is_killed(tmp_path):
    write_status(tmp_path, "running", "stage 1", pid=_dead_pid())
    assert effective_state(read_status(tmp_path)) == "killed"
    assert summarize_run(tmp_path).state == "killed"


def test_effective_state_is_running_while_the_lock_is_held_whatever_the_pid(tmp_path):
    from tui_cifar.runs.store import RunLock

    write_status(tmp_path, "running", pid=os.getpid())  # a live pid (a reused one, say) without the lock
    assert effective_state(read_status(tmp_path)) == "killed"
    lock = RunLock.acquire(tmp_path)
    assert effective_state(read_status(tmp_path)) == "running"
    lock.release()
    assert effective_state(read_status(tmp_path)) == "killed"


def test_effective_state_of_a_foreign_host_is_kept(tmp_path):
    # A run on another host cannot be checked from here: it stays 'running'.
    foreign = RunStatus(state="running", pid=_dead_pid(), host="some-other-host")
    assert effective_state(foreign) == "running"
    # Only 'running' can turn into 'killed'.
    finished = RunStatus(state="finished", pid=_dead_pid(), host=socket.gethostname())
    assert effective_state(finished) == "finished"


# --- metrics log ------------------------------------------------------------------------------


def test_metrics_writer_flushes_each_record_and_calls_listeners(tmp_path):
    heard = []
    writer = MetricsWriter(tmp_path, listeners=[heard.append])
    tail = MetricsTail(tmp_path / "metrics.jsonl")
    writer.write({"type": "epoch", "stage": 1, "epoch": 1, "val_accuracy": 0.5})
    first = tail.read_new()  # no close, no explicit flush: visible at once
    assert [r["epoch"] for r in first] == [1]
    assert "time" in first[0]
    writer.write({"type": "epoch", "stage": 1, "epoch": 2, "loss": float("nan")})
    second = tail.read_new()
    assert [r["epoch"] for r in second] == [2]
    assert second[0]["loss"] != second[0]["loss"]  # NaN survives the round trip
    assert [r["epoch"] for r in heard] == [1, 2]
    writer.close()
    assert tail.read_new() == []


def test_metrics_tail_reads_only_what_was_appended(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.read_new() == []  # no file yet
    with open(path, "a") as f:
        f.write('{"n": 1}\n{"n": 2}\n')
    assert [r["n"] for r in tail.read_new()] == [1, 2]
    assert tail.read_new() == []
    with open(path, "a") as f:
        f.write('{"n": 3}\n')
    assert [r["n"] for r in tail.read_new()] == [3]
    assert tail.offset == path.stat().st_size
    assert tail.problems == []


def test_metrics_tail_waits_for_a_half_written_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    with open(path, "a") as f:
        f.write('{"n": 1}\n{"n": 2, "loss": 0.')
    assert [r["n"] for r in tail.read_new()] == [1]
    assert tail.read_new() == []  # still half written
    assert tail.problems == []  # a partial line is not a problem
    with open(path, "a") as f:
        f.write('25}\n{"n": 3}\n')
    records = tail.read_new()
    assert records == [{"n": 2, "loss": 0.25}, {"n": 3}]
    assert tail.problems == []


def test_metrics_tail_skips_a_garbled_line_and_lists_it(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"n": 1}\n{"n": 2\n\n[1, 2]\n')
    tail = MetricsTail(path)
    assert [r["n"] for r in tail.read_new()] == [1]
    assert len(tail.problems) == 2
    assert "line 2" in tail.problems[0] and "garbled" in tail.problems[0]
    assert "line 4" in tail.problems[1]  # line numbers count blank lines too
    with open(path, "a") as f:
        f.write("\x00\xff garbage\n" + '{"n": 5}\n')
    assert [r["n"] for r in tail.read_new()] == [5]
    assert "line 5" in tail.problems[2]


def test_read_metrics_returns_records_and_problems(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"type": "run_start"}\noops\n{"type": "run_end"}\n')
    records, problems = read_metrics(tmp_path)
    assert [r["type"] for r in records] == ["run_start", "run_end"]
    assert len(problems) == 1


def test_epoch_records_keep_the_later_record_of_a_repeated_epoch():
    records = [
        {"type": "epoch", "stage": 1, "epoch": 1, "val_accuracy": 0.5},
        {"type": "batch", "stage": 1, "epoch": 2, "batch": 3},
        {"type": "epoch", "stage": 1, "epoch": 2, "val_accuracy": 0.9, "try": "killed"},
        {"type": "run_resume"},
        {"type": "epoch", "stage": 2, "epoch": 1, "val_accuracy": 0.7},
        {"type": "epoch", "stage": 1, "epoch": 2, "val_accuracy": 0.6, "try": "resumed"},
    ]
    epochs = epoch_records(records)
    assert [(r["stage"], r["epoch"]) for r in epochs] == [(1, 1), (1, 2), (2, 1)]
    assert epochs[1]["try"] == "resumed"


# --- listing runs -----------------------------------------------------------------------------


def _make_run(runs: Path, name: str, state: str, epochs: list[tuple[int, int, float]], test_acc=None,
              config: dict | None = None, extra_log: str = "") -> Path:
    d = runs / name
    d.mkdir(parents=True)
    if config is not None:
        atomic_write_json(d / "config.json", config)
    write_status(d, state, "msg")
    lines = [json.dumps({"type": "run_start", "wall_time": 0.1})]
    for i, (stage, epoch, val) in enumerate(epochs):
        lines.append(json.dumps({"type": "epoch", "stage": stage, "epoch": epoch, "val_accuracy": val,
                                 "wall_time": 10.0 * (i + 1)}))
    (d / "metrics.jsonl").write_text("\n".join(lines) + "\n" + extra_log)
    if test_acc is not None:
        atomic_write_json(d / "metrics.json", {"test_accuracy": test_acc})
    return d


def test_list_runs_and_summaries(tmp_path):
    runs = tmp_path / "runs"
    good = _make_run(runs, "20250101-000000-a", "finished", [(1, 1, 0.5), (1, 2, 0.8), (2, 1, 0.85)],
                     test_acc=0.84, config=TrainConfig(backbone="mobilenetv2", image_size=96).to_json())
    # The (1, 2) epoch was repeated after a resume: its later value replaces the 0.95.
    odd = _make_run(runs, "20250102-000000-b", "stopped", [(1, 1, 0.4), (1, 2, 0.95), (1, 2, 0.6)],
                    config=None, extra_log="{garbled\n")
    (runs / "not-a-run").mkdir()  # no status.json, no config.json
    (runs / "stray.txt").write_text("x")

    summaries = list_runs(runs)
    assert [s.name for s in summaries] == [good.name, odd.name]
    a, b = summaries
    assert (a.state, a.backbone, a.image_size) == ("finished", "mobilenetv2", 96)
    assert a.best_val_accuracy == pytest.approx(0.85)
    assert a.test_accuracy == pytest.approx(0.84)
    assert a.duration_s == pytest.approx(30.0)
    assert a.started_at and a.problems == []

    assert b.state == "stopped" and b.backbone is None and b.test_accuracy is None
    assert b.best_val_accuracy == pytest.approx(0.6)
    assert any("config.json is missing" in p for p in b.problems)
    assert any("garbled" in p for p in b.problems)


def test_summarize_run_of_an_empty_folder_lists_problems(tmp_path):
    s = summarize_run(tmp_path)
    assert s.state == "unknown"
    assert s.best_val_accuracy is None and s.duration_s is None
    assert any("status.json" in p for p in s.problems)


def test_list_runs_of_a_missing_folder_is_empty(tmp_path):
    assert list_runs(tmp_path / "nowhere") == []


# --- import cost ------------------------------------------------------------------------------


def _heavy_modules_after(code: str) -> list[str]:
    probe = code + f"\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_light_modules_import_neither_tensorflow_nor_keras_nor_textual():
    heavy = _heavy_modules_after(
        "import tui_cifar.runs.store, tui_cifar.runs.reader, tui_cifar.files, tui_cifar.paths, tui_cifar.formatting,"
        " tui_cifar.config, tui_cifar.cli.commands, tui_cifar.engine.data, tui_cifar.engine.images, tui_cifar.runs.rows, tui_cifar.engine.resources"
    )
    assert heavy == []


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["backbones"], ["runs", "--json", "--runs-dir", "{tmp}"]])
def test_light_commands_do_not_import_tensorflow(argv, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    heavy = _heavy_modules_after(
        "import contextlib, io\nfrom tui_cifar.cli.commands import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
    )
    assert heavy == []


def test_cifar_tui_help_is_fast():
    exe = Path(sys.executable).with_name("cifar-tui")
    if not exe.exists():
        pytest.skip("the cifar-tui console script is not installed in this environment")
    subprocess.run([exe, "--help"], capture_output=True, timeout=30)  # warm the file cache
    started = time.perf_counter()
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    elapsed = time.perf_counter() - started
    assert out.returncode == 0
    assert "usage: cifar-tui" in out.stdout and "train" in out.stdout
    assert elapsed < 1.5, f"cifar-tui --help took {elapsed:.2f}s"
