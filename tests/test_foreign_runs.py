"""A run folder from someone else is read, never obeyed: its config.json may name a data folder and a
converted-model cache, and reading the run (evaluate, predict) uses the user's own instead."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_config, write_fake_cifar

from tui_cifar.cli import commands
from tui_cifar.config import make_config
from tui_cifar.runs import store

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


class _CreatesMarker:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _tiny_model(bias_class: int | None = None):
    """A 32x32 RGB -> 10-class model; with ``bias_class``, one that always answers that class."""
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    dense = keras.layers.Dense(10, activation="softmax")
    model = keras.Model(inputs, dense(x))
    if bias_class is not None:
        kernel, bias = dense.get_weights()
        bias[:] = -20
        bias[bias_class] = 20
        dense.set_weights([np.zeros_like(kernel), bias])
    return model


@pytest.fixture
def foreign_run(tmp_path):
    """A run folder as an attacker would hand it over: its config names a data folder holding a pickle that
    runs code, and a cache holding a converted model (always 'ship') under this model.keras's own key."""
    from tui_cifar.engine.forward import convert, converted_path, file_model_id

    evil_data = write_fake_cifar(tmp_path / "evil-data")
    marker = tmp_path / "marker"
    with open(evil_data / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump(_CreatesMarker(marker), f)
    run_dir = tmp_path / "runs" / "20250101-000000-theirs"
    run_dir.mkdir(parents=True)
    model = _tiny_model()
    model.save(run_dir / store.MODEL_FILE)
    planted = converted_path(run_dir / "cache", file_model_id(run_dir / store.MODEL_FILE))
    planted.parent.mkdir(parents=True)
    planted.write_bytes(convert(_tiny_model(bias_class=8)))
    config = make_config(tiny_config(evil_data, tmp_path / "runs", cache_dir=str(run_dir / "cache"),
                                     runtime="litert", limit_test=20, tta_flip=False))
    (run_dir / store.CONFIG_FILE).write_text(json.dumps(config.to_json()))
    store.write_status(run_dir, "finished", "done")
    return run_dir, marker, planted, model


def test_evaluate_reads_the_users_data_not_the_runs(foreign_run, fake_cifar, capsys):
    run_dir, marker, _planted, _model = foreign_run
    code = commands.main(["--data-dir", str(fake_cifar), "evaluate", str(run_dir), "--json"])
    assert code == 0, capsys.readouterr().err
    assert not marker.exists()
    report = json.loads(capsys.readouterr().out)
    assert report["num_test"] == 20


def test_predict_never_uses_a_converted_model_from_the_runs_cache(foreign_run, tmp_path, capsys):
    from PIL import Image

    from tui_cifar.paths import features_cache_dir

    run_dir, _marker, planted, model = foreign_run
    photo = tmp_path / "photo.png"
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(photo)
    code = commands.main(["predict", str(run_dir), str(photo), "--json", "--runtime", "litert"])
    assert code == 0, capsys.readouterr().err
    answer = json.loads(capsys.readouterr().out)[0]["top"][0]
    expected = model.predict(pixels[None].astype(np.float32), verbose=0)[0]
    assert answer["class"] != "ship" or expected.argmax() == 8
    assert answer["probability"] == pytest.approx(float(expected.max()), abs=1e-4)
    # the conversion used is this model.keras's, in the user's own cache
    assert list((features_cache_dir() / "litert").glob("*.tflite"))
    assert planted.exists()
