"""Side-by-side benchmark: the seed notebook's pipeline against cifar-tui's presets.

Every pipeline runs in its own process on this machine, one after the other,
with a cold feature cache, so the figures compare like with like. Writes
bench/results.json (machine, command, date, figures) and bench/RESULTS.md.

    python bench/run_bench.py --data-dir ../shared/datasets            # everything
    python bench/run_bench.py --data-dir ... --only quick default      # some presets
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tui_cifar.runs import reader, store  # noqa: E402


def run_measured(command: list[str], log_path: Path, env: dict) -> tuple[int, float, float]:
    """Run a command to completion; (exit code, wall seconds, peak RSS in MiB of that process)."""
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    return os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage.ru_maxrss / 1024


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The vector-instruction flags that decide how fast TensorFlow and XNNPACK run (avx2, fma, avx512*)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(f for f in line.split(":", 1)[1].split() if f in ("avx2", "fma") or f.startswith("avx512"))
    except OSError:
        pass
    return []


def machine() -> dict:
    mem = None
    try:
        mem = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "flags": cpu_flags(), "memory_gib": mem,
            "gpu": os.environ.get("BENCH_GPU", "none"),
            "python": platform.python_version(), "platform": platform.platform()}


def provenance() -> dict:
    """What every results file starts with: when, by which command line and on which machine."""
    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),  # quoted: some arguments hold spaces
        "machine": machine(),
    }


def bench_baseline(data_dir: str, epochs: int | None, work: Path, env: dict, mode: str = "honest") -> dict:
    """The seed notebook's pipeline (see baseline_notebook.py): ``honest`` or ``faithful`` (as written, 10 epochs)."""
    out = work / f"baseline-{mode}.json"
    code, wall, rss = run_measured(
        [sys.executable, str(HERE / "baseline_notebook.py"), "--mode", mode, "--data-dir", data_dir, "--out", str(out),
         *(["--epochs", str(epochs)] if epochs else [])],
        work / f"baseline-{mode}.log", env,
    )
    if code != 0:
        raise SystemExit(f"baseline ({mode}) failed, see {work / f'baseline-{mode}.log'}")
    result = json.loads(out.read_text())
    result.update({"process_wall_time": round(wall, 1), "peak_rss_mib": round(rss)})
    return result


def bench_preset(preset: str, data_dir: str, work: Path, env: dict, runtime: str) -> dict:
    name = f"{preset}-{runtime}"
    runs_dir = work / f"runs-{name}"
    cache = work / f"cache-{name}"  # cold cache: feature extraction (and the LiteRT conversion) is part of the time
    command = [sys.executable, "-m", "tui_cifar", "train", "--preset", preset, "--data-dir", data_dir,
               "--runs-dir", str(runs_dir), "--cache-dir", str(cache), "--runtime", runtime]
    code, wall, rss = run_measured(command, work / f"{name}.log", env)
    run_dir = next(store.iter_run_dirs(runs_dir))
    records, _ = store.read_metrics(run_dir)
    report, _ = store.read_report(run_dir)
    epochs = reader.epoch_records(records)
    stage_ends = {r["stage"]: r for r in records if r.get("type") == "stage_end"}
    features = next((r for r in records if r.get("type") == "features_done"), {})
    stage1 = [e["epoch_time"] for e in epochs if e["stage"] == 1]
    stage2 = [e for e in epochs if e["stage"] == 2]
    trained_at = max((r["wall_time"] for r in stage_ends.values()), default=None)
    return {
        "preset": preset,
        "runtime": runtime,
        "runtime_used": features.get("runtime"),  # what ran the features (a failed conversion falls back to keras)
        "run_dir": str(run_dir),
        "exit_code": code,
        "config": json.loads((run_dir / store.CONFIG_FILE).read_text()),
        "test_accuracy": (report or {}).get("test_accuracy"),
        "best_val_accuracy": (report or {}).get("best_val_accuracy"),
        "process_wall_time": round(wall, 1),
        "training_done_at": trained_at,  # wall time when the final model existed (before the test report)
        "feature_seconds": features.get("seconds"),
        "feature_images_per_sec": features.get("images_per_sec"),
        "stage1_seconds": stage_ends.get(1, {}).get("seconds"),
        "stage1_seconds_per_epoch": round(sum(stage1) / len(stage1), 3) if stage1 else None,
        "stage2_seconds": stage_ends.get(2, {}).get("seconds"),
        "stage2_images_per_sec": round(sum(e["images_per_sec"] for e in stage2) / len(stage2), 1) if stage2 else None,
        "evaluation_seconds": (report or {}).get("evaluation_seconds"),
        "peak_rss_mib": round(rss),
        "epochs": [{k: e.get(k) for k in ("stage", "epoch", "val_accuracy", "epoch_time", "wall_time")} for e in epochs],
    }


def bench_predict_photo(run_dir: str, data_dir: str, work: Path, env: dict, runtimes: list[str]) -> dict:
    """`cifar-tui predict RUN photo.png` as a user runs it (process start and model load included), per runtime.

    The photo is a real CIFAR-10 test image upscaled to 256 px. The run's test report already converted and
    cached its model for LiteRT, so both calls find the conversion; the figure is the second call, the first
    (cold file caches) is recorded beside it.
    """
    import numpy as np
    from PIL import Image

    from tui_cifar.engine.data import load_test_images

    x_test, _ = load_test_images(data_dir)
    photo = work / "photo.png"
    Image.fromarray(np.asarray(x_test[3])).resize((256, 256), Image.BICUBIC).save(photo)
    result: dict = {"photo": "CIFAR-10 test image 3, upscaled to 256x256", "run": run_dir}
    for runtime in runtimes:
        command = [sys.executable, "-m", "tui_cifar", "predict", run_dir, str(photo), "--runtime", runtime]
        first = run_measured(command, work / f"predict-{runtime}-1.log", env)[1]
        code, wall, _ = run_measured(command, work / f"predict-{runtime}-2.log", env)
        result[runtime] = {"exit_code": code, "seconds": round(wall, 2), "first_call_seconds": round(first, 2)}
    return result


def runtime_ratios(presets: list[dict]) -> dict:
    """Per preset, LiteRT against Keras in this run: wall-time ratio and accuracy difference (points)."""
    ratios = {}
    for preset in dict.fromkeys(p["preset"] for p in presets):
        by = {p["runtime"]: p for p in presets if p["preset"] == preset}
        if "keras" in by and "litert" in by and by["keras"]["test_accuracy"] and by["litert"]["test_accuracy"]:
            k, lt = by["keras"], by["litert"]
            ratios[preset] = {
                "wall_time_litert_over_keras": round(lt["process_wall_time"] / k["process_wall_time"], 3),
                "features_speedup": round(lt["feature_images_per_sec"] / k["feature_images_per_sec"], 2)
                if lt["feature_images_per_sec"] and k["feature_images_per_sec"] else None,
                "test_report_speedup": round(k["evaluation_seconds"] / lt["evaluation_seconds"], 2)
                if lt["evaluation_seconds"] and k["evaluation_seconds"] else None,
                "accuracy_points_litert_minus_keras": round(100 * (lt["test_accuracy"] - k["test_accuracy"]), 2),
            }
    return ratios


def summarize(baseline: dict | None, presets: list[dict], faithful: dict | None = None) -> dict:
    """Figures and ratios; a notebook baseline reused from an earlier run gives its own figures but no ratio
    against this run's presets (every ratio compares two things measured in one run)."""
    summary: dict = {"runtime_ratios": runtime_ratios(presets)}
    if faithful:
        # The notebook's own figures: its model was selected on the test set (val_loss on the test images).
        summary["faithful_notebook_accuracy"] = faithful["notebook_test_accuracy"]
        summary["faithful_best_epoch"] = faithful["best_epoch"]
        summary["faithful_seconds_to_best"] = faithful["seconds_to_best"]
        reached = [p for p in presets if (p["test_accuracy"] or 0) >= faithful["notebook_test_accuracy"] and p["training_done_at"]]
        if reached and not faithful.get("reused_from"):
            fastest = min(reached, key=lambda p: p["training_done_at"])
            summary["cifar_tui_preset_to_faithful_accuracy"] = fastest["preset"]
            summary["speedup_to_faithful_best"] = round(faithful["seconds_to_best"] / fastest["training_done_at"], 1)
    if baseline:
        # The epoch its early stopping restored, chosen on validation (not the best test accuracy seen).
        best_epoch = next(e for e in baseline["epochs"] if e["epoch"] == baseline["best_epoch"])
        best = best_epoch["test_accuracy"]
        summary["baseline_best_accuracy"] = best
        summary["baseline_seconds_to_best"] = best_epoch["train_seconds_so_far"]
        reached = [p for p in presets if (p["test_accuracy"] or 0) >= best and p["training_done_at"]]
        if reached and not baseline.get("reused_from"):
            fastest = min(reached, key=lambda p: p["training_done_at"])
            summary["cifar_tui_seconds_to_baseline_best"] = fastest["training_done_at"]
            summary["cifar_tui_preset_to_baseline_best"] = fastest["preset"]
            summary["speedup_to_baseline_best"] = round(best_epoch["train_seconds_so_far"] / fastest["training_done_at"], 1)
        stage1 = [p["stage1_seconds_per_epoch"] for p in presets if p["stage1_seconds_per_epoch"]]
        if stage1 and not baseline.get("reused_from"):
            summary["stage1_epoch_speedup"] = round(baseline["seconds_per_epoch"] / max(stage1))
    at85 = [p for p in presets if (p["test_accuracy"] or 0) >= 0.85]
    if at85:
        fastest = min(at85, key=lambda p: p["training_done_at"])
        summary["cifar_tui_seconds_to_85"] = fastest["training_done_at"]
        summary["cifar_tui_preset_to_85"] = fastest["preset"]
    within_hour = [p for p in presets if p["process_wall_time"] <= 3600 and p["test_accuracy"]]
    if within_hour:
        summary["best_accuracy_within_60_min"] = max(p["test_accuracy"] for p in within_hour)
    return summary


def write_markdown(path: Path, results: dict) -> None:
    m, s = results["machine"], results["summary"]
    lines = [
        "# Benchmark results", "",
        f"- date: {results['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores ({', '.join(m.get('flags') or ['flags not recorded'])}), "
        f"{m['memory_gib']} GiB, GPU: {m['gpu']}" + (f" ({m['flags_note']})" if m.get("flags_note") else ""),
        f"- command: `{results['command']}`", "",
        "| pipeline | test accuracy | training done at (s) | whole process (s) | features img/s | stage-1 s/epoch | stage-2 img/s | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    f = results.get("faithful_baseline")
    if f:
        lines.append(f"| seed notebook as written, {len(f['epochs'])} epochs, best epoch {f['best_epoch']} (selected on test) "
                     f"| {f['notebook_test_accuracy']:.4f} | {f['seconds_to_best']} (to best) | {f['process_wall_time']} | - "
                     f"| {f['seconds_per_epoch']} | - | {f['peak_rss_mib']} |")
    b = results.get("baseline")
    if b:
        lines.append(f"| seed notebook, honest (validation split), {len(b['epochs'])} epochs | {b['final_test_accuracy']:.4f} "
                     f"(epoch {b['best_epoch']} restored) "
                     f"| {b['epochs'][-1]['train_seconds_so_far']} | {b['process_wall_time']} | - | {b['seconds_per_epoch']} | - | {b['peak_rss_mib']} |")
    for p in results["presets"]:
        acc = f"{p['test_accuracy']:.4f}" if p["test_accuracy"] is not None else "failed"
        lines.append(f"| cifar-tui `{p['preset']}` --runtime {p['runtime']} ({p['config']['image_size']}px, {p['config']['fine_tune_blocks']} blocks) | {acc} "
                     f"| {p['training_done_at']} | {p['process_wall_time']} | {p['feature_images_per_sec']} | {p['stage1_seconds_per_epoch']} "
                     f"| {p['stage2_images_per_sec']} | {p['peak_rss_mib']} |")
    reused = [f"{name}: measured {r['reused_from']['date']} by `{r['reused_from']['command']}`"
              for name, r in (("seed notebook as written", f), ("seed notebook, honest", b)) if r and r.get("reused_from")]
    if reused:
        lines += ["", "Not rerun here, taken from an earlier results file of this machine: " + "; ".join(reused) + "."]
    lines += ["", "## Summary", ""] + [f"- {k}: {v}" for k, v in s.items()]
    if results.get("predict_one_photo"):
        lines += ["", f"- predict one photo (process start and model load included): {results['predict_one_photo']}"]
    if b:
        lines += ["", "Baseline learning curve (test accuracy measured after each epoch for this table only; "
                  "its early stopping watched a validation split):", ""]
        lines += [f"- epoch {e['epoch']}: {e['seconds']} s, val {e['val_accuracy']:.4f}, test {e['test_accuracy']:.4f}" for e in b["epochs"]]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description="cifar-tui vs the seed notebook, same machine, same run")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--only", nargs="*", default=["faithful", "baseline", "quick", "default", "best"])
    parser.add_argument("--baseline-epochs", type=int, default=3)
    parser.add_argument("--runtimes", nargs="*", default=["keras", "litert"], help="run every preset once per runtime")
    parser.add_argument("--work-dir", type=Path, help="keep logs and runs here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--reuse-baselines", type=Path, metavar="RESULTS_JSON",
                        help="take the notebook baselines not rerun (not in --only) from an earlier results file "
                             "of the same machine; they keep their own date and command")
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="cifar-tui-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    results = {**provenance(), "faithful_baseline": None, "baseline": None, "presets": []}
    if args.reuse_baselines:
        earlier = json.loads(args.reuse_baselines.read_text())
        for key, name in (("faithful_baseline", "faithful"), ("baseline", "baseline")):
            if name not in args.only and earlier.get(key):
                results[key] = {**earlier[key], "reused_from": {k: earlier.get(k) for k in ("date", "command", "machine")}}
    if "faithful" in args.only:
        print("faithful baseline ...", flush=True)
        results["faithful_baseline"] = bench_baseline(args.data_dir, None, work, env, mode="faithful")
        print(json.dumps(results["faithful_baseline"], indent=1), flush=True)
    if "baseline" in args.only:
        print("baseline ...", flush=True)
        results["baseline"] = bench_baseline(args.data_dir, args.baseline_epochs, work, env)
        print(json.dumps(results["baseline"], indent=1), flush=True)
    for preset in [p for p in args.only if p not in ("baseline", "faithful")]:
        for runtime in args.runtimes:
            print(f"preset {preset}, runtime {runtime} ...", flush=True)
            results["presets"].append(bench_preset(preset, args.data_dir, work, env, runtime))
            print(json.dumps(results["presets"][-1], indent=1), flush=True)
            if not (preset == "default" and runtime == "litert"):  # its converted model serves the predict timing
                shutil.rmtree(work / f"cache-{preset}-{runtime}", ignore_errors=True)
    default_run = next((p["run_dir"] for p in results["presets"] if p["preset"] == "default" and p["runtime"] == "litert"), None)
    if default_run:
        print("predict one photo ...", flush=True)
        results["predict_one_photo"] = bench_predict_photo(default_run, args.data_dir, work, env, args.runtimes)
        print(json.dumps(results["predict_one_photo"], indent=1), flush=True)
    results["summary"] = summarize(results["baseline"], results["presets"], results["faithful_baseline"])
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    markdown = args.out.with_name("RESULTS.md" if args.out.name == "results.json" else f"{args.out.stem}.md")
    write_markdown(markdown, results)
    print(markdown.read_text())


if __name__ == "__main__":
    main()
