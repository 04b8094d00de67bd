"""Classify the user's own pictures with a run's saved model."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CifarTuiError
from ..runs import store
from .data import CLASS_NAMES
from .images import ImageScan, find_images, load_many

# A run folder's subfolder for CSVs of the user's own pictures.
PREDICTIONS_DIR = "predictions"


class ModelLoadError(CifarTuiError):
    """The model file is missing, unsafe, or not a CIFAR-10 classifier."""

    title = "Cannot load the model"


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
    passes = [images, images[:, :, ::-1]] if tta_flip else [images]
    total = len(images) * len(passes)
    step = batch_size * 4  # images per predict call: progress (and a stop raised from it) comes between calls
    outputs = []
    for k, pass_images in enumerate(passes):
        chunks = []
        for start in range(0, len(images), step):
            chunk = pass_images[start:start + step].astype(np.float32)
            # a forward.Forward or a Keras model; under a tf.distribute strategy the replicas split each batch
            chunks.append(np.asarray(model.predict(chunk, batch_size=batch_size, verbose=0)))
            if progress is not None:
                progress(k * len(images) + start + len(chunk), total)
        outputs.append(np.concatenate(chunks) if chunks else np.empty((0, 10)))
    probs = np.asarray(sum(outputs) / len(outputs), dtype=np.float64)
    return probs / probs.sum(axis=1, keepdims=True)  # float16/32 softmax sums drift from 1


@dataclass
class FilePrediction:
    path: Path
    top: list[tuple[str, float]] | None
    error: str | None = None
    root: Path | None = None  # the folder it was found in, for a picture found by find_images

    @property
    def relative_path(self) -> Path:
        """The path under the searched folder (its class subfolder first), or the path as given."""
        return self.path.relative_to(self.root) if self.root is not None else self.path


@dataclass
class FolderPredictions:
    """A folder searched with find_images and every picture found in it classified."""

    scan: ImageScan
    results: list[FilePrediction]

    @property
    def failed(self) -> int:
        return sum(r.error is not None for r in self.results)

    def summary(self) -> str:
        """E.g. "12 images found in 3 folders, 1 skipped; 11 classified, 1 failed"."""
        return f"{self.scan.summary()}; {len(self.results) - self.failed} classified, {self.failed} failed"


class Classifier:
    def __init__(self, model, tta_flip: bool = True):
        """``model``: a Keras model, or a forward.Forward running one."""
        self.model = model
        self.tta_flip = tta_flip

    @property
    def keras_model(self):
        """The Keras model itself, whichever runtime serves predictions (Grad-CAM needs its gradients)."""
        return getattr(self.model, "model", self.model)

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        return predict_probabilities(self.model, images, self.tta_flip, batch_size=64)

    def classify_files(self, paths, top_k: int = 5, root: Path | None = None) -> list[FilePrediction]:
        """One result per path, in order; a bad file gets an error and the others still get classified.

        root: the folder the paths were found under, kept for their relative paths.
        """
        loaded = load_many([Path(p) for p in paths])
        good = [r for r in loaded if r.array is not None]
        probs = self.predict_arrays(np.stack([r.array for r in good if r.array is not None])) if good else np.empty((0, 10))
        by_path = {id(r): p for r, p in zip(good, probs)}
        results = []
        for r in loaded:
            if r.array is None:
                results.append(FilePrediction(r.path, None, r.error, root))
                continue
            p = by_path[id(r)]
            order = np.argsort(p)[::-1][:top_k]
            results.append(FilePrediction(r.path, [(CLASS_NAMES[i], float(p[i])) for i in order], root=root))
        return results

    def classify_folder(self, folder: Path) -> FolderPredictions:
        """Every picture in folder and its subfolders, with all 10 probabilities; raises ImageLoadError."""
        scan = find_images(folder)
        return FolderPredictions(scan, self.classify_files(scan.images, top_k=len(CLASS_NAMES), root=scan.root))


def default_csv_path(run_or_model: Path, folders: list[Path]) -> Path:
    """Where predictions go without --csv: never inside the picture folder, which may be read-only or shared.

    A run folder's predictions/ keeps them beside the model that made them; for a
    bare .keras file, the current directory.
    """
    name = Path(folders[0]).resolve().name if len(folders) == 1 else "predictions"
    run_or_model = Path(run_or_model).expanduser()
    if run_or_model.is_dir():
        return run_or_model / PREDICTIONS_DIR / f"{name or 'predictions'}.csv"
    return Path.cwd() / f"predictions-{run_or_model.stem}-{name or 'root'}.csv"


def write_csv(results: list[FilePrediction], csv_path: Path) -> None:
    """Path, path under the searched folder, predicted class, confidence, all 10 probabilities and the error.

    Written whole or not at all (files.atomic_write_csv): a photo's name is the photographer's, so a
    name a spreadsheet would run as a formula gets a leading quote, and bytes that are not UTF-8 are
    written as \\xNN (formatting.lossless_text).
    """
    from ..files import atomic_write_csv

    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)

    def rows():
        for r in results:
            probs = dict(r.top or [])
            best = r.top[0] if r.top else ("", None)
            yield [str(r.path), r.relative_path.as_posix(), best[0], "" if best[1] is None else f"{best[1]:.4f}",
                   *[f"{probs[c]:.4f}" if c in probs else "" for c in CLASS_NAMES], r.error or ""]

    atomic_write_csv(csv_path, ["path", "relative_path", "prediction", "confidence", *CLASS_NAMES, "error"], rows())


def load_classifier(run_or_model: Path, runtime: str | None = None, cache_dir: str | None = None) -> Classifier:
    """A Classifier from a run folder (its model.keras, TTA and runtime settings) or a .keras file.

    The model runs on ``runtime`` if given, else the run's setting (auto: LiteRT on a CPU). Its
    LiteRT conversion is looked up in ``cache_dir`` (the user's, default: paths.features_cache_dir),
    keyed by model.keras's bytes: never in a cache the run's config.json names.
    """
    from .forward import RUNTIMES, saved_model_forward

    path = Path(run_or_model).expanduser()
    config: dict = {}
    if path.is_dir():
        config = store.read_json(path / store.CONFIG_FILE)[0] or {}
        reason = store.no_cifar_model_reason(config)
        if reason:
            raise ModelLoadError(f"{path}: {reason}")
        path = path / store.MODEL_FILE
    runtime = runtime or (config["runtime"] if config.get("runtime") in RUNTIMES else "auto")
    forward = saved_model_forward(load_model_checked(path), path, runtime, cache_dir)
    return Classifier(forward, bool(config.get("tta_flip", True)))
