"""Memory in use by the training process, for the epoch records (issue 13, item 5).

No TensorFlow import here: GPU memory is read only when TensorFlow is already
loaded (it is, in any process that trains with it), so readers stay light.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def _rss_bytes() -> int | None:
    """Resident memory of this process now (Linux /proc; None where it is not available)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _rss_peak_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def _gpu_memory() -> dict[str, dict[str, int]]:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return {}
    usage = {}
    for i, _device in enumerate(tf.config.list_logical_devices("GPU")):
        name = f"GPU:{i}"
        try:
            info = tf.config.experimental.get_memory_info(name)
        except (ValueError, RuntimeError):  # a device TensorFlow keeps no allocator statistics for
            continue
        usage[name] = {"current": int(info["current"]), "peak": int(info["peak"])}
    return usage


def resource_usage() -> dict[str, Any]:
    """{"rss", "rss_peak"} in bytes for this process, plus {"gpu": {"GPU:0": {"current", "peak"}}} on GPU.

    The GPU peak is TensorFlow's allocator peak since the process started.
    """
    rss, peak = _rss_bytes(), _rss_peak_bytes()
    if rss is not None and peak is not None:
        peak = max(peak, rss)  # the kernel updates the peak lazily; it is never below the current size
    usage: dict[str, Any] = {"rss": rss, "rss_peak": peak}
    gpu = _gpu_memory()
    if gpu:
        usage["gpu"] = gpu
    return usage
