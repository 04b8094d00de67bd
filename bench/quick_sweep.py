"""How small can the quick preset be? Validation accuracy of the head against input size and training-set size.

The quick preset spends almost all its time on one forward pass per training
image, so its cost is (images x seconds per image at that input size). This
script extracts pooled MobileNetV2 features once per size, trains the preset's
head on nested subsets, and reports validation accuracy (a split carved from
the training images; the test set is never read) with the extraction time
that subset costs. Writes JSON to --out.

    python bench/quick_sweep.py --data-dir ../shared/datasets --out sweep.json \
        --sizes 112 128 144 --train-sizes 3000 4000 5000 --epochs 12 20 30 --lrs 0.001 0.003 0.01

bench/quick_sweep.json keeps the two sweeps the quick preset was chosen from.
"""

from __future__ import annotations

import argparse
import itertools
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
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 112, 128, 144])
    parser.add_argument("--train-sizes", type=int, nargs="+", default=[2000, 3000, 4000, 5000, 6000, 8000])
    parser.add_argument("--epochs", type=int, nargs="+", default=[5, 8, 12])
    parser.add_argument("--lrs", type=float, nargs="+", help="head learning rates (default: the quick preset's)")
    parser.add_argument("--val-size", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import keras
    import numpy as np
    from run_bench import provenance
    from sklearn.model_selection import train_test_split

    from tui_cifar.config import make_config
    from tui_cifar.engine.data import load_cifar10
    from tui_cifar.engine.features import extract
    from tui_cifar.engine.model import build_transfer_model
    from tui_cifar.engine.training import EXTRACT_BATCH

    quick = make_config(preset="quick")
    x, y, *_ = load_cifar10(args.data_dir)
    pool, val = train_test_split(np.arange(len(y)), test_size=args.val_size, stratify=y, random_state=0)
    order = np.random.default_rng(0).permutation(pool)  # nested subsets: the first n of one shuffle
    n_max = max(args.train_sizes)
    x_tr, y_tr = x[order[:n_max]], y[order[:n_max]]
    rows = []
    for size in args.sizes:
        keras.utils.set_random_seed(0)
        tm = build_transfer_model("mobilenetv2", size, 0, "imagenet", quick.dropout)
        extract(tm.extractor, x_tr[:128], EXTRACT_BATCH, keep_activations=False)  # warm-up
        t0 = time.perf_counter()
        _, f_tr = extract(tm.extractor, x_tr, EXTRACT_BATCH, keep_activations=False)
        per_image = (time.perf_counter() - t0) / len(x_tr)
        _, f_val = extract(tm.extractor, x[val], EXTRACT_BATCH, keep_activations=False)
        print(f"{size}px: {1 / per_image:.0f} img/s", flush=True)
        for n, epochs, lr in itertools.product(args.train_sizes, args.epochs, args.lrs or [quick.lr_head]):
            keras.utils.set_random_seed(0)
            head = build_transfer_model("mobilenetv2", size, 0, None, quick.dropout).trainable_on_features()
            steps = -(-n // quick.head_batch_size) * epochs
            head.compile(
                optimizer=keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.05),
                                                 weight_decay=quick.weight_decay),
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=quick.label_smoothing),
                metrics=["accuracy"],
            )
            t1 = time.perf_counter()
            head.fit(f_tr[:n].astype("float32"), keras.utils.to_categorical(y_tr[:n], 10),
                     batch_size=quick.head_batch_size, epochs=epochs, verbose=0)
            fit_seconds = time.perf_counter() - t1
            _, acc = head.evaluate(f_val.astype("float32"), keras.utils.to_categorical(y[val], 10), verbose=0)
            rows.append({"image_size": size, "train_images": n, "epochs": epochs, "lr": lr, "val_accuracy": round(acc, 4),
                         "extract_seconds": round(n * per_image, 2), "head_fit_seconds": round(fit_seconds, 2)})
            print(json.dumps(rows[-1]), flush=True)
    args.out.write_text(json.dumps({**provenance(), "validation_images": args.val_size, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
