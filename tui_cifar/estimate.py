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

from . import runreader, runstore
from .config import TrainConfig
from .features import CACHE_SETTINGS, cache_present
from .formatting import format_duration

CIFAR_TRAIN = 50000
CIFAR_TEST = 10000


@dataclass
class Measured:
    """Throughputs (images/s) and peak memory (bytes) earlier comparable runs recorded."""

    runs: int = 0
    features: list[float] = field(default_factory=list)
    stage1: list[float] = field(default_factory=list)
    stage2: list[float] = field(default_factory=list)
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
    peaks = [int(p) for p in peaks if isinstance(p, (int, float)) and not isinstance(p, bool)]
    return max(peaks, default=None)


def measure(config: TrainConfig, runs_dir: Path) -> Measured:
    """What earlier runs with config's backbone and input size recorded."""
    measured = Measured()
    wanted = {name: getattr(config, name) for name in CACHE_SETTINGS}
    for run_dir in runstore.iter_run_dirs(runs_dir):
        cfg, _ = runstore.read_json(run_dir / runstore.CONFIG_FILE)
        if not cfg or (cfg.get("backbone"), cfg.get("image_size")) != (config.backbone, config.image_size):
            continue
        records, _ = runstore.read_metrics(run_dir)
        if not records:
            continue
        measured.runs += 1
        for rec in records:
            ips = rec.get("images_per_sec")
            if rec.get("type") == "features_done" and not rec.get("cache_hits") and ips:
                measured.features.append(float(ips))
            if rec.get("type") == "features_done" and rec.get("cache_keys") and all(
                    cfg.get(k) == v for k, v in wanted.items()):
                measured.cache_keys, measured.same_data_run = list(rec["cache_keys"]), run_dir.name
        for rec in runreader.epoch_records(records):
            ips = rec.get("images_per_sec")
            if ips and not rec.get("partial"):
                (measured.stage1 if rec.get("stage", 1) == 1 else measured.stage2).append(float(ips))
            peak = _peak(rec.get("memory"))
            if peak:
                measured.memory_peak.append(peak)
    return measured


def estimate_run(config: TrainConfig, cache_dir: Path, runs_dir: Path | None = None) -> Estimate:
    """Time, memory and feature-cache reuse of a run with ``config`` (its runs folder holds the earlier runs)."""
    m = measure(config, Path(runs_dir if runs_dir is not None else config.runs_dir).expanduser())
    n_train = (config.limit_train or CIFAR_TRAIN) - config.val_size
    n_views = 2 if config.augment else 1
    n_test = (config.limit_test or CIFAR_TEST) * (2 if config.tta_flip else 1)
    reused = m.cache_keys is not None and cache_present(cache_dir, m.cache_keys)
    if reused:
        cache = f"reused (same data and backbone as {m.same_data_run})"
    else:
        cache = f"{n_train * n_views + config.val_size:,} images to run through the backbone (then cached)"
    seconds: float | None = 0.0
    parts = [
        (0 if reused else n_train * n_views + config.val_size, m.features),
        (config.epochs_head * n_train, m.stage1),
        (config.epochs_fine * n_train if config.fine_tune_blocks != 0 else 0, m.stage2),
        (n_test, m.features),  # the test set runs through the whole model once (twice with TTA)
    ]
    for images, speeds in parts:
        if not images:
            continue
        if not speeds:
            seconds = None
            break
        seconds += images / statistics.median(speeds)
    basis = (f"from {m.runs} earlier run(s) of {config.backbone} at {config.image_size}px in this runs folder"
             if m.runs else f"no earlier run of {config.backbone} at {config.image_size}px in this runs folder")
    return Estimate(seconds, max(m.memory_peak, default=None), cache, basis)
