"""Frozen-backbone throughput (images/s) by input size, compute precision and XLA, on this machine.

Feature extraction is the floor of every CPU run (one forward pass per image
and view), so this is what input size and precision cost. MobileNetV2 with
ImageNet weights, batches of 64 random 32x32 images, after a warm-up.
Writes JSON to --out.

    python bench/extract_speed.py --out bench/extract_speed.json
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
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 112, 128, 144, 160, 192])
    parser.add_argument("--policies", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf
    from run_bench import provenance

    from tui_cifar.engine.model import build_transfer_model
    from tui_cifar.engine.training import EXTRACT_BATCH

    images = np.random.default_rng(0).integers(0, 256, (args.images, 32, 32, 3)).astype(np.float32)
    rows = []
    for size, policy, xla in itertools.product(args.sizes, args.policies, (False, True)):
        keras.mixed_precision.set_global_policy(policy)
        extractor = build_transfer_model("mobilenetv2", size, 0, "imagenet").extractor
        if xla:
            run = tf.function(lambda batch: extractor(batch, training=False), jit_compile=True)
        else:
            run = extractor.predict_on_batch
        for _ in range(2):
            run(images[:EXTRACT_BATCH])  # compile
        started = time.perf_counter()
        for start in range(0, len(images), EXTRACT_BATCH):
            run(images[start : start + EXTRACT_BATCH])
        rows.append({"image_size": size, "policy": policy, "xla": xla,
                     "images_per_sec": round(len(images) / (time.perf_counter() - started), 1)})
        print(json.dumps(rows[-1]), flush=True)
    keras.mixed_precision.set_global_policy("float32")
    args.out.write_text(json.dumps({**provenance(), "batch_size": EXTRACT_BATCH, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
