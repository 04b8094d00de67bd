"""Frozen-backbone outputs, computed once and cached on disk.

A frozen layer gives the same output for the same image every epoch, so paying
for it every epoch (what `model.fit` through a frozen backbone does) is waste.
The cache key covers everything that changes the output: backbone, the values
of its weights (a replaced or re-downloaded weights file is a new key), input
size, freeze boundary, compute dtype, view (original or mirrored) and the exact pixels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..files import atomic_write

VIEWS = ("original", "mirrored")

# The settings a run's cache keys depend on: the model (backbone, weights, size, freeze boundary)
# and the images (data folder, split and subset: seed, val_size, limit_train; the views: augment).
CACHE_SETTINGS = ("backbone", "weights", "image_size", "fine_tune_blocks", "data_dir", "seed", "val_size",
                  "limit_train", "augment")


def view_of(images: np.ndarray, view: str) -> np.ndarray:
    return images[:, :, ::-1, :] if view == "mirrored" else images


def model_id(backbone: str, image_size: int, bottom, extractor) -> str:
    """What identifies the frozen network in the cache key.

    The weights are fingerprinted by their loaded values, not by name or by file: that covers a
    replaced weights file and --weights none's random initialisation alike, and Keras does not say
    which file it read. Hashing them costs about a second per 100 MB, next to minutes of extraction.
    The freeze boundary goes in by position, not layer name: Keras numbers unnamed layers per
    process (activation_17), so a name can change between runs or mean another layer.
    """
    digest = hashlib.sha1()
    for array in extractor.get_weights():
        digest.update(np.ascontiguousarray(array).data)
    cut = f"{len(bottom.layers)}:{tuple(bottom.output.shape[1:])}"
    return f"{backbone}|{digest.hexdigest()[:16]}|{image_size}|{cut}|{extractor.dtype_policy.name}|v3"


def cache_key(model_id: str, view: str, images: np.ndarray) -> str:
    digest = hashlib.sha1(f"{model_id}|{view}|{images.shape}".encode())
    digest.update(np.ascontiguousarray(images).data)
    return digest.hexdigest()[:20]


# Images per call to the extractor: a stop request or a progress report waits at most this many batches.
CHUNK_BATCHES = 8


def extract(
    extractor,
    images: np.ndarray,
    batch_size: int,
    on_progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    keep_activations: bool = True,
) -> tuple[np.ndarray | None, np.ndarray]:
    """(boundary activations, pooled features) as float16, a few batches at a time to bound memory.

    Through the extractor's ``predict`` (a forward.Forward: LiteRT, or devices.predict_split for Keras),
    so that under a tf.distribute strategy every batch is split across the replicas.
    """
    act_shape = tuple(extractor.outputs[0].shape[1:])
    pooled_dim = extractor.outputs[1].shape[-1]
    acts = np.empty((len(images), *act_shape), np.float16) if keep_activations else None
    pooled = np.empty((len(images), pooled_dim), np.float16)
    step = batch_size * CHUNK_BATCHES
    for start in range(0, len(images), step):
        if should_stop():
            raise InterruptedError("stopped during feature extraction")
        chunk = images[start : start + step].astype(np.float32)
        n = len(chunk)
        chunk_acts, chunk_pooled = extractor.predict(chunk, batch_size=batch_size, verbose=0)
        if acts is not None:
            acts[start : start + n] = chunk_acts
        pooled[start : start + n] = chunk_pooled
        if on_progress:
            on_progress(start + n)
    return acts, pooled


def cached_extract(
    cache_dir: Path,
    model_id: str,
    view: str,
    images: np.ndarray,
    extractor,
    batch_size: int,
    keep_activations: bool,
    on_progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[np.ndarray | None, np.ndarray, bool, str]:
    """Like extract(), reusing the on-disk cache; also whether it was a cache hit, and the cache key."""
    images = view_of(images, view)
    key = cache_key(model_id, view, images)
    cache_dir = Path(cache_dir)
    acts_path, pooled_path = cache_dir / f"{key}.acts.npy", cache_dir / f"{key}.pooled.npy"
    if pooled_path.exists() and (acts_path.exists() or not keep_activations):
        try:
            pooled = np.load(pooled_path)
            acts = np.load(acts_path) if keep_activations else None
            if len(pooled) == len(images) and (acts is None or len(acts) == len(images)):
                if on_progress:
                    on_progress(len(images))
                return acts, pooled, True, key
        except (OSError, ValueError):
            pass  # a damaged cache file is recomputed below
    acts, pooled = extract(extractor, images, batch_size, on_progress, should_stop, keep_activations)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _save_npy(pooled_path, pooled)
        if acts is not None:
            _save_npy(acts_path, acts)
    except OSError:
        pass  # the cache is an optimisation: a full or read-only disk must not fail the run
    return acts, pooled, False, key


def cache_present(cache_dir: Path, keys: list[str]) -> bool:
    """Whether the pooled features of all these cache keys are on disk (a run with them skips extraction)."""
    return bool(keys) and all((Path(cache_dir) / f"{key}.pooled.npy").exists() for key in keys)


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda tmp: np.save(tmp, array))
