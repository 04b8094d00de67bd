"""Real CIFAR-10 (a stratified subset) and the real MobileNetV2 ImageNet weights, through the CLI.

Keras reads KERAS_HOME once, when it is imported, so training runs as `cifar-tui train` in a
subprocess whose environment points at the keras_home fixture. About a minute on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_CIFAR, needs_shared
from PIL import Image

from tui_cifar.data import CLASS_NAMES, load_cifar10

pytestmark = [pytest.mark.realdata, needs_shared]

EXE = Path(sys.executable).with_name("cifar-tui")
CLI = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "tui_cifar"]
SETTINGS = ["--backbone", "mobilenetv2", "--image-size", "96", "--fine-tune-blocks", "2",
            "--limit-train", "3000", "--val-size", "500", "--limit-test", "1000",
            "--epochs-head", "8", "--epochs-fine", "2"]


@pytest.fixture(scope="module")
def real_run(keras_home, tmp_path_factory):
    base = tmp_path_factory.mktemp("realdata")
    env = {**os.environ, "KERAS_HOME": str(keras_home), "XDG_CACHE_HOME": str(base / "xdg"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(
        [*CLI, "train", "--data-dir", str(REAL_CIFAR), "--runs-dir", str(base / "runs"), "--cache-dir", str(base / "cache"),
         *SETTINGS],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (run_dir,) = (base / "runs").iterdir()
    return base, env, run_dir, out


def test_real_imagenet_transfer_learns_cifar10(real_run):
    _, _, run_dir, out = real_run
    assert "Downloading" not in out.stdout + out.stderr  # the real weights came from the Keras home
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    data = [r for r in records if r["type"] == "data"][0]
    assert (data["train"], data["val"], data["test"]) == (2500, 500, 1000)
    epochs = [r for r in records if r["type"] == "epoch"]
    assert max(e["val_accuracy"] for e in epochs) > 0.6
    report = json.loads((run_dir / "metrics.json").read_text())
    # Chance is 0.10 and random weights give ~0.10; this setup reaches ~0.73 (a linear probe: ~0.69).
    assert report["test_accuracy"] > 0.6, report["test_accuracy"]
    assert report["macro_roc_auc"] > 0.9
    assert report["num_test"] == 1000 and np.array(report["confusion_matrix"]).sum() == 1000
    assert report["runtime"] == "litert"  # auto on a CPU
    assert [r["runtime"] for r in records if r["type"] == "features_done"] == ["litert"]
    recalls = [row["recall"] for row in report["per_class"].values()]
    assert min(recalls) > 0.25  # every class is learned, not just a few


def test_predict_real_test_images_saved_as_png(real_run):
    base, env, run_dir, _ = real_run
    saved = np.load(run_dir / "predictions.npz")
    _, _, x_test, y_test, _ = load_cifar10(REAL_CIFAR)
    picked = saved["test_index"][:: len(saved["test_index"]) // 30][:30]
    position = {int(i): k for k, i in enumerate(saved["test_index"])}
    folder = base / "real_pictures"
    folder.mkdir()
    files = []
    for i in picked:
        path = folder / f"test_{int(i):05d}.png"
        Image.fromarray(x_test[i]).save(path)
        files.append(path)
    out = subprocess.run([*CLI, "predict", str(run_dir), *map(str, files), "--top-k", "3", "--json"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout)
    right = 0
    for path, r in zip(files, results):
        i = int(path.stem.split("_")[1])
        assert r["error"] is None
        top = r["top"][0]
        # A lossless PNG of a test image gets exactly the probabilities the evaluation computed for it.
        expected = saved["y_prob"][position[i]]
        assert top["class"] == CLASS_NAMES[int(expected.argmax())]
        assert top["probability"] == pytest.approx(float(expected.max()), abs=1e-3)
        right += top["class"] == CLASS_NAMES[int(y_test[i])]
    assert right >= 15, f"only {right} of 30 real test images were classified correctly"
