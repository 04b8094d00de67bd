"""tui_cifar.engine.forward: a frozen model run by LiteRT gives Keras' answers, converts once, and falls back to Keras."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from tui_cifar.engine import forward as forward_module
from tui_cifar.engine.forward import Forward, converted_path
from tui_cifar.engine.model import build_transfer_model

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def tiny_model():
    return build_transfer_model("mobilenetv2-0.35", 32, 2, weights=None)


@pytest.fixture(scope="module")
def converted(tiny_model, tmp_path_factory):
    """The extractor converted once into a cache folder that the tests below reuse."""
    path = converted_path(tmp_path_factory.mktemp("cache"), "mobilenetv2-0.35|test|32")
    forward = Forward(tiny_model.extractor, "litert", path)
    assert forward.ready() == "litert", forward.note
    return path


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3)).astype(np.float32)


def test_litert_gives_the_keras_outputs_in_keras_order(tiny_model, converted):
    x = images(5)
    got = Forward(tiny_model.extractor, "litert", converted, litert_batch=4).predict(x)  # 4 + a padded 1
    want = tiny_model.extractor.predict(x, verbose=0)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-3 * np.abs(w).max())


def test_a_cached_conversion_is_loaded_not_redone(tiny_model, converted, monkeypatch):
    def no_conversion(model):
        raise AssertionError("converted again")

    monkeypatch.setattr(forward_module, "convert", no_conversion)
    forward = Forward(tiny_model.extractor, "litert", converted)
    acts, pooled = forward.predict(images(3))
    assert forward.runtime == "litert" and forward.note is None
    assert acts.shape == (3, *tiny_model.extractor.outputs[0].shape[1:]) and pooled.shape[0] == 3


def test_the_key_separates_networks_and_weights(tmp_path):
    assert converted_path(tmp_path, "mobilenetv2|imagenet|160|cut") != converted_path(tmp_path, "mobilenetv2|imagenet|192|cut")
    assert converted_path(tmp_path, "a") == converted_path(tmp_path, "a")


def test_the_file_id_follows_the_bytes(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"one")
    first = forward_module.file_model_id(path)
    path.write_bytes(b"two")
    assert forward_module.file_model_id(path) != first


def test_a_conversion_failure_falls_back_to_keras_with_one_line(tiny_model, tmp_path, monkeypatch, caplog):
    def broken(model):
        raise RuntimeError("converter says no\nsecond line")

    monkeypatch.setattr(forward_module, "convert", broken)
    path = converted_path(tmp_path, "x")
    forward = Forward(tiny_model.full, "auto", path)
    x = images(3)
    with caplog.at_level(logging.WARNING, logger="tui_cifar.engine.forward"):
        probs = forward.predict(x, batch_size=2)
    assert forward.runtime == "keras"
    assert forward.note == "LiteRT unavailable (RuntimeError: converter says no); using Keras"
    assert [r.getMessage() for r in caplog.records] == [forward.note]
    np.testing.assert_allclose(probs, tiny_model.full.predict(x, verbose=0), rtol=1e-6)
    assert not path.exists()


def test_litert_missing_falls_back_to_keras(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    forward = Forward(tiny_model.full, "litert", converted_path(tmp_path, "x"))
    assert forward.ready() == "keras" and "ModuleNotFoundError" in forward.note


def test_keras_is_used_when_asked(tiny_model, monkeypatch):
    monkeypatch.setattr(forward_module, "convert", lambda model: pytest.fail("converted for the keras runtime"))
    forward = Forward(tiny_model.full, "keras")
    assert forward.predict(images(2)).shape == (2, 10) and forward.runtime == "keras"


def test_auto_is_litert_on_a_cpu_and_unknown_names_are_refused():
    assert forward_module.resolve("auto") == "litert"  # these tests run without a GPU
    with pytest.raises(ValueError, match="auto, litert, keras"):
        forward_module.resolve("onnx")


def test_no_images_give_empty_outputs(tiny_model, converted):
    acts, pooled = Forward(tiny_model.extractor, "litert", converted).predict(images(0))
    assert len(acts) == len(pooled) == 0


def test_a_run_records_which_runtime_ran(fake_cifar, tmp_path):
    """Features, the test report and the run's classifier all go through LiteRT, and the records say so."""
    from conftest import tiny_config
    from test_training import train

    from tui_cifar.engine.prediction import load_classifier
    from tui_cifar.runs import store

    run = train(tiny_config(fake_cifar, tmp_path / "runs", runtime="litert", epochs_head=1, epochs_fine=1, cache_dir=str(tmp_path / "cache")))
    run_dir = run.run_dir
    assert run.state == "finished"
    done = next(r for r in run.records if r["type"] == "features_done")
    assert (done["runtime"], done["runtime_note"]) == ("litert", None)
    report, _ = store.read_report(run_dir)
    assert report["runtime"] == "litert"
    assert len(list((tmp_path / "cache" / "litert").glob("*.tflite"))) == 2  # the extractor and the saved model
    classifier = load_classifier(run_dir)
    x = images(3)
    np.testing.assert_allclose(classifier.predict_arrays(x), load_classifier(run_dir, "keras").predict_arrays(x), atol=1e-4)
    assert classifier.model.runtime == "litert"


def test_a_damaged_cached_conversion_is_redone(tiny_model, tmp_path):
    path = converted_path(tmp_path, "damaged")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a flatbuffer")
    forward = Forward(tiny_model.full, "litert", path)
    assert forward.ready() == "litert", forward.note
    assert path.stat().st_size > 1000
