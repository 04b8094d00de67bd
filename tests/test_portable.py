"""A run's model outside cifar-tui: plain Keras in a process without tui_cifar, a SavedModel, a TFLite file."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import tiny_config

from tui_cifar.cli import commands
from tui_cifar.config import make_config
from tui_cifar.engine.launcher import create_run
from tui_cifar.engine.model import build_transfer_model
from tui_cifar.engine.prediction import load_model_checked
from tui_cifar.engine.training import train_run
from tui_cifar.runs import store

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

IMAGES = np.random.default_rng(7).integers(0, 256, (5, 32, 32, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def run_dir(fake_cifar, tmp_path_factory) -> Path:
    """A run trained by cifar-tui (random weights, seconds): its model.keras is what users export."""
    base = tmp_path_factory.mktemp("portable")
    config = make_config(tiny_config(fake_cifar, base / "runs", cache_dir=str(base / "cache"), limit_test=20))
    run = create_run(config)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        assert train_run(config, run) == "finished"
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    return run


def test_the_run_start_record_names_the_versions_and_the_device(run_dir):
    from tui_cifar.engine.doctor import versions

    start = next(r for r in store.read_metrics(run_dir)[0] if r["type"] == "run_start")
    assert start["versions"] == versions() and start["versions"]["tensorflow"]
    assert start["device"].startswith("CPU")


def expected(path: Path) -> np.ndarray:
    return load_model_checked(path).predict(IMAGES, verbose=0)


# Runs with `python -I` (no PYTHONPATH, no current folder) and refuses tui_cifar even where the
# project is installed, so nothing cifar-tui registers can help Keras load the file.
PLAIN_KERAS = textwrap.dedent("""
    import importlib.abc, sys

    class NoCifarTui(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "tui_cifar":
                raise ModuleNotFoundError(f"{name} is hidden from this test")

    sys.meta_path.insert(0, NoCifarTui())
    import keras, numpy as np

    images = np.load(sys.argv[1])
    for model_path, out in zip(sys.argv[2::2], sys.argv[3::2]):
        model = keras.models.load_model(model_path)  # safe_mode=True is the default
        np.save(out, model.predict(images, verbose=0))
    assert not [m for m in sys.modules if m.partition(".")[0] == "tui_cifar"]
""")


def test_plain_keras_loads_the_models_without_cifar_tui(run_dir, tmp_path):
    # The run's model (MobileNetV2: Rescaling) and a ResNet50 one (the frozen Dense of its BGR/mean scaling).
    resnet = tmp_path / "resnet50.keras"
    build_transfer_model("resnet50", 32, 0, weights=None).full.save(resnet)
    models = [run_dir / store.MODEL_FILE, resnet]
    np.save(tmp_path / "images.npy", IMAGES)
    outs = [tmp_path / f"probs{i}.npy" for i in range(len(models))]
    args = [str(a) for pair in zip(models, outs) for a in pair]
    done = subprocess.run([sys.executable, "-I", "-c", PLAIN_KERAS, str(tmp_path / "images.npy"), *args],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for model, out in zip(models, outs):
        np.testing.assert_allclose(np.load(out), expected(model), rtol=1e-5, atol=1e-6)


def test_export_saved_model_serves_the_same_probabilities(run_dir, capsys):
    import tensorflow as tf

    assert commands.main(["export", str(run_dir), "--format", "saved_model"]) == 0
    out = Path(capsys.readouterr().out.strip())
    assert out == run_dir / "model_saved_model" and (out / "saved_model.pb").is_file()
    loaded = tf.saved_model.load(str(out))  # kept: serve() needs the object that owns the variables
    np.testing.assert_allclose(loaded.serve(tf.constant(IMAGES)).numpy(), expected(run_dir / store.MODEL_FILE), rtol=1e-5, atol=1e-6)


def test_export_tflite_runs_in_litert_with_the_same_probabilities(run_dir, tmp_path, capsys):
    from ai_edge_litert.interpreter import Interpreter

    target = tmp_path / "phone" / "cifar.tflite"
    assert commands.main(["export", str(run_dir), "--format", "tflite", "--out", str(target)]) == 0
    assert Path(capsys.readouterr().out.strip()) == target
    assert [p.name for p in target.parent.iterdir()] == ["cifar.tflite"]  # no temporary file left
    interpreter = Interpreter(model_path=str(target))
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(inp["index"], IMAGES.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], IMAGES)
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(outp["index"]), expected(run_dir / store.MODEL_FILE),
                               rtol=1e-4, atol=1e-5)


def test_export_of_a_folder_without_a_model_says_so(tmp_path, capsys):
    assert commands.main(["export", str(tmp_path), "--format", "tflite"]) == commands.EXIT_FAILED
    err = capsys.readouterr().err
    assert "no model at" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_swapped_weights_file_is_a_cache_miss(keras_home, tmp_path):
    """Same backbone, same name "imagenet", other weights file contents: the features are computed again."""
    import shutil

    import h5py

    from tui_cifar.engine.features import cached_extract, model_id

    def extract_once():
        tm = build_transfer_model("mobilenetv2-0.35", 96, 2, weights="imagenet")
        key = model_id("mobilenetv2-0.35", 96, tm.bottom, tm.extractor)
        return key, cached_extract(tmp_path / "cache", key, "original", IMAGES, tm.extractor, 8, True)[2]

    original_key, first_hit = extract_once()
    assert (not first_hit, extract_once()) == (True, (original_key, True))
    weights = keras_home / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"
    kept = tmp_path / "kept.h5"
    weights.rename(kept)  # the Keras home links into ../shared: swap the link for a changed copy
    try:
        shutil.copyfile(kept, weights)
        with h5py.File(weights, "r+") as f:
            datasets = []
            f.visititems(lambda name, item: datasets.append(item) if isinstance(item, h5py.Dataset) else None)
            datasets[0][...] = datasets[0][...] + 0.01
        swapped_key, swapped_hit = extract_once()
    finally:
        weights.unlink(missing_ok=True)
        kept.rename(weights)
    assert swapped_key != original_key and not swapped_hit


def test_the_cache_key_covers_the_compute_dtype():
    from tui_cifar.engine.features import model_id

    tm = build_transfer_model("mobilenetv2-0.35", 32, 2, weights=None)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = build_transfer_model("mobilenetv2-0.35", 32, 2, weights=None)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    half.extractor.set_weights(tm.extractor.get_weights())
    assert model_id("mobilenetv2-0.35", 32, half.bottom, half.extractor) != model_id(
        "mobilenetv2-0.35", 32, tm.bottom, tm.extractor)
