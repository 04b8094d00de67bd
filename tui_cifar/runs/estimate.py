"""What a run will cost on this machine, before it starts: from what earlier runs in the runs folder measured.

No TensorFlow: the figures are the throughput, memory and feature-cache keys that
earlier runs with the same backbone and input size recorded in their metrics logs.
Nothing measured means nothing claimed ("no measurement yet").
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import TrainConfig, val_images
from ..engine.features import CACHE_SETTINGS, cache_present
from ..formatting import format_duration
from ..paths import features_cache_dir
from . import reader, store

CIFAR_TRAIN = 50000
CIFAR_TEST = 10000


@dataclass
class Measured:
    """What earlier comparable runs recorded: seconds, throughputs (images/s), peak memory (bytes)."""

    runs: int = 0
    startup: list[float] = field(default_factory=list)  # seconds before feature extraction (data, model)
    features: list[float] = field(default_factory=list)  # images/s through the frozen backbone
    # seconds per training image per epoch, stage 1 and 2: the stage's whole time (validation,
    # checkpoints) over its epochs, not the epoch records' images_per_sec, which leave those out
    stage_cost: dict[int, list[float]] = field(default_factory=lambda: {1: [], 2: []})
    evaluation: list[float] = field(default_factory=list)  # seconds of the final evaluation, less its images
    memory_peak: list[int] = field(default_factory=list)
    cache_keys: list[str] | None = None  # the feature-cache keys of an earlier run with the same data settings
    same_data_run: str | None = None


@dataclass
class Estimate:
    seconds: float | None
    memory_peak: int | None
    cache: str  # what happens to the frozen-backbone features
    basis: str  # where the figures come from

    def lines(self) -> list[str]:
        time = (f"about {format_duration(self.seconds)} (at most: early stopping may end it sooner)"
                if self.seconds is not None else "no measurement yet")
        memory = (f"peak {self.memory_peak / 2**30:.1f} GiB" if self.memory_peak
                  else "no measurement yet")
        return [f"Time: {time}", f"Memory: {memory}", f"Feature cache: {self.cache}", self.basis]


def _peak(memory: Any) -> int | None:
    """The largest peak an epoch record's ``memory`` holds (GPU allocator or process RSS)."""
    if not isinstance(memory, dict):
        return None
    peaks = [memory.get("rss_peak")]
    gpu = memory.get("gpu")
    if isinstance(gpu, dict):
        peaks += [use.get("peak") for use in gpu.values() if isinstance(use, dict)]
    return max((int(p) for p in peaks if isinstance(p, (int, float)) and not isinstance(p, bool)), default=None)


def _record_of(records: list[dict[str, Any]], kind: str, **match: Any) -> dict[str, Any] | None:
    """The last record of a type (with these fields), or None."""
    found = [r for r in records if r.get("type") == kind and all(r.get(k) == v for k, v in match.items())]
    return found[-1] if found else None


def _cache_setting(cfg: dict[str, Any], name: str) -> Any:
    """A run's setting as the cache saw it: the validation split by its size (val_size may be empty: a fraction)."""
    if name != "val_size":
        return cfg.get(name)
    try:
        return val_images(cfg.get("limit_train"), cfg.get("val_size"))
    except (TypeError, ValueError):  # a hand-edited config.json: no match
        return None


def measure(config: TrainConfig, runs_dir: Path) -> Measured:
    """What earlier runs with config's backbone and input size recorded."""
    m = Measured()
    wanted = {name: getattr(config, name) for name in CACHE_SETTINGS} | {"val_size": config.val_images}
    for run_dir in store.iter_run_dirs(runs_dir):
        cfg, _ = store.read_config(run_dir)
        if not cfg or (cfg.get("backbone"), cfg.get("image_size")) != (config.backbone, config.image_size):
            continue
        records, _ = store.read_metrics(run_dir)
        data = _record_of(records, "data")
        if not records or data is None:
            continue
        m.runs += 1
        extract = _record_of(records, "phase", phase="extract_features")
        if extract is not None and extract.get("wall_time"):  # the decoder checked: a finite number
            m.startup.append(float(extract["wall_time"]))
        features = _record_of(records, "features_done")
        feature_ips = features.get("images_per_sec") if features and not features.get("cache_hits") else None
        if feature_ips:
            m.features.append(float(feature_ips))
        if features and features.get("cache_keys") and all(_cache_setting(cfg, k) == v for k, v in wanted.items()):
            m.cache_keys, m.same_data_run = list(features["cache_keys"]), run_dir.name
        epochs = reader.epoch_records(records)
        times = reader.stage_times(records)
        for stage in (1, 2):
            n = sum(1 for r in epochs if r.get("stage") == stage)
            if f"stage{stage}" in times and n and data.get("train"):  # a count when there
                m.stage_cost[stage].append(times[f"stage{stage}"] / (n * data["train"]))
        evaluate, end = _record_of(records, "phase", phase="evaluate"), _record_of(records, "run_end")
        if (evaluate and end and end.get("state") == "finished" and feature_ips and data.get("test")
                and "wall_time" in end and "wall_time" in evaluate):
            test_images = data["test"] * (2 if cfg.get("tta_flip") else 1)
            m.evaluation.append(max(0.0, end["wall_time"] - evaluate["wall_time"] - test_images / feature_ips))
        m.memory_peak += [p for p in (_peak(r.get("memory")) for r in epochs) if p]
    return m


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def estimate_run(config: TrainConfig, cache_dir: Path | None = None, runs_dir: Path | None = None) -> Estimate:
    """Time, memory and feature-cache reuse of a run with ``config``.

    The earlier runs are those in ``runs_dir`` (default: config's runs folder); the cache is
    ``cache_dir`` (default: the one the run will use).
    """
    cache_dir = cache_dir if cache_dir is not None else features_cache_dir(config.cache_dir)
    m = measure(config, Path(runs_dir if runs_dir is not None else config.runs_dir).expanduser())
    n_train = (config.limit_train or CIFAR_TRAIN) - config.val_images
    n_views = 2 if config.augment else 1
    n_test = (config.limit_test or CIFAR_TEST) * (2 if config.tta_flip else 1)
    reused = m.cache_keys is not None and cache_present(cache_dir, m.cache_keys)
    if reused:
        cache = f"reused (same data and backbone as {m.same_data_run})"
    else:
        cache = f"{n_train * n_views + config.val_images:,} images to run through the backbone (then cached)"
    per_image = _median(m.features)
    per_image = 1 / per_image if per_image else None
    # (measured seconds, how many times): a part that happens but was never measured makes the time unknown
    parts = [
        (_median(m.startup), 1),
        (per_image, 0 if reused else n_train * n_views + config.val_images),
        (_median(m.stage_cost[1]), config.epochs_head * n_train),
        (_median(m.stage_cost[2]), config.epochs_fine * n_train if config.fine_tune_blocks != 0 else 0),
        (_median(m.evaluation), 1),
        (per_image, n_test),  # the test set runs through the whole model once (twice with TTA)
    ]
    seconds: float | None = 0.0
    for cost, times in parts:
        if not times:
            continue
        if cost is None or seconds is None:
            seconds = None
            break
        seconds += cost * times
    basis = (f"from {m.runs} earlier run(s) of {config.backbone} at {config.image_size}px in this runs folder"
             if m.runs else f"no earlier run of {config.backbone} at {config.image_size}px in this runs folder")
    return Estimate(seconds, max(m.memory_peak, default=None), cache, basis)
