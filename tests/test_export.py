"""Runs out of cifar-tui: TensorBoard event files (read back with TensorBoard's own reader) and CSV."""

from __future__ import annotations

import csv
import math
import sys

import numpy as np
import pytest

from tui_cifar.cli import commands
from tui_cifar.config import TrainConfig
from tui_cifar.engine.evaluation import report_from_probabilities
from tui_cifar.runs import reader, store


def trainer_run(runs_dir, name="mobilenetv2-96px"):
    """A run folder as the two-stage trainer writes it: a resumed epoch repeated in the log, and a test report."""
    run_dir = store.create_run_dir(runs_dir, name)
    store.atomic_write_json(run_dir / store.CONFIG_FILE, TrainConfig(image_size=96, dropout=0.25).to_json())
    writer = store.MetricsWriter(run_dir)
    wall = 0.0
    rng = np.random.default_rng(1)
    for stage, epochs, steps in ((1, 2, 4), (2, 2, 5)):
        writer.write({"type": "stage_start", "stage": stage, "epochs": epochs, "steps_per_epoch": steps})
        for epoch in [1, 2] if stage == 1 else [1, 1, 2]:  # stage 2 epoch 1 again after a resume
            for batch in range(1, steps + 1):
                wall += 0.1
                writer.write({"type": "batch", "stage": stage, "epoch": epoch, "batch": batch, "steps": steps,
                              "loss": float(rng.random()), "accuracy": float(rng.random()), "wall_time": wall})
            writer.write({"type": "epoch", "stage": stage, "epoch": epoch, "epochs": epochs,
                          "loss": float(rng.random()), "accuracy": float(rng.random()),
                          "val_loss": float(rng.random()), "val_accuracy": float(rng.random()), "lr": 1e-3,
                          "wall_time": wall, "memory": {"rss": 300 * 2**20, "rss_peak": 310 * 2**20,
                                                              "gpu": {"GPU:0": {"current": 2**30, "peak": 3 * 2**30}}}})
    writer.close()
    store.write_status(run_dir, "finished", "test accuracy")
    y_true = np.repeat(np.arange(10), 5)
    y_prob = rng.dirichlet(np.ones(10), size=len(y_true))
    y_prob[np.arange(len(y_true)), y_true] += 0.3  # better than chance
    store.atomic_write_json(run_dir / store.REPORT_FILE,
                               report_from_probabilities(y_true, y_prob / y_prob.sum(1, keepdims=True)))
    return run_dir


def keras_run(runs_dir):
    """A run RunLogger records from a plain model.fit in this process."""
    import keras

    from tui_cifar import RunLogger

    x = np.random.default_rng(0).random((96, 4)).astype("float32")
    y = (x.sum(1) > 2).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")], name="probe")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=1, name="top1")])
    logger = RunLogger(runs_dir, hparams={"units": 2, "note": "probe"}, batch_size=16)
    model.fit(x, y, batch_size=16, epochs=3, validation_split=0.25, verbose=0, callbacks=[logger])
    return logger.run_dir


def load_events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0, "images": 0})
    acc.Reload()
    return acc


def scalars(acc, tag):
    from tensorboard.util import tensor_util

    return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


def hparams_of(acc):
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    info = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    return {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


def test_tensorboard_export_of_a_keras_run_loads_in_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tui_cifar.runs.tbexport import export_tensorboard

    run_dir = keras_run(tmp_path / "runs")
    records, _ = store.read_metrics(run_dir)
    epochs = reader.epoch_records(records)
    target = export_tensorboard(run_dir, tmp_path / "tb")
    assert target == tmp_path / "tb" / run_dir.name
    train, validation = load_events(target / "train"), load_events(target / "validation")
    for name in ("loss", "accuracy", "top1"):  # whatever the model calls its metrics
        assert scalars(train, f"epoch_{name}") == [(i + 1, pytest.approx(r[name])) for i, r in enumerate(epochs)]
        assert scalars(validation, f"epoch_{name}") == [(i + 1, pytest.approx(r[f"val_{name}"])) for i, r in enumerate(epochs)]
    batches = [r for r in records if r["type"] == "batch"]
    assert [s for s, _ in scalars(train, "batch_loss")] == [(r["epoch"] - 1) * r["steps"] + r["batch"] for r in batches]
    assert scalars(train, "memory/rss_mib")[0][1] == pytest.approx(epochs[0]["memory"]["rss"] / 2**20)
    hp = hparams_of(load_events(target))
    assert hp["model"] == "probe" and hp["kind"] == "keras" and hp["batch_size"] == 16 and hp["epochs"] == 3
    assert hp["units"] == 2 and hp["note"] == "probe" and hp["optimizer.class"] == "Adam"  # not its name: adam_2 after two others


def test_tensorboard_export_counts_epochs_across_stages_and_draws_the_confusion_matrix(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.util import tensor_util

    from tui_cifar.runs.tbexport import export_tensorboard

    run_dir = trainer_run(tmp_path / "runs")
    records, _ = store.read_metrics(run_dir)
    epochs = reader.epoch_records(records)  # the repeated epoch: the later record
    target = export_tensorboard(run_dir, tmp_path / "tb")
    val = scalars(load_events(target / "validation"), "epoch_accuracy")
    assert val == [(i, pytest.approx(r["val_accuracy"])) for i, r in enumerate(epochs, start=1)] and len(val) == 4
    # stage 2's batches follow stage 1's 2 x 4 steps
    steps = sorted({s for s, _ in scalars(load_events(target / "train"), "batch_loss")})
    assert steps == list(range(1, 9)) + list(range(9, 19))
    assert scalars(load_events(target / "train"), "memory/gpu/GPU_0/peak_mib")[0] == (1, 3 * 1024)
    top = load_events(target)
    image = top.Tensors("test/confusion_matrix")[0]
    width, height, png = tensor_util.make_ndarray(image.tensor_proto)
    assert png.startswith(b"\x89PNG") and int(width) == int(height) > 10 * 48
    report, _ = store.read_json(run_dir / store.REPORT_FILE)
    assert scalars(top, "test/accuracy") == [(0, pytest.approx(report["test_accuracy"]))]
    hp = hparams_of(top)
    assert hp["backbone"] == "mobilenetv2" and hp["image_size"] == 96 and hp["dropout"] == pytest.approx(0.25)


def test_export_without_tensorboard_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    run_dir = trainer_run(tmp_path / "runs")
    monkeypatch.setitem(sys.modules, "tensorboard.plugins.hparams", None)  # as if not installed
    assert commands.main(["export", str(run_dir), "--tensorboard", str(tmp_path / "tb")]) == commands.EXIT_FAILED
    # the exact command for this environment's pip (tensorboard is a default dependency, so it was removed by hand)
    assert f"{sys.executable} -m pip install 'tensorboard>=2.16'" in capsys.readouterr().err
    assert not (tmp_path / "tb").exists()


def test_runs_csv_has_a_row_per_run_with_settings_and_results(tmp_path):
    runs = tmp_path / "runs"
    first = trainer_run(runs, "a")
    keras_dir = keras_run(runs)
    out = tmp_path / "runs.csv"
    assert commands.main(["runs", "--runs-dir", str(runs), "--csv", str(out)]) == 0
    rows = {r["run"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {first.name, keras_dir.name}
    mine, theirs = rows[first.name], rows[keras_dir.name]
    report, _ = store.read_json(first / store.REPORT_FILE)
    records, _ = store.read_metrics(first)
    assert mine["kind"] == "cifar-tui" and mine["backbone"] == "mobilenetv2" and mine["image_size"] == "96"
    assert float(mine["test_accuracy"]) == pytest.approx(report["test_accuracy"])
    assert float(mine["best_val_accuracy"]) == pytest.approx(max(r["val_accuracy"] for r in reader.epoch_records(records)))
    assert mine["epochs_done"] == "4" and mine["model"] == ""
    assert theirs["kind"] == "keras" and theirs["model"] == "probe" and theirs["backbone"] == ""
    assert theirs["batch_size"] == "16" and theirs["units"] == "2" and theirs["state"] == "finished"


def test_export_csv_writes_the_metrics_log(tmp_path):
    run_dir = trainer_run(tmp_path / "runs")
    out = tmp_path / "m.csv"
    assert commands.main(["export", str(run_dir), "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    records, _ = store.read_metrics(run_dir)
    epochs = reader.epoch_records(records)
    assert [r for r in rows if r["type"] == "epoch"] and len([r for r in rows if r["type"] == "epoch"]) == len(epochs)
    assert len([r for r in rows if r["type"] == "batch"]) == len([r for r in records if r["type"] == "batch"])
    assert list(rows[0])[:4] == ["type", "stage", "epoch", "batch"]
    last = [r for r in rows if r["type"] == "epoch"][-1]
    assert math.isclose(float(last["val_loss"]), epochs[-1]["val_loss"]) and last["memory.rss"] == str(300 * 2**20)


def test_export_needs_something_to_write(tmp_path, capsys):
    run_dir = trainer_run(tmp_path / "runs")
    assert commands.main(["export", str(run_dir)]) == commands.EXIT_USAGE
    assert "--tensorboard DIR and/or --csv FILE" in capsys.readouterr().err
