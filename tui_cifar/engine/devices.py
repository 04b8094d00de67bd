"""Devices: which ones TensorFlow may use, GPU memory growth, and the tf.distribute strategy over them.

Every process that imports TensorFlow calls configure_tensorflow() before its first TensorFlow
operation: TensorFlow fixes the visible devices and the GPU memory policy when it initialises, and
a process without memory growth takes a card's free memory, starving a run beside it.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_applied: str | None = None  # the devices this process was configured with
_app_note: str | None = None  # configure_for_app's line for the screen


def parse_devices(spec: str) -> list[int] | None:
    """The `devices` setting ("auto", "cpu", or GPU numbers such as "0,1") as None for auto, [] for the CPU,
    else the GPU numbers; ValueError says what is wrong."""
    spec = str(spec).strip().lower()
    if spec in ("auto", ""):
        return None
    if spec == "cpu":
        return []
    parts = [p.strip() for p in spec.split(",")]
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"devices must be auto, cpu or GPU numbers such as 0 or 0,1, not {spec!r}")
    numbers = [int(p) for p in parts]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"devices lists a GPU twice: {spec!r}")
    return numbers


def choose_gpus(gpus: list, spec: str) -> list:
    """The GPUs of `gpus` (TensorFlow's physical devices) that `spec` keeps."""
    wanted = parse_devices(spec)
    if wanted is None:
        return list(gpus)
    missing = [n for n in wanted if n >= len(gpus)]
    if missing:
        raise ValueError(f"devices {spec!r}: no GPU {missing[0]} here; TensorFlow sees {len(gpus)} GPU(s) "
                         "(`cifar-tui doctor` lists them)")
    return [gpus[n] for n in wanted]


def configure_tensorflow(devices: str = "auto") -> list:
    """Make only `devices` visible and let the visible GPUs' memory grow; returns those GPUs.

    Call it before the first TensorFlow operation. Calling it again with the same devices is
    harmless; other devices after TensorFlow has initialised raise RuntimeError (TensorFlow's own).
    """
    global _applied
    import tensorflow as tf

    gpus = choose_gpus(tf.config.list_physical_devices("GPU"), devices)
    if _applied == devices:
        return gpus
    visible = tf.config.list_physical_devices("CPU") + gpus
    if tf.config.get_visible_devices() != visible:
        tf.config.set_visible_devices(visible)
    for gpu in gpus:
        # Grow memory as needed so a second process (a run, evaluation, the app) can share the card.
        tf.config.experimental.set_memory_growth(gpu, True)
    _applied = devices
    return gpus


def multi_worker_problem() -> str | None:
    """Why a TF_CONFIG naming several workers cannot train here, or None without one.

    Keras 3's model.fit fails under MultiWorkerMirroredStrategy ("Attempt to convert a value
    (PerReplica...) to a Tensor", keras-team/keras#20585; reproduced with Keras 3.15 by
    tests/test_devices.py), so a run across machines is refused before it writes anything.
    """
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    except (ValueError, AttributeError):
        return "TF_CONFIG is not a JSON object"
    tasks = sum(len(t) for t in cluster.values()) if isinstance(cluster, dict) else 0
    if tasks <= 1:
        return None
    return (f"TF_CONFIG names {tasks} workers, but training across machines does not work yet: Keras 3's "
            "model.fit fails under MultiWorkerMirroredStrategy (keras-team/keras#20585). "
            "Train on one machine (all its GPUs are used) and unset TF_CONFIG")


@dataclass
class Hardware:
    strategy: Any  # tf.distribute.Strategy
    description: str  # e.g. "GPU x2 (...), mixed precision", logged in run_start

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync


def setup_hardware(mixed_precision: str = "auto", devices: str = "auto") -> Hardware:
    """The strategy over the devices chosen.

    Several local devices (GPUs, or logical CPUs as the tests configure): MirroredStrategy,
    else the default strategy. Batches are global: each of N replicas gets 1/N of every batch (see README).
    """
    import keras
    import tensorflow as tf

    gpus = configure_tensorflow(devices)
    local = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    strategy = tf.distribute.MirroredStrategy([d.name for d in local]) if len(local) > 1 else tf.distribute.get_strategy()
    # float16 pays on GPUs with tensor cores; on CPUs it was slower here (see README), so off by default.
    use_mixed = mixed_precision == "on" or (mixed_precision == "auto" and bool(gpus))
    keras.mixed_precision.set_global_policy("mixed_float16" if use_mixed else "float32")
    if gpus:
        names = {tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus}
        description = f"GPU x{len(gpus)} ({', '.join(sorted(names))})"
    else:
        description = f"CPU ({os.cpu_count()} cores)"
    if strategy.num_replicas_in_sync > 1:
        description += f", {type(strategy).__name__} over {strategy.num_replicas_in_sync} replicas"
    if use_mixed:
        description += ", mixed precision"
    return Hardware(strategy, description)


def predict_split(model, x, batch_size: int):
    """model.predict(x) with each batch split across the replicas of the model's own strategy.

    Every batch is full (x is padded, the padding's outputs dropped): a short batch is split as
    unevenly as [44, 0], and an empty replica batch breaks some Keras layers. Not sharded across
    workers: each needs all the predictions. On one device, batch by batch through predict_on_batch
    (one compiled call per batch, no input pipeline to build per call), as before several devices.
    """
    import numpy as np
    import tensorflow as tf

    n = len(x)
    batch_size = max(1, min(batch_size, n))
    padded = np.pad(x, [(0, -n % batch_size)] + [(0, 0)] * (np.ndim(x) - 1))
    # The model's own strategy (the one it was built under), not the scope we happen to be in: predict_on_batch
    # on a mirrored model gives every replica the whole batch and concatenates their outputs.
    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    if strategy.num_replicas_in_sync == 1:
        parts = [model.predict_on_batch(padded[i:i + batch_size]) for i in range(0, len(padded), batch_size)]
        if isinstance(parts[0], (list, tuple)):
            return [np.concatenate([p[k] for p in parts])[:n] for k in range(len(parts[0]))]
        return np.concatenate(parts)[:n]
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    batches = tf.data.Dataset.from_tensor_slices(padded).batch(batch_size).with_options(options)
    out = model.predict(batches, verbose=0)
    return [o[:n] for o in out] if isinstance(out, list) else out[:n]


def uses_gpu(device_description: str | None) -> bool:
    """Whether a run_start record's device is a GPU (the app then keeps its own models on the CPU)."""
    return bool(device_description and device_description.startswith("GPU"))


def gpu_runs(runs_dir: Path) -> list[str]:
    """Names of the runs in runs_dir training on a GPU of this machine now (their run_start says the device)."""
    from ..runs import store

    busy = []
    for run_dir in store.iter_run_dirs(Path(runs_dir)):
        status = store.read_status(run_dir)
        if store.effective_state(status) != "running" or status.host != socket.gethostname():
            continue
        records, _ = store.read_metrics(run_dir)
        starts = [r for r in records if r.get("type") in ("run_start", "run_resume")]
        if starts and uses_gpu(starts[-1].get("device")):
            busy.append(run_dir.name)
    return busy


def configure_for_app(runs_dir: Path) -> str | None:
    """configure_tensorflow for the app's model screens, on the CPU while a run here trains on a GPU,
    so that they do not take the memory it needs; returns the line to show when so.

    Settled at the app's first model use: TensorFlow cannot move to other devices afterwards.
    """
    global _app_note
    if _applied is None:
        busy = gpu_runs(runs_dir)
        configure_tensorflow("cpu" if busy else "auto")
        if busy:
            _app_note = f"models run on the CPU: {busy[0]} is training on the GPU"
    return _app_note
