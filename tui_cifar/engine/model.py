"""The classifier: 32x32 CIFAR pixels in, class probabilities out.

The backbone is cut at the *freeze boundary* into a frozen ``bottom`` and a
fine-tuned ``top``. The full model (saved as ``model.keras``) chains
resize -> backbone preprocessing -> bottom -> top -> head, while training on
cached activations uses ``top`` and the head alone: both share the same
layer objects, so training one trains the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from .backbones import build_backbone, first_trainable_layer, get_spec

NUM_CLASSES = 10
CIFAR_SHAPE = (32, 32, 3)

IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications' "caffe" preprocessing


def preprocessing(mode: str) -> list[keras.layers.Layer]:
    """The backbone's input scaling (BackboneSpec.preprocess) as built-in layers.

    Built-in layers only, so model.keras loads with plain `keras.models.load_model` (safe mode on)
    where cifar-tui is not installed, and converts to TFLite.
    """
    if mode == "tf":
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")]
    if mode == "caffe":
        # RGB -> BGR and minus the mean is one fixed affine map per pixel: a frozen 3x3 Dense.
        swap = keras.layers.Dense(3, name="preprocess", trainable=False)
        swap.build((None, 3))
        swap.set_weights([np.eye(3, dtype=np.float32)[::-1], -np.array(IMAGENET_MEAN_BGR, np.float32)])
        return [swap]
    if mode == "none":
        return []
    raise ValueError(f"unknown preprocessing mode {mode!r}")


@keras.saving.register_keras_serializable(package="cifar_tui")
class BackbonePreprocess(keras.layers.Layer):
    """Loading only: the model.keras files of earlier cifar-tui versions hold this layer, not built-in ones."""

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, inputs):
        x = keras.ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "caffe":
            return x[..., ::-1] - keras.ops.convert_to_tensor(IMAGENET_MEAN_BGR, dtype=self.compute_dtype)
        return x

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@dataclass
class TransferModel:
    """The pieces of one classifier. ``full`` is what gets saved and served."""

    full: keras.Model
    bottom: keras.Model  # images (resized, preprocessed) -> activations at the freeze boundary
    top: keras.Model | None  # boundary activations -> backbone output; None when nothing is fine-tuned
    head: keras.Sequential  # backbone output -> class probabilities
    extractor: keras.Model  # 32x32 images -> (boundary activations, pooled frozen features)

    def unfreeze_top(self) -> None:
        """Make the top blocks trainable for stage 2, their BatchNorm layers excepted.

        Keras 3 hands the outer call's ``training`` flag to every layer of a nested
        functional model, overriding the ``training=False`` recorded when the model was
        built; only a BatchNormalization layer with ``trainable=False`` reliably stays in
        inference mode (normalises with, and keeps, its moving statistics).
        """
        if self.top is None:
            return
        self.top.trainable = True
        _freeze_batchnorm(self.top)

    def trainable_on_activations(self) -> keras.Model:
        """top + head as one model fed with cached boundary activations (stage 2)."""
        inputs = keras.Input(self.bottom.output.shape[1:], name="boundary_activations")
        x = self.top(inputs, training=False) if self.top is not None else inputs
        return keras.Model(inputs, self.head(x), name="fine_tune_on_cache")

    def trainable_on_features(self) -> keras.Model:
        """The head alone fed with cached pooled features (stage 1)."""
        inputs = keras.Input((self.head.layers[1].input.shape[-1],), name="pooled_features")
        x = inputs
        for layer in self.head.layers[1:]:  # skip the pooling: features are pooled already
            x = layer(x)
        return keras.Model(inputs, x, name="head_on_features")


def _freeze_batchnorm(model: keras.Model) -> None:
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _freeze_batchnorm(layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def build_transfer_model(
    backbone_name: str,
    image_size: int,
    fine_tune_blocks: int | str,
    weights: str | None = "imagenet",
    dropout: float = 0.3,
) -> TransferModel:
    spec = get_spec(backbone_name)
    backbone = build_backbone(backbone_name, image_size, weights)
    start = first_trainable_layer(backbone_name, backbone, fine_tune_blocks)
    if start >= len(backbone.layers):
        boundary = backbone.output
        top = None
    else:
        boundary = backbone.layers[start].input
        top = keras.Model(boundary, backbone.output, name="backbone_top")
        _freeze_batchnorm(top)  # see TransferModel.unfreeze_top
    bottom = keras.Model(backbone.input, boundary, name="backbone_bottom")
    bottom.trainable = False
    for layer in bottom.layers:
        if isinstance(layer, keras.layers.Dropout):
            # EfficientNet's stochastic depth: the identity at inference, but Keras 3 would run it in
            # training mode inside frozen blocks during end-to-end fine-tuning (see unfreeze_top).
            layer.rate = 0.0

    head = keras.Sequential(
        [
            keras.layers.GlobalAveragePooling2D(name="pool"),
            keras.layers.Dropout(dropout, name="head_dropout"),
            # float32 output keeps softmax stable under mixed precision.
            keras.layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="predictions"),
        ],
        name="head",
    )
    head.build(backbone.output.shape)

    images = keras.Input(CIFAR_SHAPE, name="image")
    x = keras.layers.Resizing(image_size, image_size, interpolation="bilinear", name="upsample")(images)
    for layer in preprocessing(spec.preprocess):
        x = layer(x)
    activations = bottom(x, training=False)
    # training=False documents the intent; under Keras 3 a training call overrides it, and
    # the frozen BatchNorm layers (trainable=False) are what keep inference mode.
    features = top(activations, training=False) if top is not None else activations
    outputs = head(features)
    full = keras.Model(images, outputs, name=f"cifar10_{backbone_name.replace('-', '_')}")

    pooled = keras.layers.GlobalAveragePooling2D(name="frozen_pool")(features)
    extractor = keras.Model(images, [activations, pooled], name="extractor")
    return TransferModel(full, bottom, top, head, extractor)
