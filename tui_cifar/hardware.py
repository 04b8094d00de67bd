"""Device discovery: one GPU, several GPUs (MirroredStrategy) or the CPU."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Hardware:
    strategy: object  # tf.distribute.Strategy
    description: str  # e.g. "GPU x2 (...), mixed precision", logged in run_start


def setup_hardware(mixed_precision: str = "auto") -> Hardware:
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        # Grow memory as needed so a second process (evaluation, the TUI) can share the card.
        tf.config.experimental.set_memory_growth(gpu, True)
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    # float16 pays on GPUs with tensor cores; on CPUs it was slower here (see README), so off by default.
    use_mixed = mixed_precision == "on" or (mixed_precision == "auto" and bool(gpus))
    keras.mixed_precision.set_global_policy("mixed_float16" if use_mixed else "float32")
    if gpus:
        names = {tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus}
        description = f"GPU x{len(gpus)} ({', '.join(sorted(names))})"
    else:
        import os

        description = f"CPU ({os.cpu_count()} cores)"
    if use_mixed:
        description += ", mixed precision"
    return Hardware(strategy, description)
