"""LiteRT and Keras agree on the real MobileNetV2 ImageNet weights and real CIFAR-10 images.

Features are cached as float16 and probabilities feed argmax and metrics: agreeing within
float16 rounding means the runtime cannot change what a run learns or reports.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REAL_CIFAR, needs_shared

from tui_cifar.engine.data import load_test_images
from tui_cifar.engine.forward import Forward
from tui_cifar.engine.model import build_transfer_model
from tui_cifar.engine.prediction import predict_probabilities

pytestmark = [pytest.mark.realdata, needs_shared,
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

FLOAT16_RTOL = 2.0**-10  # float16 keeps 10 bits of mantissa


@pytest.fixture(scope="module")
def real():
    tm = build_transfer_model("mobilenetv2", 96, 2, weights="imagenet")
    return tm, load_test_images(str(REAL_CIFAR))[0][:40]


def test_features_agree_within_float16_rounding(real, tmp_path):
    tm, x = real
    forward = Forward(tm.extractor, "litert", tmp_path / "extractor.tflite", litert_batch=16)
    got = forward.predict(x)  # 16, 16 and a padded 8
    assert forward.runtime == "litert", forward.note
    for g, want in zip(got, tm.extractor.predict(x.astype(np.float32), verbose=0)):
        scale = np.abs(want).max()
        assert scale > 1  # real activations, not a dead network
        np.testing.assert_allclose(g, want, rtol=FLOAT16_RTOL, atol=FLOAT16_RTOL * scale)


def test_probabilities_agree_with_tta(real, tmp_path):
    tm, x = real
    forward = Forward(tm.full, "litert", tmp_path / "full.tflite")
    got = predict_probabilities(forward, x, tta_flip=True, batch_size=16)
    want = predict_probabilities(tm.full, x, tta_flip=True, batch_size=16)
    assert forward.runtime == "litert", forward.note
    np.testing.assert_allclose(got, want, atol=FLOAT16_RTOL)
    assert (got.argmax(1) == want.argmax(1)).all()
