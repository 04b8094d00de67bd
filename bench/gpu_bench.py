"""GPU benchmark: full fine-tuning from pixels at 224 px with mixed precision and tf.data.

On a Linux machine with an NVIDIA GPU and CIFAR-10 (plus ImageNet weights, or a network),
from the project folder, install and run in one command:

    python3 -m venv .venv && .venv/bin/pip install -e ".[gpu]" && .venv/bin/python bench/gpu_bench.py --data-dir PATH

It stops before training, with `cifar-tui doctor`'s reason, when TensorFlow sees no GPU.
Writes bench/gpu_results.json: the card (nvidia-smi), TensorFlow's build and devices, the
versions, the command, the date, test accuracy, seconds per stage and training images per second.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from run_bench import provenance  # noqa: E402

from tui_cifar.engine import doctor
from tui_cifar.runs import reader, store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs-head", type=int, default=2)
    parser.add_argument("--epochs-fine", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=HERE / "gpu_results.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cifar-tui-gpu-"))
    facts = doctor.doctor(work / "cache", args.data_dir)
    gpus = facts["nvidia_gpus"]
    if not gpus:
        raise SystemExit("no NVIDIA GPU found (nvidia-smi): this benchmark is for a GPU machine")
    if not any(d.startswith("GPU") for d in (facts["tensorflow"] or {}).get("devices", [])):
        raise SystemExit("TensorFlow sees no GPU: " + " ".join(facts["warnings"]))
    command = [sys.executable, "-m", "tui_cifar", "train", "--fine-tune-blocks", "all", "--mixed-precision", "on",
               "--image-size", str(args.image_size), "--batch-size", str(args.batch_size),
               "--epochs-head", str(args.epochs_head), "--epochs-fine", str(args.epochs_fine),
               "--lr-fine", "1e-4", "--runs-dir", str(work / "runs"), "--cache-dir", str(work / "cache")]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    start = time.perf_counter()
    code = subprocess.call(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    wall = time.perf_counter() - start
    run_dir = next(store.iter_run_dirs(work / "runs"))
    records, _ = store.read_metrics(run_dir)
    report, _ = store.read_report(run_dir)
    epochs = reader.epoch_records(records)
    result = {
        **provenance(),
        "train_command": " ".join(command),
        "gpus": gpus,
        "versions": facts["versions"],
        "tensorflow": facts["tensorflow"],
        "device": next((r.get("device") for r in records if r.get("type") == "run_start"), None),
        "exit_code": code,
        "test_accuracy": (report or {}).get("test_accuracy"),
        "wall_time": round(wall, 1),
        "feature_images_per_sec": next((r.get("images_per_sec") for r in records if r.get("type") == "features_done"), None),
        "stage_seconds": {f"stage{r['stage']}": r["seconds"] for r in records if r.get("type") == "stage_end"},
        "fine_tune_images_per_sec": [e.get("images_per_sec") for e in epochs if e["stage"] == 2],
        "val_accuracy": [e.get("val_accuracy") for e in epochs],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
