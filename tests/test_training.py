"""tui_cifar.engine.training: real (tiny) two-stage runs on the fake CIFAR-10, nothing mocked away.

Runs with random weights check the run-folder contract and the data flow; a run with the real
MobileNetV2 ImageNet weights (keras_home fixture) checks that the model actually learns.
"""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

from tui_cifar.config import make_config
from tui_cifar.engine import data, features, training
from tui_cifar.engine.data import CLASS_NAMES, load_cifar10, make_splits
from tui_cifar.engine.launcher import create_run
from tui_cifar.engine.prediction import load_model_checked, predict_probabilities
from tui_cifar.runs import reader, store
from tui_cifar.runs.store import read_metrics, read_status

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

EPOCH_FIELDS = ("stage", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "images_per_sec", "wall_time")


def train(values: dict, listeners=None):
    """Train in this process, restoring the signal handlers train_run installs."""
    config = make_config(values)
    run_dir = create_run(config)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        state = training.train_run(config, run_dir, listeners=listeners)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    records, problems = read_metrics(run_dir)
    assert problems == []
    return SimpleNamespace(config=config, run_dir=run_dir, state=state, records=records)


def of_type(records, kind):
    return [r for r in records if r.get("type") == kind]


def extraction_progress(records):
    return [r for r in of_type(records, "progress") if r["phase"] == "extract_features"]


class ExtractSpy:
    """Records the pixels each real feature extraction was asked for (and still extracts them)."""

    def __init__(self, monkeypatch):
        self.calls: list[np.ndarray] = []
        self.original = features.extract
        monkeypatch.setattr(features, "extract", self)

    def __call__(self, extractor, images, *args, **kwargs):
        self.calls.append(np.array(images, copy=True))
        return self.original(extractor, images, *args, **kwargs)


def cache_files(cache: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npy")} if cache.is_dir() else {}


def rows(x: np.ndarray) -> set[bytes]:
    return {img.tobytes() for img in x}


def batchnorm_moving_stats(model):
    out = {}

    def walk(m):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                walk(layer)
            elif isinstance(layer, keras.layers.BatchNormalization):
                out[layer.name] = (keras.ops.convert_to_numpy(layer.moving_mean).copy(),
                                   keras.ops.convert_to_numpy(layer.moving_variance).copy())

    walk(model)
    return out


@pytest.fixture(scope="module")
def tiny_run(fake_cifar, tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny_run")
    heard = []
    with pytest.MonkeyPatch.context() as mp:
        spy = ExtractSpy(mp)
        run = train(tiny_config(fake_cifar, base / "runs", cache_dir=str(base / "cache"), limit_test=40),
                    listeners=[heard.append])
    run.spy, run.heard, run.cache, run.base = spy, heard, base / "cache", base
    return run


# --- the run folder ---------------------------------------------------------------------------


def test_a_tiny_run_writes_the_whole_run_folder(tiny_run):
    run_dir = tiny_run.run_dir
    assert tiny_run.state == "finished"
    for name in ("config.json", "status.json", "metrics.jsonl", "model.keras", "report.json", "predictions.npz"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "backup").is_dir()
    assert (run_dir / "backup" / "stage1.done").exists() and (run_dir / "backup" / "stage2.done").exists()
    assert not (run_dir / store.ERROR_FILE).exists()
    assert json.loads((run_dir / "config.json").read_text()) == tiny_run.config.to_json()
    status = read_status(run_dir)
    assert status.problem is None and status.state == "finished"
    assert store.effective_state(status) == "finished"
    assert status.message.startswith("test accuracy")
    assert not [p for p in run_dir.rglob("*") if p.name.startswith(".tmp") or p.name.endswith(".tmp")]
    summary = reader.summarize_run(run_dir)
    assert summary.state == "finished" and summary.backbone == "mobilenetv2-0.35" and summary.image_size == 32
    assert summary.test_accuracy == json.loads((run_dir / "report.json").read_text())["test_accuracy"]


def test_metrics_log_tells_the_whole_story(tiny_run):
    records, cfg = tiny_run.records, tiny_run.config
    types = [r["type"] for r in records]
    assert types[0] == "run_start" and types[-1] == "run_end"
    for kind in ("phase", "data", "progress", "features_done", "stage_start", "batch", "epoch", "stage_end"):
        assert kind in types, kind
    assert [r["phase"] for r in of_type(records, "phase")] == [
        "load_data", "extract_features", "train_head", "fine_tune", "evaluate"]
    assert records[0]["config"] == cfg.to_json() and records[0]["device"]

    d = of_type(records, "data")[0]
    assert (d["train"], d["val"], d["test"]) == (250, 50, 40)
    progress = extraction_progress(records)
    assert progress[-1]["done"] == progress[-1]["total"] == 2 * 250 + 50  # two views of train, val
    assert [p["done"] for p in progress] == sorted(p["done"] for p in progress)
    testing = [r for r in of_type(records, "progress") if r["phase"] == "evaluate"]
    assert testing[-1]["done"] == testing[-1]["total"] == 2 * 40  # the test images and their mirrors

    starts = of_type(records, "stage_start")
    assert [s["stage"] for s in starts] == [1, 2]
    assert [s["steps_per_epoch"] for s in starts] == [math.ceil(250 / cfg.head_batch_size), math.ceil(250 / cfg.batch_size)]
    assert starts[0]["trainable_params"] < starts[1]["trainable_params"]
    assert starts[0]["lr"] == cfg.lr_head and starts[1]["lr"] == cfg.lr_fine

    epochs = of_type(records, "epoch")
    assert [(e["stage"], e["epoch"]) for e in epochs] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for e in epochs:
        for key in EPOCH_FIELDS:
            assert isinstance(e.get(key), (int, float)), (key, e)
        assert 0 <= e["accuracy"] <= 1 and 0 <= e["val_accuracy"] <= 1
        assert e["images_per_sec"] > 0 and e["lr"] > 0
        assert e["memory"]["rss_peak"] >= e["memory"]["rss"] > 100 * 2**20  # TensorFlow alone takes more
        assert ("gpu" in e["memory"]) == bool(tf.config.list_physical_devices("GPU"))
    assert epochs[1]["lr"] < epochs[0]["lr"]  # cosine decay within a stage
    walls = [r["wall_time"] for r in records if "wall_time" in r]
    assert walls == sorted(walls)

    batches = of_type(records, "batch")
    assert {(b["stage"], b["epoch"]) for b in batches} == {(1, 1), (1, 2), (2, 1), (2, 2)}
    assert all(b["batch"] <= b["steps"] and "loss" in b for b in batches)

    end = records[-1]
    report = json.loads((tiny_run.run_dir / "report.json").read_text())
    assert end["state"] == "finished" and end["test_accuracy"] == report["test_accuracy"]
    # The listener (the CLI's display) heard exactly what was written to the file.
    assert [r["type"] for r in tiny_run.heard] == types


def test_metrics_json_has_every_field(tiny_run):
    report = json.loads((tiny_run.run_dir / "report.json").read_text())
    n = 40
    assert report["num_test"] == n
    assert 0 <= report["test_accuracy"] <= 1 and report["test_loss"] > 0
    assert report["classes"] == list(CLASS_NAMES)
    assert set(report["per_class"]) == set(CLASS_NAMES)
    for name, row in report["per_class"].items():
        assert set(row) >= {"precision", "recall", "f1", "support", "roc_auc"}
        assert row["support"] == n // 10
        assert row["roc_auc"] is None or 0 <= row["roc_auc"] <= 1
    for avg in ("macro_avg", "weighted_avg"):
        assert set(report[avg]) >= {"precision", "recall", "f1", "support", "roc_auc"}
        assert report[avg]["support"] == n
    assert report["macro_avg"]["roc_auc"] == report["macro_roc_auc"]
    cm = np.array(report["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == n
    assert cm.sum(axis=1).tolist() == [n // 10] * 10
    assert report["test_accuracy"] == pytest.approx(np.trace(cm) / n)
    assert set(report["roc_curves"]) == set(CLASS_NAMES)
    for curve in report["roc_curves"].values():
        assert len(curve["fpr"]) == len(curve["tpr"]) <= 100
        assert curve["fpr"][0] == 0 and curve["fpr"][-1] == 1 and curve["tpr"][-1] == 1
        assert curve["fpr"] == sorted(curve["fpr"]) and curve["tpr"] == sorted(curve["tpr"])
    confused = report["most_confused"]
    assert len(confused) <= 10
    assert [c["count"] for c in confused] == sorted((c["count"] for c in confused), reverse=True)
    for c in confused:
        assert c["true"] != c["predicted"]
        assert cm[CLASS_NAMES.index(c["true"]), CLASS_NAMES.index(c["predicted"])] == c["count"]
    assert report["best_val_accuracy"] == max(e["val_accuracy"] for e in of_type(tiny_run.records, "epoch"))
    assert set(report["stage_times"]) == {"stage1", "stage2", "features"}


def test_the_report_scores_the_saved_model_on_the_run_test_subset(tiny_run, fake_cifar):
    cfg, run_dir = tiny_run.config, tiny_run.run_dir
    saved = np.load(run_dir / "predictions.npz")
    _, _, x_test, y_test, _ = load_cifar10(fake_cifar)
    index = data.test_indices(cfg.limit_test, cfg.seed, y_test)
    np.testing.assert_array_equal(saved["test_index"], index)
    np.testing.assert_array_equal(saved["y_true"], y_test[index])
    model = load_model_checked(run_dir / "model.keras")
    probs = predict_probabilities(model, x_test[index], tta_flip=True)
    np.testing.assert_allclose(saved["y_prob"], probs, atol=1e-5)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["test_accuracy"] == pytest.approx((probs.argmax(1) == y_test[index]).mean())


def test_the_test_split_is_never_seen_during_training(tiny_run, fake_cifar):
    cfg = tiny_run.config
    splits = make_splits(cfg.data_dir, cfg.val_size, cfg.seed, cfg.limit_train, cfg.limit_test)
    _, _, x_test_all, _, _ = load_cifar10(fake_cifar)
    calls = tiny_run.spy.calls
    assert len(calls) == 3  # train, mirrored train, val
    seen = set().union(*(rows(c) for c in calls))
    assert seen == rows(splits.x_train) | rows(splits.x_train[:, :, ::-1]) | rows(splits.x_val)
    for x in (x_test_all, x_test_all[:, :, ::-1]):
        assert seen.isdisjoint(rows(x))
    # The cache is keyed by content: one entry (pooled + activations) per job, none for test images.
    names = set(cache_files(tiny_run.cache))
    assert len([n for n in names if n.endswith(".pooled.npy")]) == 3
    assert len([n for n in names if n.endswith(".acts.npy")]) == 3


def test_a_second_run_reuses_the_feature_cache(tiny_run, monkeypatch):
    before = cache_files(tiny_run.cache)
    spy = ExtractSpy(monkeypatch)
    values = tiny_run.config.to_json() | {"runs_dir": str(tiny_run.base / "runs2")}
    second = train(values)
    assert second.state == "finished"
    assert spy.calls == []  # nothing recomputed
    assert cache_files(tiny_run.cache) == before  # nothing rewritten
    first_s = of_type(tiny_run.records, "features_done")[0]["seconds"]
    second_s = of_type(second.records, "features_done")[0]["seconds"]
    assert second_s < first_s / 2
    assert extraction_progress(second.records)[-1]["done"] == 550


def test_fine_tune_all_blocks_from_the_cache_and_its_cache_is_reused(fake_cifar, tmp_path, monkeypatch):
    values = tiny_config(fake_cifar, tmp_path / "runs", cache_dir=str(tmp_path / "cache"), fine_tune_blocks="all",
                         augment=False, epochs_head=1, epochs_fine=1)
    first = train(values)
    assert first.state == "finished"
    assert [s["stage"] for s in of_type(first.records, "stage_start")] == [1, 2]
    before = cache_files(tmp_path / "cache")
    assert len(before) == 4  # pooled + activations, for train and val
    spy = ExtractSpy(monkeypatch)
    # Same process, so Keras' automatic layer names differ now: the cache must still hit.
    # (Stage 1 only, to save time: it looks up the same cache entries.)
    second = train(values | {"epochs_fine": 0})
    assert second.state == "finished" and spy.calls == []
    assert cache_files(tmp_path / "cache") == before


@pytest.mark.parametrize("budget, in_place", [(2**31, False), (0, True)], ids=["tensor-feed", "read-in-place"])
def test_stage_2_feeds_activations_by_tf_data_when_they_fit_else_reads_them_in_place(fake_cifar, tmp_path, monkeypatch,
                                                                                   budget, in_place):
    monkeypatch.setattr(training, "TENSOR_FEED_BUDGET", budget)
    calls = []
    real = training.view_batches

    def spy(views, labels, batch_size, seed, in_place):
        calls.append((views[0].ndim, in_place))
        return real(views, labels, batch_size, seed, in_place)

    monkeypatch.setattr(training, "view_batches", spy)
    run = train(tiny_config(fake_cifar, tmp_path / "runs", cache_dir=str(tmp_path / "cache"), augment=False,
                            epochs_head=1, epochs_fine=2))
    assert run.state == "finished"
    assert calls == [(2, False), (4, in_place)]  # stage 1's pooled features, stage 2's activations
    assert [(e["stage"], e["epoch"]) for e in of_type(run.records, "epoch")] == [(1, 1), (2, 1), (2, 2)]


def test_fine_tune_blocks_0_skips_stage_2(fake_cifar, tmp_path):
    run = train(tiny_config(fake_cifar, tmp_path / "runs", cache_dir=str(tmp_path / "cache"), fine_tune_blocks=0))
    assert run.state == "finished"
    assert [s["stage"] for s in of_type(run.records, "stage_start")] == [1]
    assert {e["stage"] for e in of_type(run.records, "epoch")} == {1}
    assert "fine_tune" not in [r["phase"] for r in of_type(run.records, "phase")]
    assert not (run.run_dir / "backup" / "stage2.done").exists()
    names = cache_files(tmp_path / "cache")
    assert len(names) == 3 and all(n.endswith(".pooled.npy") for n in names)  # no activations kept
    assert (run.run_dir / "model.keras").is_file() and (run.run_dir / "report.json").is_file()


def test_without_augmentation_one_view_is_extracted(fake_cifar, tmp_path, monkeypatch):
    spy = ExtractSpy(monkeypatch)
    run = train(tiny_config(fake_cifar, tmp_path / "runs", cache_dir=str(tmp_path / "cache"), augment=False,
                            epochs_fine=1))
    assert run.state == "finished"
    assert len(spy.calls) == 2  # train and val, no mirrored view
    assert extraction_progress(run.records)[-1]["total"] == 250 + 50
    assert len(cache_files(tmp_path / "cache")) == 4


def keep_trained_models(monkeypatch) -> dict:
    """{stage: (model trained, TransferModel)}, filled as the real fit_stage runs."""
    trained = {}
    original = training._Trainer.fit_stage

    def keep_model(self, plan):
        trained[plan.stage] = (plan.model, self.tm)
        return original(self, plan)

    monkeypatch.setattr(training._Trainer, "fit_stage", keep_model)
    return trained


def test_end_to_end_pixel_path_when_activations_do_not_fit(fake_cifar, tmp_path, monkeypatch):
    monkeypatch.setattr(training, "ACTIVATION_CACHE_BUDGET", 0)
    trained = keep_trained_models(monkeypatch)
    run = train(tiny_config(fake_cifar, tmp_path / "runs", cache_dir=str(tmp_path / "cache")))
    assert run.state == "finished"
    assert [(e["stage"], e["epoch"]) for e in of_type(run.records, "epoch")] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    stage2 = [s for s in of_type(run.records, "stage_start") if s["stage"] == 2][0]
    assert stage2["steps_per_epoch"] == math.ceil(250 / run.config.batch_size)
    assert all(math.isfinite(e["loss"]) for e in of_type(run.records, "epoch"))
    names = cache_files(tmp_path / "cache")
    assert names and not [n for n in names if n.endswith(".acts.npy")]  # only pooled features cached
    model, tm = trained[2]
    assert model is tm.full  # stage 2 trained the deployed model itself, from pixels
    # Fine-tuning left every BatchNorm's moving statistics as built (random weights: mean 0, variance 1).
    stats = batchnorm_moving_stats(tm.full)
    assert stats
    for name, (mean, var) in stats.items():
        np.testing.assert_array_equal(mean, 0, err_msg=name)
        np.testing.assert_array_equal(var, 1, err_msg=name)


# --- real learning ----------------------------------------------------------------------------


@pytest.fixture
def imagenet_weights(keras_home, monkeypatch):
    """Point Keras at the real MobileNetV2 weights. Keras reads KERAS_HOME once, at import."""
    import keras.src.backend.config as keras_config

    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(keras_home))
    return keras_home


def test_imagenet_features_learn_the_fake_classes(fake_cifar, tmp_path, imagenet_weights, monkeypatch):
    """The fake classes are colours; ImageNet features at 32 px separate them within seconds."""
    trained = keep_trained_models(monkeypatch)
    run = train(tiny_config(fake_cifar, tmp_path / "runs", cache_dir=str(tmp_path / "cache"), weights="imagenet",
                            epochs_head=8, lr_head=0.01, epochs_fine=1, lr_fine=1e-5, seed=5))
    assert run.state == "finished"
    epochs = of_type(run.records, "epoch")
    assert epochs[-2]["accuracy"] > epochs[0]["accuracy"] + 0.2  # the head learned
    best_val = max(e["val_accuracy"] for e in epochs)
    assert best_val >= 0.7
    report = json.loads((run.run_dir / "report.json").read_text())
    assert report["test_accuracy"] >= 0.6, report["test_accuracy"]  # chance is 0.1
    assert report["macro_roc_auc"] > 0.85

    # model.keras is the best model by validation accuracy, whichever stage produced it.
    cfg = run.config
    splits = make_splits(cfg.data_dir, cfg.val_size, cfg.seed, cfg.limit_train, cfg.limit_test)
    model = load_model_checked(run.run_dir / "model.keras")
    val_acc = (predict_probabilities(model, splits.x_val, tta_flip=False).argmax(1) == splits.y_val).mean()
    assert abs(val_acc - best_val) <= 1 / len(splits.y_val) + 1e-6  # float16 cache may flip one image

    # Fine-tuning (stage 2, on cached activations) kept the ImageNet BatchNorm statistics.
    from tui_cifar.engine.backbones import build_backbone

    pristine = batchnorm_moving_stats(build_backbone(cfg.backbone, cfg.image_size, "imagenet"))
    stage2_model, tm = trained[2]
    assert stage2_model is not tm.full  # the cached-activation trainer
    for after in (batchnorm_moving_stats(tm.full), batchnorm_moving_stats(model)):
        assert set(after) == set(pristine)
        for name in pristine:
            np.testing.assert_array_equal(after[name][0], pristine[name][0], err_msg=name)
            np.testing.assert_array_equal(after[name][1], pristine[name][1], err_msg=name)


@pytest.mark.parametrize("min_interval, writes_during_training", [(0.0, 3), (3600.0, 1)])
def test_best_checkpoint_writes_the_best_weights_however_often_it_writes(tmp_path, min_interval, writes_during_training):
    """A best held back by min_interval reaches disk at train end, and it is the best, not the last, epoch."""
    from tui_cifar.engine.callbacks import BestCheckpoint

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    checkpoint = BestCheckpoint(tmp_path / "t.weights.h5", model, tmp_path / "model.keras", tmp_path / "score.json",
                                min_interval)
    checkpoint.set_model(model)
    writes = []
    for epoch, val_accuracy in enumerate([0.5, 0.6, 0.7, 0.65]):
        model.layers[0].bias.assign([float(epoch)])  # the weights tell the epochs apart
        checkpoint.on_epoch_end(epoch, {"loss": 1.0, "val_accuracy": val_accuracy})
        writes.append(json.loads((tmp_path / "score.json").read_text())["epoch"])
    assert len(set(writes)) == writes_during_training
    checkpoint.on_train_end()
    assert json.loads((tmp_path / "score.json").read_text()) == {"val_accuracy": 0.7, "epoch": 3}
    saved = keras.saving.load_model(tmp_path / "model.keras")
    assert float(saved.layers[0].bias.numpy()[0]) == 2.0
    model.load_weights(tmp_path / "t.weights.h5")
    assert float(model.layers[0].bias.numpy()[0]) == 2.0


def _epoch_batches(ds, in_place: bool):
    """One epoch of view_batches as numpy (x, y) pairs, however it is built."""
    if not in_place:
        return [(bx.numpy(), by.numpy()) for bx, by in ds]
    batches = [ds[i] for i in range(len(ds))]
    ds.on_epoch_end()
    return batches


@pytest.mark.parametrize("in_place", [False, True], ids=["stage1-tf.data", "stage2-in-place"])
def test_view_batches_draw_every_sample_once_per_epoch_from_either_view(in_place):
    n = 300
    code = np.arange(1, n + 1, dtype=np.float16)[:, None]  # sample i's features are i + 1, negated in the other view
    ds = training.view_batches([code, -code], np.arange(n)[:, None], batch_size=64, seed=3, in_place=in_place)
    epochs = []
    for _ in range(2):
        x, y = (np.concatenate(parts) for parts in zip(*_epoch_batches(ds, in_place)))
        assert x.dtype == np.float32 and sorted(y[:, 0]) == list(range(n))  # each sample once
        np.testing.assert_array_equal(np.abs(x[:, 0]) - 1, y[:, 0])  # features travel with their own label
        assert 0.3 < (x[:, 0] > 0).mean() < 0.7  # both views drawn
        epochs.append(y[:, 0])
    assert not np.array_equal(epochs[0], epochs[1])  # a new order every epoch
