"""Where a run's time goes: this process's CPU use and memory, and each NVIDIA GPU's use, every few seconds.

No TensorFlow and no Textual here: the trainer's callback, RunLogger and the app share it. NVML
(``nvidia-ml-py``, the ``[gpu]`` extra) is imported only when a sampler starts; without it, a driver or
a GPU, samples say "no GPU telemetry" and training goes on. A sample is a ``telemetry`` record of the
run's metrics.jsonl::

    {"type": "telemetry", "cpu_pct": 183.0, "cpus": 16, "rss": 2147483648,
     "gpus": [{"index": 0, "name": "NVIDIA H200", "util": 87.0, "mem_used": ..., "mem_total": ..., "power_w": 412.3}]}

``cpu_pct`` is the process's CPU time over wall time (100 = one core busy), as ``top`` shows it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..runs import records
from .resources import _rss_bytes

RECORD_TYPE = "telemetry"
NO_GPU = "no GPU telemetry"
DEFAULT_INTERVAL = 5.0  # seconds between samples


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class Nvml:
    """NVIDIA's management library, if it can be loaded; ``problem`` says why not."""

    def __init__(self) -> None:
        self.problem: str | None = None
        self._handles: list[Any] = []
        self._names: list[str] = []
        try:
            import pynvml  # nvidia-ml-py

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._names = [_text(pynvml.nvmlDeviceGetName(h)) for h in self._handles]
            self._nvml = pynvml
        except ImportError:
            self.problem = f"{NO_GPU} (nvidia-ml-py not installed: pip install 'cifar-tui[gpu]')"
        except Exception as exc:  # NVMLError: no driver, no device, no permission
            self.problem = f"{NO_GPU} ({str(exc).strip() or type(exc).__name__})"
        if self.problem is None and not self._handles:
            self.problem = f"{NO_GPU} (NVML sees no GPU)"

    def sample(self) -> list[records.GpuSample]:
        """One entry per GPU; a reading the card does not offer (power on some boards) is None."""
        return [self._sample_one(index, name, handle)
                for index, (handle, name) in enumerate(zip(self._handles, self._names))]

    def _sample_one(self, index: int, name: str, handle: Any) -> records.GpuSample:
        nvml = self._nvml
        return records.GpuSample(
            index=index, name=name,
            util=self._read(lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)),
            mem_used=self._read(lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).used)),
            mem_total=self._read(lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).total)),
            power_w=self._read(lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0))

    @staticmethod
    def _read(get: Callable[[], Any]) -> Any:
        try:
            return get()
        except Exception:  # NVMLError_NotSupported and kin
            return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Sampler:
    """Telemetry records of this process (and the GPUs) at most every ``interval`` seconds.

    ``poll()`` is cheap enough to call on every batch: it returns a record only when one is due.
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL, gpus: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.nvml = Nvml() if gpus else None
        self._last_t = clock()
        self._last_cpu = _cpu_seconds()
        self._due = self._last_t + interval

    def poll(self) -> records.TelemetryRecord | None:
        if self.clock() < self._due:
            return None
        return self.sample()

    def sample(self) -> records.TelemetryRecord:
        now, cpu = self.clock(), _cpu_seconds()
        span = now - self._last_t
        cpu_pct = round(100.0 * (cpu - self._last_cpu) / span, 1) if span > 0 else None
        self._last_t, self._last_cpu, self._due = now, cpu, now + self.interval
        if self.nvml is not None and self.nvml.problem is None:
            return records.telemetry_record(cpu_pct, os.cpu_count(), _rss_bytes(), gpus=self.nvml.sample())
        return records.telemetry_record(cpu_pct, os.cpu_count(), _rss_bytes(),
                                        gpu_problem=self.nvml.problem if self.nvml is not None else NO_GPU)


def listener(write: Callable[[Any], None], sampler: Sampler | None = None,
             clock: Callable[[], float] | None = None) -> Callable[[dict[str, Any]], None]:
    """A metrics writer's listener that writes a telemetry sample through ``write`` when one is due.

    Every record the run writes (extraction's progress, batches, epochs, the test report's progress)
    gives the sampler its chance, so samples come every few seconds in every phase, with no thread.
    """
    sampler = sampler or Sampler()

    def on_record(record: dict[str, Any]) -> None:
        if record.get("type") in (RECORD_TYPE, "run_end"):  # the run's last record stays its last
            return
        sample = sampler.poll()
        if sample is not None:
            if clock is not None:
                sample["wall_time"] = clock()
            write(sample)

    return on_record


# --- reading samples back -------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _size(n: float | None) -> str:
    if n is None:
        return "–"
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def telemetry_line(record: dict[str, Any] | None) -> str:
    """A sample as one line: "CPU 183% (1.8 of 16 cores) · RSS 2.1 GiB · GPU0 87% 12.3/140 GiB 412 W".

    The CPU figure is per core, as top's (100% = one core busy): the cores it amounts to are written
    beside it, so "100%" of a 16-core machine never reads as the whole machine busy.
    """
    return " · ".join(telemetry_items(record))


def telemetry_items(record: dict[str, Any] | None) -> list[str]:
    """The figures of telemetry_line, one item each (a narrow screen breaks the line between them)."""
    if not isinstance(record, dict):
        return []
    parts = []
    cpu = _num(record.get("cpu_pct"))
    cpus = _num(record.get("cpus"))
    if cpu is not None:
        parts.append(f"CPU {cpu:.0f}% ({cpu / 100:.1f} " + (f"of {cpus:.0f} cores)" if cpus else "cores)"))
    if _num(record.get("rss")) is not None:
        parts.append(f"RSS {_size(_num(record.get('rss')))}")
    gpus = record.get("gpus")
    if isinstance(gpus, list) and gpus:
        for gpu in gpus:
            if not isinstance(gpu, dict):
                continue
            util, power = _num(gpu.get("util")), _num(gpu.get("power_w"))
            used, total = _num(gpu.get("mem_used")), _num(gpu.get("mem_total"))
            bit = f"GPU{gpu.get('index', '')} " + (f"{util:.0f}%" if util is not None else "–%")
            if used is not None:
                bit += f" {used / 2**30:.1f}/{total / 2**30:.0f} GiB" if total else f" {_size(used)}"
            if power is not None:
                bit += f" {power:.0f} W"
            parts.append(bit)
    else:
        parts.append(NO_GPU)
    return parts


def mean_gpu_util(record: dict[str, Any]) -> float | None:
    """The mean utilisation over a sample's GPUs, or None without GPU readings."""
    gpus = record.get("gpus") if isinstance(record, dict) else None
    utils = [u for g in gpus if isinstance(g, dict) and (u := _num(g.get("util"))) is not None] if isinstance(gpus, list) else []
    return sum(utils) / len(utils) if utils else None


# A GPU busier than this is not waiting on its input; images/s within this fraction of their mean is flat.
BUSY_GPU_PCT = 60.0
FLAT_SPREAD = 0.10


def input_bound_hint(samples: Sequence[dict[str, Any]], images_per_sec: Sequence[float],
                     window: int = 3) -> str | None:
    """The plain hint when the GPU waits on its input, or None.

    It fires when the last ``window`` telemetry samples have the GPUs on average under BUSY_GPU_PCT busy
    while the last ``window`` throughput figures (per epoch) stay within FLAT_SPREAD of their mean: more
    GPU time was free, yet images/s did not grow, so the images did not come faster.
    """
    utils = [u for s in samples[-window:] if (u := mean_gpu_util(s)) is not None]
    rates = [r for r in images_per_sec[-window:] if _num(r) is not None and r > 0]
    if len(utils) < window or len(rates) < min(window, 2):
        return None
    busy = sum(utils) / len(utils)
    mean_rate = sum(rates) / len(rates)
    flat = (max(rates) - min(rates)) <= FLAT_SPREAD * mean_rate
    if busy < BUSY_GPU_PCT and flat:
        return f"GPU {busy:.0f}% busy while images/s is flat: the input pipeline is the bottleneck"
    return None
