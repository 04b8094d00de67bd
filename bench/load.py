"""Load: thousands of run folders and a huge metrics log, as a heavy user leaves them (issue 16, item 7).

Measures, in one run on one machine (ratios only within it):

- `cifar-tui runs` over N synthetic default-size run folders against one run folder, with the summary
  cache cold (a fresh cache folder) and warm (the next invocation);
- the app's Runs table: time from start to its first rows for N runs (Pilot, headless, 120x40), cold and warm;
- the idle Runs screen's CPU use (process CPU time over wall time, its 2 s refresh running);
- `cifar-tui watch`'s first frame and peak RSS on a log of 300,000 records (and the time to read it all);
- `cifar-tui export --csv` peak RSS against the log's length.

A default-size run folder: the default preset's log (8 + 4 epochs, 40 batch records per epoch, progress
records), config.json, status.json, report.json, train.log, and model.keras/predictions.npz as sparse files
of their real sizes (the listing only stats them). Usage, from the repository root:

    nice -n 10 .venv/bin/python bench/load.py [--runs 2000] [--records 300000] [--out bench/load.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from run_bench import provenance  # noqa: E402

from tui_cifar.config import make_config  # noqa: E402
from tui_cifar.runs import store  # noqa: E402

CLI = [sys.executable, "-m", "tui_cifar"]


def default_run_records(config: dict, start: float = 0.0) -> list[dict]:
    """The records a default run logs, in order, with plausible values."""
    recs: list[dict] = [{"type": "run_start", "config": config, "device": "CPU (2 cores)", "pid": 1234,
                         "versions": {"tensorflow": "2.21.0", "keras": "3.15.0"}, "wall_time": start}]
    recs.append({"type": "phase", "phase": "load_data", "message": "loading CIFAR-10", "wall_time": start + 1})
    recs.append({"type": "data", "source": "cifar-10-batches-py", "train": 45000, "val": 5000, "test": 10000})
    for done in range(0, 50001, 1000):
        recs.append({"type": "progress", "phase": "extract_features", "done": done, "total": 50000,
                     "wall_time": start + 2 + done / 500})
    recs.append({"type": "features_done", "images": 50000, "seconds": 100.0, "cache_hits": 0, "runtime": "litert",
                 "runtime_note": None, "cache_keys": ["a" * 40], "images_per_sec": 500.0, "wall_time": start + 102})
    wall = start + 102
    for stage, epochs, steps in ((1, 8, 176), (2, 4, 352)):
        recs.append({"type": "stage_start", "stage": stage, "epochs": epochs, "steps_per_epoch": steps, "lr": 1e-3,
                     "trainable_params": 12810, "wall_time": wall})
        for epoch in range(1, epochs + 1):
            for k in range(1, 41):
                wall += 0.5
                recs.append({"type": "batch", "stage": stage, "epoch": epoch, "batch": k * steps // 40, "steps": steps,
                             "loss": 1.0 / (epoch + k / 40), "accuracy": 0.8 + 0.01 * epoch, "wall_time": round(wall, 2)})
            recs.append({"type": "epoch", "stage": stage, "epoch": epoch, "epochs": epochs, "loss": 0.5 / epoch,
                         "accuracy": 0.85 + 0.01 * epoch, "val_loss": 0.45 / epoch, "val_accuracy": 0.86 + 0.005 * epoch,
                         "lr": 1e-3, "images_per_sec": 2000.0, "epoch_time": 20.0, "partial": False,
                         "memory": {"rss": 2**30, "rss_peak": 2**30}, "wall_time": round(wall, 2)})
        recs.append({"type": "stage_end", "stage": stage, "seconds": 200.0, "wall_time": round(wall, 2)})
    for done in range(0, 20001, 2000):
        recs.append({"type": "progress", "phase": "evaluate", "done": done, "total": 20000, "wall_time": round(wall, 2)})
    recs.append({"type": "run_end", "state": "finished", "message": "test accuracy 0.9200", "wall_time": round(wall + 10, 2),
                 "test_accuracy": 0.92})
    return recs


def write_run(run_dir: Path, config: dict, records: list[dict], report: dict) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / store.CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    (run_dir / store.STATUS_FILE).write_text(json.dumps({
        "state": "finished", "pid": 1234, "host": "bench", "started_at": "2026-12-01T10:00:00+00:00",
        "updated_at": "2026-12-01T10:20:00+00:00", "message": "test accuracy 0.9200", "stage": 2, "version": 1}))
    with open(run_dir / store.METRICS_LOG, "w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    (run_dir / store.REPORT_FILE).write_text(json.dumps(report))
    (run_dir / store.TRAIN_LOG).write_text("starting TensorFlow …\n" * 20)
    for name, size in ((store.MODEL_FILE, 9 * 2**20), (store.PREDICTIONS_FILE, 420_000)):
        with open(run_dir / name, "wb") as f:
            f.truncate(size)  # sparse: as big as the real file, no disk used


def make_runs(root: Path, count: int) -> Path:
    config = make_config({}).to_json()
    records = default_run_records(config)
    report = {"test_accuracy": 0.92, "per_class": {c: {"precision": 0.9, "recall": 0.9} for c in "abcdefghij"},
              "confusion_matrix": [[100] * 10] * 10, "roc_curves": {c: {"fpr": [0.0] * 100, "tpr": [1.0] * 100}
                                                                    for c in "abcdefghij"}}
    runs = root / f"runs-{count}"
    for n in range(count):
        write_run(runs / f"20261201-{n // 3600:02d}{n // 60 % 60:02d}{n % 60:02d}-mobilenetv2-160px", config, records,
                  report)
    return runs


def timed(command: list[str], env: dict) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes) of a command run to its end."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command} failed: {proc.stderr.read().decode()[-500:]}")
    return wall, usage.ru_maxrss * 1024


def bench_runs_command(one: Path, many: Path, env: dict, repeats: int = 3) -> dict:
    def median(runs_dir: Path, fresh: bool) -> float:
        times = []
        for _ in range(repeats):
            if fresh:
                subprocess.run(["rm", "-rf", str(Path(env["XDG_CACHE_HOME"]) / "cifar-tui")], check=True)
            times.append(timed([*CLI, "runs", "--runs-dir", str(runs_dir)], env)[0])
        return statistics.median(times)

    one_run = median(one, fresh=False)
    subprocess.run(["rm", "-rf", str(Path(env["XDG_CACHE_HOME"]) / "cifar-tui")], check=True)
    cold = timed([*CLI, "runs", "--runs-dir", str(many)], env)[0]  # once: minutes on a busy machine; fills the cache
    warm = median(many, fresh=False)
    return {"one_run_s": round(one_run, 3), "many_cold_s": round(cold, 3), "many_warm_s": round(warm, 3),
            "warm_ratio_to_one": round(warm / one_run, 2), "cold_ratio_to_one": round(cold / one_run, 2),
            "target": "warm ratio <= 3"}


APP_PROBE = textwrap.dedent("""
    import json, resource, sys, time
    t_start = time.perf_counter()
    import asyncio
    from pathlib import Path
    from tui_cifar.tui.app import CifarApp
    runs_dir, mode, idle_s = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])

    async def main():
        out = {}
        if mode == "runs":
            app = CifarApp(runs_dir, start_screen="runs")
            async with app.run_test(size=(120, 40)) as pilot:
                from textual.widgets import DataTable
                screen = app.screen
                while not (getattr(screen, "loaded", False) and screen.query_one("#runs-table", DataTable).row_count):
                    await pilot.pause(0.01)
                out["first_rows_s"] = round(time.perf_counter() - t_start, 3)
                out["rows"] = screen.query_one("#runs-table", DataTable).row_count
                await pilot.pause(3)  # settle: the first refresh
                c0, w0 = time.process_time(), time.perf_counter()
                await pilot.pause(idle_s)
                out["idle_cpu_percent"] = round(100 * (time.process_time() - c0) / (time.perf_counter() - w0), 2)
        else:
            app = CifarApp(runs_dir.parent, run_dir=runs_dir, start_screen="train")
            async with app.run_test(size=(120, 40)) as pilot:
                screen = app.screen
                while not screen.progress.records_seen:
                    await pilot.pause(0.01)
                await pilot.pause(0)  # the frame with them
                out["first_frame_s"] = round(time.perf_counter() - t_start, 3)
                out["records_at_first_frame"] = screen.progress.records_seen
                out["rss_at_first_frame_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
                total = int(sys.argv[4])
                while screen.progress.records_seen < total:
                    await pilot.pause(0.05)
                out["all_records_s"] = round(time.perf_counter() - t_start, 3)
                out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(out))

    asyncio.run(main())
""")


def probe(args: list[str], env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", APP_PROBE, *args], capture_output=True, text=True, env=env,
                         timeout=900, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_app(many: Path, env: dict, idle_s: float) -> dict:
    """The app with the summary cache the runs command left (a cold app lists as slowly as a cold `runs`)."""
    warm = probe([str(many), "runs", str(idle_s)], env)
    return {"warm": warm, "cold": "unmeasured (the first listing reads every log, as a cold `cifar-tui runs`)",
            "targets": "first rows within 2 s; idle under 2% of a core"}


def big_log_run(root: Path, records: int) -> Path:
    """A run whose log holds `records` records (a long run's batch records), still running: the app follows it."""
    config = make_config({}).to_json()
    run_dir = root / f"big-{records}" / "20261201-000000-mobilenetv2-160px"
    base = default_run_records(config)[:-1]  # no run_end
    run_dir.mkdir(parents=True)
    (run_dir / store.CONFIG_FILE).write_text(json.dumps(config))
    (run_dir / store.STATUS_FILE).write_text(json.dumps({"state": "stopped", "pid": 1, "host": "bench",
                                                             "message": "stopped", "version": 1}))
    wall = 0.0
    with open(run_dir / store.METRICS_LOG, "w") as f:
        for rec in base:
            f.write(json.dumps(rec) + "\n")
        for k in range(records - len(base)):
            wall += 0.01
            f.write(json.dumps({"type": "batch", "stage": 2, "epoch": 1 + k // 400, "batch": k % 400 + 1, "steps": 400,
                                "loss": 0.3, "accuracy": 0.9, "wall_time": round(wall, 2), "time": "2026-12-01T10:00:00+00:00"})
                    + "\n")
    (run_dir / store.TRAIN_LOG).write_text("log line\n" * 1000)
    return run_dir


def bench_watch(root: Path, records: int, env: dict) -> dict:
    run_dir = big_log_run(root, records)
    result = probe([str(run_dir), "watch", "0", str(records)], env)
    result["log_mb"] = round((run_dir / store.METRICS_LOG).stat().st_size / 2**20, 1)
    result["targets"] = "first frame within 2 s, under 150 MB"
    return result


def bench_export(root: Path, lengths: list[int], env: dict) -> list[dict]:
    rows = []
    for n in lengths:
        run_dir = big_log_run(root / "export", n)
        wall, rss = timed([*CLI, "export", str(run_dir), "--csv", str(root / f"m-{n}.csv")], env)
        rows.append({"records": n, "log_mb": round((run_dir / store.METRICS_LOG).stat().st_size / 2**20, 1),
                     "seconds": round(wall, 2), "peak_rss_mb": round(rss / 2**20, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--idle", type=float, default=60.0,
                        help="seconds of idle Runs screen measured (two of its 30 s status looks)")
    parser.add_argument("--out", type=Path, default=HERE / "load.json")
    args = parser.parse_args()
    results = {**provenance(), "what": __doc__.split("\n\n")[0]}
    with tempfile.TemporaryDirectory(prefix="cifar-tui-load-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "XDG_CACHE_HOME": str(root / "cache"), "XDG_CONFIG_HOME": str(root / "config"),
               "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
        one, many = make_runs(root, 1), make_runs(root, args.runs)
        results["runs"] = args.runs
        results["run_folder_kb"] = round(sum(p.stat().st_blocks * 512 for p in (many / next(iter(os.listdir(many)))).iterdir())
                                         / 1024, 1)
        results["runs_command"] = bench_runs_command(one, many, env)
        print(json.dumps(results["runs_command"]), flush=True)
        results["app_runs_table"] = bench_app(many, env, args.idle)
        print(json.dumps(results["app_runs_table"]), flush=True)
        results["watch"] = bench_watch(root, args.records, env)
        print(json.dumps(results["watch"]), flush=True)
        results["export_csv"] = bench_export(root, [10_000, 100_000, args.records], env)
        print(json.dumps(results["export_csv"]), flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
