"""Telemetry: real samples of this process's CPU and memory; the GPU path's absence; the input-bound rule."""

from __future__ import annotations

import time

from tui_cifar.engine import telemetry
from tui_cifar.runs import records


def test_sampler_measures_this_process_cpu_and_memory():
    sampler = telemetry.Sampler(interval=0.0, gpus=False)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # keep one core busy
        sum(range(10_000))
    rec = sampler.sample()
    assert rec["type"] == "telemetry" and records.decode_record(rec) is rec  # the record kind records.py checks
    assert rec["cpu_pct"] > 5  # one core busy (far less than 100 on a box shared with other jobs)
    assert rec["rss"] > 10 * 2**20
    assert rec["gpu_problem"] == telemetry.NO_GPU
    assert "CPU" in telemetry.telemetry_line(rec) and "no GPU telemetry" in telemetry.telemetry_line(rec)


def test_sampler_polls_only_when_due():
    now = [0.0]
    sampler = telemetry.Sampler(interval=5.0, gpus=False, clock=lambda: now[0])
    assert sampler.poll() is None
    now[0] = 5.0
    assert sampler.poll()["type"] == "telemetry"
    now[0] = 6.0
    assert sampler.poll() is None


def test_absent_nvml_is_a_message_never_an_error():
    nvml = telemetry.Nvml()  # this box: no nvidia-ml-py or no driver
    assert nvml.problem is not None and nvml.problem.startswith(telemetry.NO_GPU)
    assert nvml.sample() == []
    rec = telemetry.Sampler(interval=0.0).sample()
    assert rec["gpu_problem"].startswith(telemetry.NO_GPU) and "gpus" not in rec


def gpu_sample(util):
    return {"type": "telemetry", "cpu_pct": 100.0, "cpus": 16, "rss": 2**30,
            "gpus": [{"index": 0, "name": "NVIDIA H200", "util": util, "mem_used": 2**33, "mem_total": 2**37,
                      "power_w": 300.0}]}


def test_input_bound_hint_fires_on_an_idle_gpu_with_flat_throughput():
    hint = telemetry.input_bound_hint([gpu_sample(u) for u in (20, 25, 24)], [1500.0, 1510.0, 1490.0])
    assert hint == "GPU 23% busy while images/s is flat: the input pipeline is the bottleneck"


def test_input_bound_hint_stays_quiet_otherwise():
    flat = [1500.0, 1510.0, 1490.0]
    assert telemetry.input_bound_hint([gpu_sample(u) for u in (95, 97, 99)], flat) is None  # busy GPU
    assert telemetry.input_bound_hint([gpu_sample(u) for u in (20, 25, 24)], [800.0, 1200.0, 1600.0]) is None  # ramping
    assert telemetry.input_bound_hint([gpu_sample(20)], flat) is None  # too few samples
    no_gpu = {"type": "telemetry", "cpu_pct": 100.0, "gpu_problem": telemetry.NO_GPU}
    assert telemetry.input_bound_hint([no_gpu] * 3, flat) is None


def test_telemetry_line_of_a_recorded_h200_sample():
    line = telemetry.telemetry_line(gpu_sample(87.0))
    assert line == "CPU 100% (1.0 of 16 cores) · RSS 1.0 GiB · GPU0 87% 8.0/128 GiB 300 W"


def test_cpu_figure_says_how_many_cores_it_is():
    """Per core, as top's: one core busy on a 16-core box is "1.0 of 16 cores", never read as the whole box."""
    line = lambda rec: telemetry.telemetry_line({"type": "telemetry", "gpu_problem": telemetry.NO_GPU, **rec})
    assert line({"cpu_pct": 100.0, "cpus": 16}).startswith("CPU 100% (1.0 of 16 cores) · ")
    assert line({"cpu_pct": 1450.0, "cpus": 16}).startswith("CPU 1450% (14.5 of 16 cores) · ")
    assert line({"cpu_pct": 183.0, "cpus": None}).startswith("CPU 183% (1.8 cores) · ")


def test_listener_samples_through_the_writer_in_any_phase(tmp_path):
    from tui_cifar.runs import store

    now = [0.0]
    writer = store.MetricsWriter(tmp_path)
    sampler = telemetry.Sampler(interval=5.0, gpus=False, clock=lambda: now[0])
    writer.listeners.append(telemetry.listener(writer.write, sampler, clock=lambda: 12.5))
    writer.write({"type": "progress", "phase": "extract_features", "done": 1, "total": 4})  # not due yet
    now[0] = 5.0
    writer.write({"type": "progress", "phase": "extract_features", "done": 2, "total": 4})
    now[0] = 6.0
    writer.write({"type": "progress", "phase": "extract_features", "done": 3, "total": 4})
    writer.close()
    records, _ = store.read_metrics(tmp_path)
    assert [r["type"] for r in records] == ["progress", "progress", "telemetry", "progress"]
    assert records[2]["wall_time"] == 12.5 and records[2]["rss"] > 0
