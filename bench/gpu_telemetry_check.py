"""GPU telemetry check (issue 19 item 4): tui_cifar.engine.telemetry sampling an idle / loaded / idle GPU; tbreader on a
PyTorch SummaryWriter logdir read while it grows. Run from the repo root: python3 bench/gpu_telemetry_check.py
(needs torch and nvidia-ml-py; writes $OUT/gpu_telemetry.json)."""
import json
import os
import subprocess
import sys
import tarfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root
from tui_cifar.engine import telemetry
from tui_cifar.runs import tbreader

OUT = os.environ.get("OUT", "/tmp/out")
result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "samples": [],
          "command": "python3 bench/gpu_telemetry_check.py"}
try:  # the CPU: model and vector flags
    info = open("/proc/cpuinfo").read()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    result["cpu"] = {"model": model, "cores": os.cpu_count(),
                     "vector_flags": sorted(f for f in flags if f.startswith(("avx2", "avx512", "fma")))}
except OSError as exc:
    result["cpu"] = repr(exc)
try:
    result["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,utilization.gpu,memory.used,memory.total,power.draw", "--format=csv"], capture_output=True, text=True, timeout=30).stdout
except Exception as exc:
    result["nvidia_smi"] = repr(exc)
import torch

result["torch"] = torch.__version__
sampler = telemetry.Sampler(interval=1.0)
result["nvml_problem"] = sampler.nvml.problem
phase = {"name": "idle-before"}
stop = threading.Event()
def loop():
    while not stop.is_set():
        rec = sampler.sample(); rec["phase"] = phase["name"]; rec["t"] = round(time.monotonic() - t0, 2)
        result["samples"].append(rec); stop.wait(1.0)
t0 = time.monotonic()
th = threading.Thread(target=loop); th.start()
time.sleep(6)
phase["name"] = "matmul-load"
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16); b = torch.randn_like(a)
big = torch.empty(20 * 2**30, dtype=torch.uint8, device="cuda")  # 20 GiB held, to see memory move
n = 0; t1 = time.monotonic()
while time.monotonic() - t1 < 20:
    for _ in range(50):
        c = a @ b
    torch.cuda.synchronize(); n += 50
result["matmul_tflops"] = round(n * 2 * 8192**3 / (time.monotonic() - t1) / 1e12, 1)
del big, a, b, c; torch.cuda.empty_cache()
phase["name"] = "idle-after"
time.sleep(8)
stop.set(); th.join()
by = {}
for s in result["samples"]:
    u = telemetry.mean_gpu_util(s)
    if u is not None: by.setdefault(s["phase"], []).append(u)
result["mean_util_by_phase"] = {k: round(sum(v) / len(v), 1) for k, v in by.items()}
result["example_line"] = {s["phase"]: telemetry.telemetry_line(s) for s in result["samples"]}
# TensorBoard: a PyTorch SummaryWriter logdir, read back while it grows
from torch.utils.tensorboard import SummaryWriter

logdir = "/tmp/tblogs/torchrun"
w = SummaryWriter(logdir)
for step in range(3):
    w.add_scalar("loss/train", 1.0 / (step + 1), step); w.add_scalar("loss/val", 1.2 / (step + 1), step)
    w.add_scalar("accuracy/train", 0.5 + 0.1 * step, step)
w.flush()
tail = tbreader.TensorBoardTail(logdir)
first = tail.read_new()
for step in range(3, 5):
    w.add_scalar("loss/train", 1.0 / (step + 1), step); w.add_scalar("loss/val", 1.2 / (step + 1), step)
    w.add_scalar("accuracy/train", 0.5 + 0.1 * step, step)
w.flush(); w.close()
second = tail.read_new()
result["tensorboard"] = {"first_read": first, "second_read": second, "problems": tail.problems,
                         "runs": [str(p) for p in tbreader.iter_tensorboard_runs("/tmp/tblogs")]}
with tarfile.open(os.path.join(OUT, "torch_tblogs.tar.gz"), "w:gz") as tf:
    tf.add("/tmp/tblogs", arcname="tblogs")
json.dump(result, open(os.path.join(OUT, "gpu_telemetry.json"), "w"), indent=1, default=str)
print(json.dumps({k: result[k] for k in ("nvml_problem", "mean_util_by_phase", "matmul_tflops", "example_line")}, indent=1))
print(result["nvidia_smi"]); print("tb first", first[:2], "second", second)
