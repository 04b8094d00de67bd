"""A plain Keras script watched by cifar-tui: model.fit with the RunLogger callback, nothing else of cifar-tui.

    python docs/runlogger_example.py                  # about a minute on a laptop CPU, into ./runs
    cifar-tui watch runs/<its run folder>             # from a second terminal, while it trains
    cifar-tui runs                                    # or the app's runs screen: cifar-tui
    cifar-tui export runs/<its run folder> --tensorboard tb --csv metrics.csv

The images are synthetic (a colour and a stripe direction per class, under noise),
so it runs anywhere without a download; swap in your own data and model.
"""

import argparse

import keras
import numpy as np

from tui_cifar import RunLogger


def synthetic_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n 32x32 RGB images of 10 classes: class k has its own tint and stripe angle, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    angles = np.linspace(0, np.pi, 10, endpoint=False)
    tints = rng.random((10, 3))
    stripes = np.sin(8 * (np.cos(angles[labels])[:, None, None] * xx + np.sin(angles[labels])[:, None, None] * yy))
    images = 0.5 * tints[labels][:, None, None, :] + 0.25 * stripes[..., None] + rng.normal(0, 0.35, (n, 32, 32, 3))
    return images.astype("float32"), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--dropout", type=float, default=0.2)
    args = parser.parse_args()

    x, y = synthetic_images(args.samples)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dropout(args.dropout),
        keras.layers.Dense(10, activation="softmax"),
    ], name="small_cnn")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=3, name="top3")])
    logger = RunLogger(args.runs_dir, hparams={"dropout": args.dropout, "samples": args.samples}, batch_size=64)
    model.fit(x, y, batch_size=64, epochs=args.epochs, validation_split=0.2, verbose=2,
              callbacks=[logger, keras.callbacks.EarlyStopping(monitor="val_loss", patience=3)])
    print(f"run folder: {logger.run_dir}")


if __name__ == "__main__":
    main()
