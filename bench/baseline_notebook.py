"""A faithful reimplementation of the seed notebook's pipeline, for side-by-side timing.

Frozen MobileNetV2 (ImageNet) at 96x96, head = global pooling, Dense 128 (ReLU),
Dropout 0.5, Dense 10 softmax; Adam (default rate), batch 32, `model.fit`
through the frozen backbone every epoch. Early stopping (patience 2, best
weights restored) watches a validation split carved from the training set
(the notebook watched the test set; we do not). The test accuracy after each
epoch is *measured* for the report's learning curve and chooses nothing.

Writes one JSON object with per-epoch seconds and accuracies to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit-train", type=int, default=None, help="for a quick check of this script")
    args = parser.parse_args()

    import keras
    import numpy as np

    from tui_cifar.data import make_splits

    start = time.perf_counter()
    keras.utils.set_random_seed(42)
    splits = make_splits(args.data_dir, val_size=5000 if not args.limit_train else args.limit_train // 10,
                         seed=42, limit_train=args.limit_train)
    base = keras.applications.MobileNetV2(include_top=False, weights="imagenet", input_shape=(96, 96, 3))
    base.trainable = False
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Resizing(96, 96)(inputs)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(x)  # mobilenet_v2.preprocess_input
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    epochs: list[dict] = []
    train_seconds = 0.0

    class Measure(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            nonlocal train_seconds
            seconds = time.perf_counter() - self.t0
            train_seconds += seconds
            # Measured for the learning curve only; nothing below reads it back.
            _, test_acc = self.model.evaluate(splits.x_test, splits.y_test, batch_size=256, verbose=0)
            epochs.append({"epoch": epoch + 1, "seconds": round(seconds, 1), "train_seconds_so_far": round(train_seconds, 1),
                           "val_accuracy": logs["val_accuracy"], "test_accuracy": test_acc})
            print(json.dumps(epochs[-1]), flush=True)

    model.fit(
        splits.x_train.astype(np.float32), splits.y_train, batch_size=32, epochs=args.epochs,
        validation_data=(splits.x_val.astype(np.float32), splits.y_val),
        callbacks=[Measure(), keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=True)],
        verbose=0,
    )
    _, final_test = model.evaluate(splits.x_test, splits.y_test, batch_size=256, verbose=0)
    result = {
        "pipeline": "seed notebook (frozen MobileNetV2 96px, Dense128+Dropout0.5, Adam, batch 32)",
        "epochs": epochs,
        "final_test_accuracy": final_test,
        "best_test_accuracy": max(e["test_accuracy"] for e in epochs),
        "seconds_per_epoch": round(sum(e["seconds"] for e in epochs) / len(epochs), 1),
        "wall_time": round(time.perf_counter() - start, 1),
    }
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
