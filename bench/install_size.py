"""Install cost: time and disk of the README's install here, and what the GPU extra and other platforms resolve to.

    python bench/install_size.py [--skip-install]

1. A fresh virtual environment, `pip install --no-cache-dir .` (cold: every wheel downloaded), timed;
   the size of its site-packages, the TensorFlow distributions in it and `pip check`.
2. Without downloading the wheels (`pip install --dry-run --report`, PyPI's metadata files): what
   `.[gpu]` and the supported platforms (Linux x86_64/aarch64, macOS arm64; Python 3.11/3.13) would
   install, how many TensorFlow distributions that is, and the download size (HTTP HEAD per wheel).

Writes bench/install.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from tui_cifar.engine.doctor import TF_DISTRIBUTIONS  # noqa: E402


def _manylinux(arch: str) -> list[str]:
    # pip takes --platform tags literally: every glibc level a wheel may be tagged with.
    return [f"manylinux_2_{v}_{arch}" for v in (28, 27, 17, 12, 5)] + [f"manylinux{v}_{arch}" for v in ("2014", "2010", "1")]


PLATFORMS = {
    "linux-x86_64": _manylinux("x86_64"),
    "linux-aarch64": _manylinux("aarch64"),
    "macos-arm64": [f"macosx_{v}_0_arm64" for v in (14, 13, 12, 11)],
}


def dir_mib(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20, 1)


def download_mib(urls: list[str]) -> float:
    total = 0
    for url in urls:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=60) as response:
            total += int(response.headers.get("Content-Length", 0))
    return round(total / 2**20, 1)


def resolve(pip: list[str], requirement: str, extra_args: list[str]) -> dict:
    """What pip would install for `requirement`, from the index's metadata only."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        done = subprocess.run([*pip, "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
                               *extra_args, requirement], capture_output=True, text=True)
        if done.returncode != 0:
            return {"requirement": requirement, "error": done.stderr.strip().splitlines()[-3:]}
        items = json.loads(report.read_text())["install"]
    names = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in items)
    urls = [i["download_info"]["url"] for i in items if i["download_info"]["url"].startswith("http")]
    tf = [n for n in names if n.split("==")[0].lower().replace("_", "-") in TF_DISTRIBUTIONS]
    return {"requirement": requirement, "packages": len(names), "tensorflow_distributions": tf,
            "download_mib": download_mib(urls), "nvidia_packages": sum(n.lower().startswith("nvidia") for n in names)}


def main() -> None:
    from run_bench import provenance

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-install", action="store_true", help="only the dry-run resolutions")
    parser.add_argument("--out", type=Path, default=HERE / "install.json")
    args = parser.parse_args()
    result: dict = provenance()
    work = Path(tempfile.mkdtemp(prefix="cifar-tui-install-"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True)
    wheel_dir = work / "wheel"
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "-w", str(wheel_dir), str(ROOT)], check=True)
    wheel = next(wheel_dir.glob("*.whl"))
    if not args.skip_install:
        before = dir_mib(venv)
        start = time.perf_counter()
        subprocess.run([*pip, "install", "--quiet", "--no-cache-dir", str(wheel)], check=True)
        seconds = time.perf_counter() - start
        check = subprocess.run([*pip, "check"], capture_output=True, text=True)
        tf = subprocess.run(
            [str(venv / "bin" / "python"), "-c",
             "import importlib.metadata as m, json; from tui_cifar.engine.doctor import tensorflow_distributions as t;"
             "print(json.dumps(t()))"], capture_output=True, text=True, check=True).stdout
        result["cpu_install"] = {
            "command": "pip install --no-cache-dir cifar_tui-*.whl (fresh venv, cold: every wheel downloaded)",
            "seconds": round(seconds, 1), "venv_growth_mib": round(dir_mib(venv) - before, 1),
            "tensorflow_mib": dir_mib(next((venv / "lib").glob("python3*/site-packages")) / "tensorflow"),
            "tensorflow_distributions": json.loads(tf),
            "pip_check": (check.stdout + check.stderr).strip(), "pip_check_ok": check.returncode == 0,
        }
        print(json.dumps(result["cpu_install"], indent=1), flush=True)
        # The alternative on Linux x86_64: the CPU-only wheel of the same version, in a venv of its own.
        version = json.loads(tf)[0].split("==")[1]
        other = work / "venv-cpu"
        subprocess.run([sys.executable, "-m", "venv", str(other)], check=True)
        start = time.perf_counter()
        subprocess.run([str(other / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-cache-dir",
                        f"tensorflow-cpu=={version}"], check=True)
        result["tensorflow_cpu_alone"] = {
            "command": f"pip install --no-cache-dir tensorflow-cpu=={version} (fresh venv, for comparison)",
            "seconds": round(time.perf_counter() - start, 1),
            "tensorflow_mib": dir_mib(next((other / "lib").glob("python3*/site-packages")) / "tensorflow"),
        }
        print(json.dumps(result["tensorflow_cpu_alone"], indent=1), flush=True)
    resolutions = {"here": {
        "cpu": resolve(pip, str(wheel), []),
        "gpu": resolve(pip, f"{wheel}[gpu]", []),
    }}
    for name, tags in PLATFORMS.items():
        for python in ("3.11", "3.13"):
            target = ["--only-binary=:all:", *(f"--platform={tag}" for tag in tags), "--python-version", python,
                      "--target", str(work / "t")]
            resolutions[f"{name}-py{python}"] = {
                extra.strip("[]") or "cpu": resolve(pip, f"{wheel}{extra}", target) for extra in ("", "[gpu]")
            }
            print(name, python, json.dumps(resolutions[f"{name}-py{python}"]), flush=True)
    result["resolutions"] = resolutions
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
