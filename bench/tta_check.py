"""Does flip test-time augmentation pay? A run's model on its own validation split, with and without it.

Uses the validation images the run carved from the training set (the test set
is not read). The run's checkpoint was chosen by validation accuracy without
TTA, so the figure without TTA is, if anything, flattered. Writes JSON to --out.

    python bench/tta_check.py RUN [RUN ...] --out bench/tta_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from run_bench import provenance

    from tui_cifar.config import config_from_run
    from tui_cifar.engine.data import make_splits
    from tui_cifar.engine.prediction import load_model_checked, predict_probabilities
    from tui_cifar.runs import store

    rows = []
    for run_dir in args.runs:
        data, problem = store.read_json(run_dir / store.CONFIG_FILE)
        if problem:
            raise SystemExit(f"{run_dir}: {problem}")
        cfg = config_from_run(data, run_dir)
        splits = make_splits(cfg.data_dir, cfg.val_size, cfg.seed, cfg.limit_train, cfg.limit_test)
        model = load_model_checked(run_dir / store.MODEL_FILE)
        row = {"run": run_dir.name, "image_size": cfg.image_size, "fine_tune_blocks": cfg.fine_tune_blocks,
               "validation_images": len(splits.y_val)}
        for tta in (False, True):
            started = time.perf_counter()
            probs = predict_probabilities(model, splits.x_val, tta_flip=tta)
            key = "with_tta" if tta else "without_tta"
            row[f"val_accuracy_{key}"] = round(float((probs.argmax(1) == splits.y_val).mean()), 4)
            row[f"seconds_{key}"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps({**provenance(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
