"""Shared fixtures: a tiny synthetic CIFAR-10 folder, the real one in ../shared, a Keras home."""

from __future__ import annotations

import os
import pickle
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL_CIFAR = SHARED / "datasets"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Keras reads KERAS_HOME once, at import: point it at a private, writable home holding the
# real MobileNetV2 weights (links into ../shared) before any test imports keras.
_KERAS_HOME = Path(tempfile.mkdtemp(prefix="cifar-tui-keras-home-"))
if (SHARED / "make_keras_home.sh").exists():
    subprocess.run(["bash", str(SHARED / "make_keras_home.sh"), str(_KERAS_HOME)], check=True, capture_output=True)
os.environ["KERAS_HOME"] = str(_KERAS_HOME)


def write_fake_cifar(folder: Path, per_batch: int = 60, seed: int = 0) -> Path:
    """CIFAR-10 python-layout batches whose classes are easy to tell apart (a colour per class)."""
    rng = np.random.default_rng(seed)
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    palette = rng.integers(0, 256, (10, 3))
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = np.arange(per_batch) % 10
        images = palette[labels][:, None, None, :] + rng.normal(0, 20, (per_batch, 32, 32, 3))
        data = np.clip(images, 0, 255).astype(np.uint8).transpose(0, 3, 1, 2).reshape(per_batch, -1)
        with open(batches / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels.tolist(), b"batch_label": name.encode()}, f)
    return folder


@pytest.fixture(scope="session")
def fake_cifar(tmp_path_factory) -> Path:
    return write_fake_cifar(tmp_path_factory.mktemp("fake_cifar"))


@pytest.fixture(scope="session")
def keras_home() -> Path:
    """The writable Keras home (also in $KERAS_HOME) holding the real MobileNetV2 ImageNet weights."""
    if not (SHARED / "make_keras_home.sh").exists():
        pytest.skip("../shared is not beside the project")
    return _KERAS_HOME


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own cache and config folders, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg_config"))


def tiny_config(data_dir: Path, runs_dir: Path, **overrides) -> dict:
    """Settings for a seconds-long run on the fake data with random weights."""
    values = dict(
        backbone="mobilenetv2-0.35", image_size=32, fine_tune_blocks=2, epochs_head=2, epochs_fine=2,
        batch_size=32, head_batch_size=32, val_size=50, weights="none", data_dir=str(data_dir), runs_dir=str(runs_dir),
        lr_head=3e-3, lr_fine=1e-3,
        augment=True,  # off by default; on here so that the mirrored view's path is what most tests exercise
        # A LiteRT conversion costs seconds per model; tests/test_forward.py and the realdata test run it.
        runtime="keras",
    )
    values.update(overrides)
    return values


needs_shared = pytest.mark.skipif(not (REAL_CIFAR / "cifar-10-batches-py").is_dir(), reason="../shared/datasets is missing")
