"""A run folder as TensorBoard event files, so any run opens in TensorBoard too.

Scalars per epoch and per batch (train and validation side by side, as Keras'
TensorBoard callback lays them out), the settings through the HParams plugin,
and the test report's confusion matrix as an image. The ``tensorboard`` package is
a default dependency.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CifarTuiError
from . import reader, store
from .records import scalar_items
from .rows import flatten, run_settings


class TensorBoardMissing(CifarTuiError, RuntimeError):
    """The tensorboard package is not installed."""


def _tensorboard_hparams():
    try:
        from tensorboard.plugins.hparams import api as hp
    except ImportError as exc:
        raise TensorBoardMissing(  # a default dependency, removed by hand: name this environment's pip
            f"TensorBoard export needs the tensorboard package: {sys.executable} -m pip install 'tensorboard>=2.16'"
        ) from exc
    return hp


def export_tensorboard(run_dir: Path, out_dir: Path) -> Path:
    """Write the run's event files under ``out_dir/<run name>`` (train/ and validation/ inside); returns that folder."""
    hp = _tensorboard_hparams()
    import tensorflow as tf

    run_dir = Path(run_dir)
    config, problem = store.read_config(run_dir)
    if config is None:
        raise store.RunStoreError(f"{run_dir} is not a readable run folder ({problem})")
    records, _ = store.read_metrics(run_dir)
    target = Path(out_dir).expanduser() / run_dir.name
    # train/ and validation/ hold the curves; the run's own folder the settings and the test report.
    writers = {side: tf.summary.create_file_writer(str(target / side)) for side in ("train", "validation", "")}
    epochs = reader.epoch_records(records)
    epoch_steps, batch_steps = _global_steps(records, epochs)
    for rec in epochs:
        step = epoch_steps[(rec.get("stage", 1), rec.get("epoch"))]
        for name, value in scalar_items(rec).items():
            side, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            with writers[side].as_default(step=step):
                tf.summary.scalar(f"epoch_{tag}", value)
        with writers["train"].as_default(step=step):
            for name, used in flatten(rec.get("memory") or {}, "memory.").items():
                if isinstance(used, (int, float)):  # memory.gpu.GPU:0.peak -> memory/gpu/GPU_0/peak_mib
                    tf.summary.scalar(re.sub(r"[^-\w/]", "_", name.replace(".", "/")) + "_mib", used / 2**20)
    with writers["train"].as_default():
        for rec in records:
            if rec.get("type") == "batch":
                step = batch_steps[(rec.get("stage", 1), rec.get("epoch"), rec.get("batch"))]
                for name, value in scalar_items(rec).items():
                    tf.summary.scalar(f"batch_{name}", value, step=step)
    report, _ = store.read_report(run_dir)
    with writers[""].as_default(step=0):
        hp.hparams(_hparams(config), trial_id=run_dir.name)
        if report and report.get("confusion_matrix"):
            image = confusion_image(np.asarray(report["confusion_matrix"]), list(report.get("classes") or []))
            tf.summary.image("test/confusion_matrix", image[None], step=0)
            if "test_accuracy" in report:
                tf.summary.scalar("test/accuracy", float(report["test_accuracy"]), step=0)
    for writer in writers.values():
        writer.close()
    return target


def _global_steps(records: list[dict[str, Any]], epochs: list[dict[str, Any]]):
    """Epoch and batch numbers that keep counting across stages, as the live charts do (stage 2 follows stage 1)."""
    epoch_steps = {(rec.get("stage", 1), rec.get("epoch")): i for i, rec in enumerate(epochs, start=1)}
    batch_steps: dict[tuple[Any, Any, Any], int] = {}
    offsets: dict[Any, int] = {}
    last = 0
    for rec in records:
        if rec.get("type") != "batch":
            continue
        stage = rec.get("stage", 1)
        offsets.setdefault(stage, last)
        if isinstance(rec.get("steps"), int) and isinstance(rec.get("batch"), int):
            step = offsets[stage] + (int(rec.get("epoch", 1)) - 1) * rec["steps"] + rec["batch"]
        else:  # epochs of unknown length (a generator): RunLogger then records every batch
            step = last + 1
        batch_steps[(stage, rec.get("epoch"), rec.get("batch"))] = step
        last = max(last, step)
    return epoch_steps, batch_steps


def _hparams(config: dict[str, Any]) -> dict[str, Any]:
    """Settings as HParams values: bools, numbers and strings only (unset ones are left out)."""
    values = {}
    for key, value in run_settings(config).items():
        if isinstance(value, (bool, int, float, str)):
            values[key] = value
    return values


def confusion_image(matrix: np.ndarray, classes: list[str], cell: int = 48) -> np.ndarray:
    """The confusion matrix as an RGB heat map (rows: true class, shaded by row share) with counts and labels."""
    from PIL import Image, ImageDraw

    n = len(matrix)
    label_w = 90
    img = Image.new("RGB", (label_w + n * cell, label_w + n * cell), "white")
    draw = ImageDraw.Draw(img)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for i in range(n):
        for j in range(n):
            shade = int(255 * (1 - shares[i, j]))
            x, y = label_w + j * cell, label_w + i * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(shade, shade, 255), outline=(200, 200, 200))
            draw.text((x + 4, y + cell // 3), str(int(matrix[i, j])), fill="white" if shares[i, j] > 0.5 else "black")
    for k, name in enumerate(classes[:n]):
        draw.text((4, label_w + k * cell + cell // 3), name[:12], fill="black")  # true class, left
        draw.text((label_w + k * cell + 2, label_w - 14 - 12 * (k % 2)), name[:7], fill="black")  # predicted, top
    draw.text((4, 4), "rows: true, columns: predicted", fill="black")
    return np.asarray(img)
