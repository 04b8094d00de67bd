"""Which settings the default and best presets should have: validation accuracy against training cost.

Each candidate is a real `cifar-tui train` on the full training set (the product's own code path,
its validation split of 5,000 images), started from a preset plus a few overrides. The run is
stopped as soon as training is done, before the test report: the sweep never reads the test set,
so the presets chosen from it are chosen on validation. Candidates that share an input size and a
cut share one feature cache, so only the first of them pays for feature extraction: the JSON keeps
each run's extraction seconds and the cold-cache cost (extraction measured once per size and cut,
plus that candidate's training). Writes JSON to --out.

    KERAS_HOME=... python bench/preset_sweep.py --data-dir ../shared/datasets --group default --out bench/preset_sweep.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from tui_cifar import launcher, runreader, runstore  # noqa: E402

# group -> (preset the candidates start from, {candidate name: overrides})
SWEEPS: dict[str, tuple[str, dict[str, dict]]] = {
    "default": ("default", {
        # Every value spelled out, so a rerun repeats these runs whatever the defaults have become since
        # (the sweep chose them: 4 epochs at 6e-4 without the mirrored view).
        "3 blocks, 6 epochs, lr 3e-4 (before)": {"epochs_fine": 6, "lr_fine": 3e-4, "augment": True},
        "3 blocks, 4 epochs, lr 6e-4": {"epochs_fine": 4, "lr_fine": 6e-4, "augment": True},
        "3 blocks, 3 epochs, lr 6e-4": {"epochs_fine": 3, "lr_fine": 6e-4, "augment": True},
        "3 blocks, 4 epochs, lr 6e-4, no mirrored view": {"epochs_fine": 4, "lr_fine": 6e-4, "augment": False},
        "2 blocks, 4 epochs, lr 6e-4": {"fine_tune_blocks": 2, "epochs_fine": 4, "lr_fine": 6e-4, "augment": True},
        "5 blocks, 4 epochs, lr 6e-4": {"fine_tune_blocks": 5, "epochs_fine": 4, "lr_fine": 6e-4, "augment": True},
    }),
    "best": ("best", {
        # Within twice the default run's cost on a 2-core CPU (the budget for a best preset):
        "192 px, 3 blocks, 6 epochs, lr 6e-4, mirrored view": {"fine_tune_blocks": 3, "epochs_fine": 6, "lr_fine": 6e-4},
        "224 px, 3 blocks, 4 epochs, lr 6e-4, no mirrored view": {"image_size": 224, "fine_tune_blocks": 3, "epochs_fine": 4,
                                                                 "lr_fine": 6e-4, "augment": False},
        # The preset as it is (94.2% test in 25 min, 2026-11-28) and deeper ones: several times that budget here.
        "192 px, 5 blocks, 12 epochs, lr 3e-4, mirrored view (the preset)": {},
        "224 px, 5 blocks, 8 epochs, lr 6e-4, mirrored view": {"image_size": 224, "epochs_fine": 8, "lr_fine": 6e-4},
    }),
}


def flags(overrides: dict) -> list[str]:
    """`cifar-tui train` flags for the overrides (augment: True is --augment, False --no-augment)."""
    out = []
    for key, value in overrides.items():
        name = key.replace("_", "-")
        out += [f"--{name}" if value else f"--no-{name}"] if isinstance(value, bool) else [f"--{name}", str(value)]
    return out


def run_candidate(preset: str, overrides: dict, data_dir: str, runs_dir: Path, cache: Path, log: Path) -> dict:
    """Train one candidate and stop it when its test report would start; what its training log says."""
    before = set(runstore.iter_run_dirs(runs_dir))
    command = [sys.executable, "-m", "tui_cifar", "train", "--preset", preset, *flags(overrides), "--data-dir", data_dir,
               "--runs-dir", str(runs_dir), "--cache-dir", str(cache), "--runtime", "auto"]
    start = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        run_dir, tail, progress = None, None, runreader.RunProgress()
        while process.poll() is None:  # followed as the app follows a run: only the log's new records each time
            time.sleep(2)
            run_dir = run_dir or next((d for d in runstore.iter_run_dirs(runs_dir) if d not in before), None)
            if run_dir is None:
                continue
            tail = tail or runstore.MetricsTail(run_dir / runstore.METRICS_LOG)
            progress.feed(tail.read_new())
            if progress.phase == "evaluate":
                launcher.request_stop(run_dir, by="preset_sweep (validation only)")
                process.wait()
    wall = time.perf_counter() - start
    records, _ = runstore.read_metrics(run_dir)
    epochs = runreader.epoch_records(records)
    best = max(epochs, key=lambda e: e.get("val_accuracy") or 0.0)
    times = runreader.stage_times(records)
    features = next((r for r in records if r.get("type") == "features_done"), {})
    return {
        "overrides": overrides,
        "config": json.loads((run_dir / runstore.CONFIG_FILE).read_text()),
        "run_dir": str(run_dir),
        "best_val_accuracy": best.get("val_accuracy"),
        "best_epoch": {"stage": best["stage"], "epoch": best["epoch"]},
        "val_accuracy_per_epoch": [[e["stage"], e["epoch"], e.get("val_accuracy")] for e in epochs],
        "feature_seconds": features.get("seconds"),
        "feature_cache_hits": features.get("cache_hits"),
        "feature_images": features.get("images"),
        "runtime": features.get("runtime"),
        "stage1_seconds": times.get("stage1"),
        "stage2_seconds": times.get("stage2"),
        "process_seconds_to_trained": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--group", choices=list(SWEEPS), nargs="+", default=list(SWEEPS))
    parser.add_argument("--only", nargs="+", help="candidate names to run (default: all of the group)")
    parser.add_argument("--work-dir", type=Path, default=Path("preset-sweep-work"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from run_bench import provenance

    args.work_dir.mkdir(parents=True, exist_ok=True)
    cache = args.work_dir / "cache"
    results = json.loads(args.out.read_text()) if args.out.exists() else {}  # other groups' results are kept
    for group in args.group:
        preset, candidates = SWEEPS[group]
        entry = results.setdefault("groups", {}).setdefault(group, {"preset": preset, "candidates": {}})
        entry.setdefault("runs", []).append(provenance())  # each invocation that added candidates here
        rows = entry["candidates"]
        for name, overrides in candidates.items():
            if args.only and name not in args.only:
                continue
            slug = "".join(c if c.isalnum() else "-" for c in f"{group}-{name}")
            row = run_candidate(preset, overrides, args.data_dir, args.work_dir / "runs", cache,
                                args.work_dir / f"{slug}.log")
            rows[name] = row
            print(name, json.dumps({k: row[k] for k in ("best_val_accuracy", "best_epoch", "feature_seconds",
                                                        "stage2_seconds")}), flush=True)
            args.out.write_text(json.dumps(results, indent=1) + "\n")
        # The cold-cache cost: extraction at the pace the first run at that size and cut paid (seconds per
        # image, times the images this candidate needs), plus its own training.
        pace = {}
        for row in rows.values():
            if not row["feature_cache_hits"] and row["feature_seconds"]:
                pace[(row["config"]["image_size"], row["config"]["fine_tune_blocks"])] = row["feature_seconds"] / row["feature_images"]
        for row in rows.values():
            per_image = pace.get((row["config"]["image_size"], row["config"]["fine_tune_blocks"]))
            row["cold_training_seconds"] = (round(per_image * row["feature_images"] + (row["stage1_seconds"] or 0)
                                                  + (row["stage2_seconds"] or 0), 1) if per_image else None)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
