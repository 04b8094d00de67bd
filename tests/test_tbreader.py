"""TensorBoard logdirs as runs: event files written by tf.summary, Keras' TensorBoard callback and PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tui_cifar.runs import tbreader

TORCH_RUN = Path(__file__).parent / "fixtures" / "tb" / "torchrun"  # PyTorch's SummaryWriter, on the H200 box


def epochs(records):
    return [r for r in records if r["type"] == "epoch"]


def test_reads_a_pytorch_summarywriter_run():
    records, problems = tbreader.read_records(TORCH_RUN)
    assert problems == []
    assert records[0]["type"] == "run_start" and records[0]["config"]["kind"] == "tensorboard"
    eps = epochs(records)
    assert [r["epoch"] for r in eps] == [1, 2, 3, 4, 5] and [r["step"] for r in eps] == [0, 1, 2, 3, 4]
    assert eps[0]["loss"] == 1.0 and abs(eps[0]["val_loss"] - 1.2) < 1e-6 and eps[4]["accuracy"] > 0.89


def test_metric_names():
    assert tbreader.metric_name("validation", "epoch_loss") == "val_loss"
    assert tbreader.metric_name("train", "epoch_accuracy") == "accuracy"
    assert tbreader.metric_name("", "Loss/val") == "val_loss"
    assert tbreader.metric_name("", "train/top3") == "top3"
    assert tbreader.metric_name("train", "epoch_learning_rate") == "lr"
    assert tbreader.metric_name("validation", "evaluation_loss_vs_iterations") is None


def test_follows_tf_summary_files_while_they_grow(tmp_path):
    import tensorflow as tf

    run = tmp_path / "logs" / "run1"
    writer = tf.summary.create_file_writer(str(run / "train"))
    val_writer = tf.summary.create_file_writer(str(run / "validation"))

    def write(step):
        with writer.as_default():
            tf.summary.scalar("epoch_loss", 1.0 / (step + 1), step=step)
            tf.summary.scalar("epoch_top3", 0.5 + step / 10, step=step)
        with val_writer.as_default():
            tf.summary.scalar("epoch_loss", 2.0 / (step + 1), step=step)
        writer.flush()
        val_writer.flush()

    write(0)
    write(1)
    tail = tbreader.TensorBoardTail(run)
    first = epochs(tail.read_new())
    assert [(r["epoch"], r["loss"], r["val_loss"]) for r in first] == [(1, 1.0, 2.0), (2, 0.5, 1.0)]
    assert abs(first[1]["top3"] - 0.6) < 1e-6
    assert tail.read_new() == []  # nothing new
    write(2)
    new = epochs(tail.read_new())
    assert [r["epoch"] for r in new] == [3] and abs(new[0]["val_loss"] - 2 / 3) < 1e-6
    assert list(tbreader.iter_tensorboard_runs(tmp_path / "logs")) == [run]
    assert tail.state() == "running"


def test_half_written_event_is_read_once_whole(tmp_path):
    data = next(TORCH_RUN.iterdir()).read_bytes()
    path = tmp_path / "run" / "events.out.tfevents.1.host"
    path.parent.mkdir()
    path.write_bytes(data[:-7])  # the last record cut
    tail = tbreader.TensorBoardTail(path.parent)
    assert [r["step"] for r in epochs(tail.read_new())] == [0, 1, 2, 3, 4]
    before = tail.steps[4].copy()
    with open(path, "ab") as f:
        f.write(data[-7:])
    later = epochs(tail.read_new())
    assert [r["step"] for r in later] == [4] and len(later[0]) > len(before) - 1


def test_keras_tensorboard_callback_run(tmp_path):
    import keras

    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])  # no Adam: other tests count theirs
    logdir = tmp_path / "logs" / "fit"
    model.fit(x, y, validation_split=0.25, epochs=3, verbose=0,
              callbacks=[keras.callbacks.TensorBoard(log_dir=str(logdir))])
    records, problems = tbreader.read_records(logdir)
    eps = epochs(records)
    assert problems == [] and [r["epoch"] for r in eps] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(eps[-1])


def test_cli_runs_lists_tensorboard_runs_with_their_last_values(tmp_path, capsys):
    import shutil

    from tui_cifar.cli import commands

    logdir = tmp_path / "logs"
    shutil.copytree(TORCH_RUN, logdir / "torchrun")
    assert commands.main(["runs", "--runs-dir", str(logdir)]) == 0
    out = capsys.readouterr().out
    assert "torchrun" in out and "loss 0.2 val_loss 0.24 accuracy 0.9" in out
    assert commands.main(["runs", "--runs-dir", str(logdir), "--json"]) == 0
    (run,) = __import__("json").loads(capsys.readouterr().out)
    assert run["kind"] == "tensorboard" and run["last"]["val_loss"] == pytest.approx(0.24)
