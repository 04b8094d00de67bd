"""The install and what it reports: one TensorFlow, `--version` without it, `doctor`, `cache clear`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tui_cifar.cli import commands
from tui_cifar.engine import doctor


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)


def test_exactly_one_tensorflow_distribution_is_installed():
    """Two of them (e.g. tensorflow-cpu and tensorflow) overwrite each other's site-packages/tensorflow/."""
    assert len(doctor.tensorflow_distributions()) == 1, doctor.tensorflow_problem()


def test_two_tensorflow_distributions_are_named_with_the_way_out(monkeypatch):
    versions = {"tensorflow": "2.21.0", "tensorflow-cpu": "2.21.0"}
    monkeypatch.setattr(doctor, "package_version", versions.get)
    problem = doctor.tensorflow_problem()
    assert "tensorflow==2.21.0, tensorflow-cpu==2.21.0" in problem and "pip uninstall" in problem
    monkeypatch.setattr(doctor, "package_version", {}.get)
    assert "TensorFlow is not installed" in doctor.tensorflow_problem()


def test_version_answers_without_importing_tensorflow():
    out = run_python(
        "import sys\nfrom tui_cifar.cli.commands import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit as exit:\n    assert exit.code == 0\n"
        "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]\nassert not heavy, heavy\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("cifar-tui ") and out.stdout.split()[1][0].isdigit()


# A Python where TensorFlow and Keras are not installed: their imports fail, their metadata is absent.
WITHOUT_TF = """
import importlib.abc, importlib.metadata, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("tensorflow", "keras"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoTensorFlow())
real_version = importlib.metadata.version

def version(name):
    if name in ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tf-nightly", "keras"):
        raise importlib.metadata.PackageNotFoundError(name)
    return real_version(name)

importlib.metadata.version = version
from tui_cifar.cli.commands import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_missing_tensorflow_is_a_clear_message_not_a_traceback(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"")  # found, so the command goes on to load it (and TensorFlow)
    out = run_python(WITHOUT_TF, "predict", str(tmp_path / "model.keras"), str(tmp_path))
    assert out.returncode == commands.EXIT_FAILED
    assert "TensorFlow is not installed" in out.stderr and "pip install" in out.stderr
    assert "Traceback" not in out.stderr


def test_windows_is_refused_at_start(monkeypatch, capsys):
    monkeypatch.setattr(doctor.os, "name", "nt")
    assert commands.main(["runs"]) == commands.EXIT_FAILED
    assert "WSL" in capsys.readouterr().err


def test_doctor_reports_versions_devices_and_where_things_are(tmp_path, capsys):
    cache = tmp_path / "features"
    cache.mkdir()
    (cache / "abc.pooled.npy").write_bytes(b"x" * 1000)
    code = commands.main(["--data-dir", str(tmp_path / "data"), "doctor", "--json", "--cache-dir", str(cache)])
    facts = json.loads(capsys.readouterr().out)
    assert set(facts["versions"]) == {"cifar-tui", "tensorflow", "keras", "python", "platform"}
    assert facts["versions"]["tensorflow"] in doctor.tensorflow_distributions()
    assert "CPU:0" in facts["tensorflow"]["devices"]
    assert facts["locations"]["data"].startswith(f"{tmp_path / 'data'}: no CIFAR-10 there")  # missing: said so
    assert facts["locations"]["feature_cache"] == str(cache)
    assert facts["feature_cache"] == {"files": 1, "bytes": 1000}
    assert code == (commands.EXIT_FAILED if facts["warnings"] else 0)


@pytest.mark.parametrize("cuda_build, devices, expected", [
    (False, ["CPU:0"], "CPU-only build"),
    (True, ["CPU:0"], "TensorFlow sees none"),
    (True, ["CPU:0", "GPU:0"], None),
])
def test_doctor_warns_when_a_gpu_goes_unused(monkeypatch, cuda_build, devices, expected):
    monkeypatch.setattr(doctor, "nvidia_gpus", lambda: ["NVIDIA H200, 143771 MiB"])
    monkeypatch.setattr(doctor, "tensorflow_facts", lambda: {
        "version": "2.21.0", "cuda_build": cuda_build, "cuda_version": None, "cudnn_version": None, "devices": devices})
    warnings = [w for w in doctor.doctor()["warnings"] if "GPU" in w]
    if expected:
        assert len(warnings) == 1 and expected in warnings[0]
    else:
        assert warnings == []


def test_cache_clear_removes_the_cache_files_only(tmp_path, capsys):
    cache = tmp_path / "features"
    cache.mkdir()
    (cache / "litert").mkdir()
    for name in ("a.acts.npy", "a.pooled.npy", ".tmp-12-b.pooled.npy", "litert/k.tflite", "litert/.tmp-1-k.tflite"):
        (cache / name).write_bytes(b"x" * 100)
    (cache / "notes.txt").write_text("mine")
    assert doctor.cache_size(cache) == (5, 500)  # what doctor reports: the LiteRT conversions count too
    assert commands.main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert "removed 5 files" in capsys.readouterr().out
    assert sorted(p.name for p in cache.iterdir()) == ["litert", "notes.txt"] and not any((cache / "litert").iterdir())
