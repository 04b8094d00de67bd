"""What this install is made of and where it keeps things: for `cifar-tui doctor`, run records and the app.

Only `tensorflow_facts()` imports TensorFlow; the rest answers from package metadata and the
file system, so `--version` and the start-up checks stay fast.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

# Distributions that all install the `tensorflow` package: two of them in one environment overwrite
# each other's files, so exactly one may be installed.
TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tf-nightly")
SUPPORTED = "Linux (x86_64, aarch64) and macOS (arm64) with Python 3.11-3.13"


def package_version(name: str = "cifar-tui") -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def tensorflow_distributions() -> list[str]:
    """The installed TensorFlow distributions, e.g. ['tensorflow==2.21.0']."""
    return [f"{name}=={version}" for name in TF_DISTRIBUTIONS if (version := package_version(name))]


def platform_problem() -> str | None:
    """Why cifar-tui cannot run on this platform, or None."""
    if os.name != "posix":
        return (f"cifar-tui runs on {SUPPORTED}: detached runs rely on POSIX sessions and SIGHUP, "
                f"which {platform.system() or os.name} does not have. On Windows, use WSL2.")
    return None


def tensorflow_problem() -> str | None:
    """What is wrong with this environment's TensorFlow (missing, or two builds over each other), or None."""
    installed = tensorflow_distributions()
    if not installed:
        return (f"TensorFlow is not installed in this Python ({sys.executable}). Install cifar-tui with "
                f"`pip install cifar-tui` (CPU) or `pip install 'cifar-tui[gpu]'` (NVIDIA GPU, Linux); "
                f"TensorFlow has wheels for {SUPPORTED}.")
    if len(installed) > 1:
        return (f"{len(installed)} TensorFlow distributions are installed over each other ({', '.join(installed)}): "
                f"uninstall all of them, then reinstall cifar-tui (`pip uninstall {' '.join(TF_DISTRIBUTIONS)}`).")
    return None


def versions() -> dict[str, str | None]:
    """Versions of what produced a run; for the run_start record and `doctor`."""
    return {
        "cifar-tui": package_version(),
        "tensorflow": ", ".join(tensorflow_distributions()) or None,
        "keras": package_version("keras"),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
    }


def tensorflow_facts() -> dict:
    """Imports TensorFlow: its build (CUDA or not) and the devices it sees."""
    import tensorflow as tf

    build = dict(tf.sysconfig.get_build_info())
    return {
        "version": tf.__version__,
        "cuda_build": bool(build.get("is_cuda_build")),
        "cuda_version": build.get("cuda_version"),
        "cudnn_version": build.get("cudnn_version"),
        "devices": [f"{d.device_type}:{d.name.rsplit(':', 1)[-1]}" for d in tf.config.list_physical_devices()],
    }


def nvidia_gpus() -> list[str]:
    """The NVIDIA GPUs `nvidia-smi` lists ('name, memory'), [] without the tool or a driver."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def keras_home() -> Path:
    """Where Keras keeps downloaded data sets and weights ($KERAS_HOME, default ~/.keras)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()


def cache_files(cache_dir: Path) -> list[Path]:
    """The feature cache's own files (cached arrays, LiteRT conversions in litert/, interrupted writes), nothing else."""
    if not cache_dir.is_dir():
        return []
    converted = cache_dir / "litert"
    candidates = [*cache_dir.iterdir(), *(converted.iterdir() if converted.is_dir() else [])]
    return [p for p in candidates
            if p.is_file() and (p.suffix in (".npy", ".tflite") or p.name.startswith(".tmp-"))]


def cache_size(cache_dir: Path) -> tuple[int, int]:
    """(files, bytes) of the feature cache."""
    files = cache_files(cache_dir)
    return len(files), sum(p.stat().st_size for p in files)


def clear_cache(cache_dir: Path) -> tuple[int, int]:
    """Delete the feature cache's files; (files, bytes) removed."""
    removed = freed = 0
    for path in cache_files(cache_dir):
        size = path.stat().st_size
        path.unlink(missing_ok=True)
        removed, freed = removed + 1, freed + size
    return removed, freed


def data_location(data_dir: str | None) -> str:
    """Where CIFAR-10 is read from, or where it was looked for and that it is not there (data.find_cifar10)."""
    from .data import DATA_DIR_ENV, default_data_dir, find_cifar10

    found = find_cifar10(data_dir)
    if found:
        return found
    folder, origin = (Path(data_dir).expanduser(), "") if data_dir else default_data_dir()
    where = f"{folder}{f' ({origin})' if origin else ''}" if folder else f"{keras_home() / 'datasets'} (Keras' cache)"
    return (f"{where}: no CIFAR-10 there (a run downloads it, with a network; or `train --data-dir PATH`, "
            f"${DATA_DIR_ENV})")


def doctor(cache_dir: Path | None = None, data_dir: str | None = None) -> dict:
    """Everything `cifar-tui doctor` shows, with a warning for each thing that would surprise a user."""
    from ..paths import features_cache_dir

    facts: dict = {"versions": versions(), "warnings": []}
    problem = platform_problem() or tensorflow_problem()
    if problem:
        facts["warnings"].append(problem)
    try:
        facts["tensorflow"] = tensorflow_facts()
    except ImportError as exc:
        facts["tensorflow"] = None
        facts["warnings"].append(f"TensorFlow does not import: {exc}")
    gpus = facts["nvidia_gpus"] = nvidia_gpus()
    tf_facts = facts["tensorflow"]
    if gpus and tf_facts and not tf_facts["cuda_build"]:
        facts["warnings"].append(f"nvidia-smi sees {len(gpus)} GPU(s) but this TensorFlow is a CPU-only build: "
                                 "training runs on the CPU. Reinstall with `pip install 'cifar-tui[gpu]'`.")
    elif gpus and tf_facts and not any(d.startswith("GPU") for d in tf_facts["devices"]):
        facts["warnings"].append(f"nvidia-smi sees {len(gpus)} GPU(s) but TensorFlow sees none: training runs on "
                                 "the CPU. Install the CUDA libraries with `pip install 'cifar-tui[gpu]'`, or check "
                                 "the driver against TensorFlow's CUDA version.")
    cache = features_cache_dir(cache_dir)
    files, size = cache_size(cache)
    facts["locations"] = {
        "data": data_location(data_dir),
        "weights": str(keras_home() / "models"),
        "feature_cache": str(cache),
    }
    facts["feature_cache"] = {"files": files, "bytes": size}
    return facts


def doctor_lines(facts: dict) -> list[tuple[str, str]]:
    """doctor()'s facts as (label, value) lines, the way `cifar-tui doctor` and the app's About panel show them."""
    lines = [(name, version or "not installed") for name, version in facts["versions"].items()]
    tf = facts["tensorflow"]
    if tf:
        cuda = f"CUDA {tf['cuda_version']}, cuDNN {tf['cudnn_version']}" if tf["cuda_build"] else "no (CPU only)"
        lines += [("CUDA build", cuda), ("TF devices", ", ".join(tf["devices"]))]
    lines.append(("nvidia-smi", "; ".join(facts["nvidia_gpus"]) or "no NVIDIA GPU"))
    lines += [(name.replace("_", " "), where) for name, where in facts["locations"].items()]
    cache = facts["feature_cache"]
    lines.append(("cache size", f"{cache['bytes'] / 2**20:.1f} MiB in {cache['files']} files "
                                "(`cifar-tui cache clear` empties it)"))
    return lines
