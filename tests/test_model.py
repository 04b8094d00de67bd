"""tui_cifar.engine.model and tui_cifar.engine.backbones: the deployed model and the cached-activation trainers are one network.

Every backbone is built with random weights (weights=None) at a small input size, so no download is needed.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest

from tui_cifar.engine.backbones import BACKBONES, blocks_of, describe_fine_tune, first_trainable_layer, get_spec
from tui_cifar.engine.model import BackbonePreprocess, build_transfer_model, preprocessing
from tui_cifar.engine.prediction import load_model_checked

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras + NumPy 2

SIZE = 64
FINE_TUNE = (0, 2, "all")
IMAGES = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3)).astype(np.float32)


@functools.cache
def built(name: str, fine_tune_blocks):
    keras.utils.set_random_seed(1)
    tm = build_transfer_model(name, SIZE, fine_tune_blocks, weights=None)
    calibrate_batchnorm(tm.full, IMAGES)
    return tm


def calibrate_batchnorm(model, x) -> None:
    """Set every BatchNorm's moving statistics to those of x.

    A randomly initialised backbone with fresh moving statistics (mean 0, variance 1) shrinks
    the signal to ~1e-9 by its output, and every class then gets 0.1: comparisons between
    paths would pass for any wiring. Calibrated, the random network gives varied outputs.
    """
    layers = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [(layer.trainable, layer.momentum) for layer in layers]
    for layer in layers:
        layer.trainable, layer.momentum = True, 0.0
    model(x, training=True)
    for layer, (trainable, momentum) in zip(layers, saved):
        layer.trainable, layer.momentum = trainable, momentum


def probs(model, x) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False)).astype(np.float64)


def n_params(weights) -> int:
    return sum(int(np.prod(w.shape)) for w in weights)


def batchnorm_state(layers) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v).copy() for layer in layers
            if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)]


def all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


@pytest.mark.parametrize("fine_tune_blocks", FINE_TUNE, ids=str)
@pytest.mark.parametrize("name", list(BACKBONES))
def test_full_model_and_cached_paths_agree(name, fine_tune_blocks):
    tm = built(name, fine_tune_blocks)
    assert tuple(tm.full.input.shape) == (None, 32, 32, 3)
    full = probs(tm.full, IMAGES)
    assert full.shape == (len(IMAGES), 10)
    assert np.isfinite(full).all() and (full >= 0).all()
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-5)
    assert full.std(axis=1).min() > 1e-3, "degenerate network: every class gets the same probability"

    activations, pooled = (keras.ops.convert_to_numpy(t) for t in tm.extractor(IMAGES, training=False))
    assert activations.shape[0] == pooled.shape[0] == len(IMAGES)
    # Stage 2 trains top + head on cached boundary activations: same probabilities as the deployed model.
    stage2 = tm.trainable_on_activations()
    np.testing.assert_allclose(probs(stage2, activations), full, rtol=1e-4, atol=1e-6)
    # Stage 1 trains the head on cached pooled features: same again.
    stage1 = tm.trainable_on_features()
    np.testing.assert_allclose(probs(stage1, pooled), full, rtol=1e-4, atol=1e-6)
    # ... and through float16, the cache's storage type, the answer barely moves.
    np.testing.assert_allclose(probs(stage2, activations.astype(np.float16).astype(np.float32)), full, atol=0.02)

    # The trainers share the deployed model's variables: training them trains model.keras.
    full_vars = {id(v) for v in tm.full.trainable_weights}
    assert {id(v) for v in stage2.trainable_weights} == full_vars
    assert {id(v) for v in stage1.trainable_weights} == {id(v) for v in tm.head.trainable_weights}
    assert n_params(tm.bottom.trainable_weights) == 0


@pytest.mark.parametrize("name", list(BACKBONES))
def test_top_holds_exactly_the_last_blocks(name):
    spec = get_spec(name)
    blocks = blocks_of(name, built(name, 0).bottom)
    assert len(blocks) == spec.blocks  # what the config checks fine_tune_blocks against
    tm0, tm2, tm_all = (built(name, ft) for ft in FINE_TUNE)
    assert tm0.top is None
    top_blocks = {spec.block_of(layer.name) for layer in tm2.top.layers} - {None}
    bottom_blocks = {spec.block_of(layer.name) for layer in tm2.bottom.layers} - {None}
    assert top_blocks == set(blocks[-2:])
    assert bottom_blocks == set(blocks[:-2])
    assert {spec.block_of(layer.name) for layer in tm_all.top.layers} - {None} == set(blocks)
    # trainable parameters grow with the blocks unfrozen
    counts = [n_params(tm.trainable_on_activations().trainable_weights) for tm in (tm0, tm2, tm_all)]
    assert counts[0] == n_params(tm0.head.trainable_weights)
    assert counts[0] < counts[1] < counts[2]
    assert counts[2] == n_params(tm_all.head.trainable_weights) + n_params(
        w for w in tm_all.top.weights if w.trainable)


def test_fine_tune_boundaries_follow_the_block_count():
    backbone = built("mobilenetv2", 0).bottom
    blocks = blocks_of("mobilenetv2", backbone)
    assert blocks[0] == "expanded_conv" and blocks[-1] == "Conv_1" and len(blocks) == 18
    assert first_trainable_layer("mobilenetv2", backbone, 0) == len(backbone.layers)
    assert first_trainable_layer("mobilenetv2", backbone, "all") == 1
    assert first_trainable_layer("mobilenetv2", backbone, 100) == 1
    starts = [first_trainable_layer("mobilenetv2", backbone, n) for n in range(1, 18)]
    assert starts == sorted(starts, reverse=True) and len(set(starts)) == 17
    assert backbone.layers[starts[0]].name.startswith("Conv_1")
    assert backbone.layers[starts[2]].name.startswith("block_15")


def test_describe_fine_tune():
    text = describe_fine_tune("mobilenetv2-0.35", 96, 3)
    assert text.startswith("3 of 18 blocks,") and "backbone parameters trainable" in text
    assert describe_fine_tune("mobilenetv2-0.35", 96, "all").startswith("18 of 18 blocks")
    assert describe_fine_tune("mobilenetv2-0.35", 96, 50).startswith("18 of 18 blocks")


@pytest.mark.parametrize("name", ["mobilenetv2-0.35", "mobilenetv3small", "efficientnetv2b0"])
def test_batchnorm_stays_in_inference_mode_while_training(name):
    tm = built(name, 2)
    activations = keras.ops.convert_to_numpy(tm.extractor(IMAGES, training=False)[0])
    stage2 = tm.trainable_on_activations()
    bn_layers = [layer for layer in all_layers(tm.full) if isinstance(layer, keras.layers.BatchNormalization)]
    assert bn_layers, "no BatchNormalization layer found"
    before = batchnorm_state(bn_layers)

    # A training-mode call: dropout acts (outputs differ) but BatchNorm uses its moving statistics.
    noisy = probs_training(stage2, activations)
    assert not np.allclose(noisy, probs(stage2, activations))
    probs_training(tm.full, IMAGES)  # the end-to-end (pixel) trainer
    stage2.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    kernels = [keras.ops.convert_to_numpy(w).copy() for w in tm.top.trainable_weights]
    labels = keras.utils.to_categorical(np.arange(len(IMAGES)) % 10, 10)
    for _ in range(2):
        stage2.train_on_batch(activations, labels)

    after = batchnorm_state(bn_layers)
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)
    changed = [not np.array_equal(k, keras.ops.convert_to_numpy(w)) for k, w in zip(kernels, tm.top.trainable_weights)]
    assert any(changed), "fine-tuning did not update the top"
    # The deployed model follows the trained top and still equals the cached path.
    np.testing.assert_allclose(probs(tm.full, IMAGES), probs(stage2, activations), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_the_frozen_bottom_is_deterministic_in_a_training_call(name):
    """EfficientNet's stochastic-depth dropout must not fire in frozen blocks during end-to-end fine-tuning."""
    tm = built(name, 2)
    first, second = (keras.ops.convert_to_numpy(tm.extractor(IMAGES, training=True)[0]) for _ in range(2))
    inference = keras.ops.convert_to_numpy(tm.extractor(IMAGES, training=False)[0])
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, inference, rtol=1e-5, atol=1e-6)


def probs_training(model, x) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=True)).astype(np.float64)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_saved_model_reloads_in_safe_mode_with_identical_outputs(name, tmp_path):
    tm = built(name, 2)
    path = tmp_path / "model.keras"
    tm.full.save(path)
    # What `cifar-tui predict` and the evaluation use: keras.saving.load_model(..., safe_mode=True).
    reloaded = load_model_checked(path)
    np.testing.assert_array_equal(probs(reloaded, IMAGES), probs(tm.full, IMAGES))


# What the first convolution of each backbone sees for the RGB pixel (0, 127.5, 255), by hand from
# keras.applications' preprocess_input: "tf" x/127.5 - 1; EfficientNetV2-B: x/255 then ImageNet
# mean/std; "caffe" BGR minus the ImageNet mean.
FIRST_CONV_INPUT = {
    "mobilenetv2": (-1.0, 0.0, 1.0),
    "mobilenetv2-0.35": (-1.0, 0.0, 1.0),
    "mobilenetv3small": (-1.0, 0.0, 1.0),
    "mobilenetv3large": (-1.0, 0.0, 1.0),
    "efficientnetv2b0": ((0 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (1 - 0.406) / 0.225),
    "resnet50": (255 - 103.939, 127.5 - 116.779, 0 - 123.68),
}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_each_backbone_sees_its_own_input_scaling_once(name):
    """The full model's path from pixels to the backbone's first convolution scales as the backbone was trained."""
    tm = built(name, 2)
    first_conv = next(layer for layer in tm.bottom.layers if isinstance(layer, keras.layers.Conv2D))
    into_conv = keras.Model(tm.bottom.input, first_conv.input)
    x = np.broadcast_to(np.array([0.0, 127.5, 255.0], np.float32), (1, 32, 32, 3))
    x = tm.full.get_layer("upsample")(x)
    for layer in tm.full.layers:
        if layer.name == "preprocess":
            x = layer(x)
    seen = keras.ops.convert_to_numpy(into_conv(x))
    np.testing.assert_allclose(seen[0, SIZE // 2, SIZE // 2], FIRST_CONV_INPUT[name], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("mode", ["tf", "caffe"])
def test_models_of_earlier_versions_still_load_and_scale_as_before(mode, tmp_path):
    """model.keras files written with the custom BackbonePreprocess layer load in cifar-tui, same numbers."""
    keras.utils.set_random_seed(3)
    images = keras.Input((32, 32, 3))
    x = BackbonePreprocess(mode, name="preprocess")(images)
    x = keras.layers.GlobalAveragePooling2D()(x)
    old = keras.Model(images, keras.layers.Dense(10, activation="softmax")(x))
    old.save(tmp_path / "model.keras")
    np.testing.assert_array_equal(probs(load_model_checked(tmp_path / "model.keras"), IMAGES), probs(old, IMAGES))
    new = IMAGES
    for layer in preprocessing(mode):
        new = layer(new)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new),
                               keras.ops.convert_to_numpy(old.get_layer("preprocess")(IMAGES)), rtol=1e-6, atol=1e-4)


def test_extraction_in_padded_batches_matches_one_image_at_a_time():
    """The short last batch is padded to the batch size; its padding must not leak into the results."""
    from tui_cifar.engine.features import extract

    tm = built("mobilenetv2", 2)
    acts, pooled = extract(tm.extractor, IMAGES, batch_size=4)
    assert acts.shape[0] == pooled.shape[0] == len(IMAGES)
    for i, image in enumerate(IMAGES):
        one_acts, one_pooled = tm.extractor.predict_on_batch(image[None])
        np.testing.assert_allclose(pooled[i], one_pooled[0], rtol=2e-3, atol=2e-3)  # stored as float16
        np.testing.assert_allclose(acts[i], one_acts[0], rtol=2e-3, atol=2e-3)
