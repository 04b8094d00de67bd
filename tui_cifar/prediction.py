"""Classify the user's own pictures with a run's saved model."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import runstore
from .data import CLASS_NAMES
from .images import find_images, load_many


class ModelLoadError(Exception):
    """The model file is missing, unsafe, or not a CIFAR-10 classifier."""


def load_model_checked(path: Path):
    """Load a .keras model in safe mode and check it is a 10-class classifier of 32x32 RGB images."""
    import keras

    from . import model as _registers_custom_layers  # noqa: F401  (BackbonePreprocess)

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"no model at {path}: the run has not saved one yet (it saves after the first epoch)")
    try:
        # safe_mode refuses Lambda layers and other code embedded in the file.
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:
        reason = str(exc)
        if "arbitrary code execution" in reason:  # Keras' safe_mode refusal, cut short it would end mid-sentence
            layer = re.search(r"deserialization of a `?(\w+)`? layer", reason)
            raise ModelLoadError(
                f"refused to load {path}: it contains {f'a {layer.group(1)} layer' if layer else 'a layer'} "
                "with Python code, which could do anything on this computer (Keras safe_mode); "
                "cifar-tui only loads models without embedded code"
            ) from exc
        first = reason.splitlines()[0][:200] if reason.strip() else "no details"
        raise ModelLoadError(f"cannot load {path}: {type(exc).__name__}: {first}") from exc
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1 or tuple(inputs[0].shape[1:]) != (32, 32, 3):
        raise ModelLoadError(f"{path} is not a CIFAR-10 model: it expects input {[tuple(i.shape) for i in inputs]}, not (None, 32, 32, 3)")
    if tuple(model.outputs[0].shape[1:]) != (len(CLASS_NAMES),):
        raise ModelLoadError(f"{path} is not a CIFAR-10 model: it outputs {tuple(model.outputs[0].shape)}, not (None, 10)")
    return model


def predict_probabilities(model, images: np.ndarray, tta_flip: bool, batch_size: int = 256,
                          progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Class probabilities; with tta_flip, the mean over each image and its mirror.

    The one serving path: the evaluation scores the test set through it, the CLI and the app classify pictures.
    ``progress(done, total)`` is called after each batch with the forward passes done so far (twice the
    images with tta_flip); an exception it raises (a stop request) ends the prediction there.
    """
    import keras

    passes = [images, images[:, :, ::-1]] if tta_flip else [images]
    total = len(images) * len(passes)
    outputs = []
    for k, batch_images in enumerate(passes):
        def report(batch, logs, before=k * len(images)):
            progress(min(before + (batch + 1) * batch_size, before + len(images)), total)

        callbacks = [keras.callbacks.LambdaCallback(on_predict_batch_end=report)] if progress is not None else []
        outputs.append(model.predict(batch_images.astype(np.float32), batch_size=batch_size, verbose=0, callbacks=callbacks))
    probs = np.asarray(sum(outputs) / len(outputs), dtype=np.float64)
    return probs / probs.sum(axis=1, keepdims=True)  # float16/32 softmax sums drift from 1


@dataclass
class FilePrediction:
    path: Path
    top: list[tuple[str, float]] | None
    error: str | None = None


class Classifier:
    def __init__(self, model, tta_flip: bool = True):
        self.model = model
        self.tta_flip = tta_flip

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        return predict_probabilities(self.model, images, self.tta_flip, batch_size=64)

    def classify_files(self, paths, top_k: int = 5) -> list[FilePrediction]:
        """One result per path, in order; a bad file gets an error and the others still get classified."""
        loaded = load_many([Path(p) for p in paths])
        good = [r for r in loaded if r.array is not None]
        probs = self.predict_arrays(np.stack([r.array for r in good])) if good else np.empty((0, 10))
        by_path = {id(r): p for r, p in zip(good, probs)}
        results = []
        for r in loaded:
            if r.array is None:
                results.append(FilePrediction(r.path, None, r.error))
                continue
            p = by_path[id(r)]
            order = np.argsort(p)[::-1][:top_k]
            results.append(FilePrediction(r.path, [(CLASS_NAMES[i], float(p[i])) for i in order]))
        return results

    def classify_folder_to_csv(self, folder: Path, csv_path: Path) -> tuple[int, int]:
        """Classify every image of a folder into a CSV; returns (classified, failed)."""
        results = self.classify_files(find_images(folder), top_k=len(CLASS_NAMES))
        write_csv(results, csv_path)
        ok = sum(r.error is None for r in results)
        return ok, len(results) - ok


def write_csv(results: list[FilePrediction], csv_path: Path) -> None:
    """Path, predicted class, confidence, all 10 probabilities and the error, one row per image."""
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "prediction", "confidence", *CLASS_NAMES, "error"])
        for r in results:
            probs = dict(r.top or [])
            best = r.top[0] if r.top else ("", None)
            writer.writerow([str(r.path), best[0], "" if best[1] is None else f"{best[1]:.4f}",
                             *[f"{probs[c]:.4f}" if c in probs else "" for c in CLASS_NAMES], r.error or ""])


def load_classifier(run_or_model: Path) -> Classifier:
    """A Classifier from a run folder (its model.keras and TTA setting) or a .keras file."""
    path = Path(run_or_model).expanduser()
    if path.is_dir():
        config, _ = runstore.read_json(path / runstore.CONFIG_FILE)
        return Classifier(load_model_checked(path / runstore.MODEL_FILE), bool((config or {}).get("tta_flip", True)))
    return Classifier(load_model_checked(path))
