"""ImageNet backbones from keras.applications, described without importing TensorFlow.

A backbone is cut into *blocks* the way its authors drew it (MobileNetV2's
inverted-residual blocks, EfficientNet's stages, ResNet's residual blocks),
so "fine-tune the top 3 blocks" means something a user can look up.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

from ..errors import CifarTuiError


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    label: str
    # How 0..255 RGB becomes the backbone's input, as its keras.applications preprocess_input does:
    # "tf" x / 127.5 - 1; "caffe" RGB -> BGR minus the ImageNet mean; "none" the network rescales
    # itself (include_preprocessing=True). model.preprocessing() turns it into built-in layers.
    preprocess: str
    constructor: str  # keras.applications attribute that builds the network
    default_size: int
    block_pattern: str  # regex whose first group names the block a layer belongs to
    description: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    blocks: int = 0  # how many blocks block_pattern finds (tests check it): fine_tune_blocks' upper bound

    def block_of(self, layer_name: str) -> str | None:
        match = re.match(self.block_pattern, layer_name)
        return match.group(1) if match else None


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "mobilenetv2", "MobileNetV2 (alpha 1.0)", "tf", "MobileNetV2", 160,
            r"^(expanded_conv|block_\d+|Conv_1)", "3.4 M params; fast on CPU",
            (("alpha", 1.0),), blocks=18,
        ),
        BackboneSpec(
            "mobilenetv2-0.35", "MobileNetV2 (alpha 0.35)", "tf", "MobileNetV2", 160,
            r"^(expanded_conv|block_\d+|Conv_1)", "0.4 M params; fastest, least accurate",
            (("alpha", 0.35),), blocks=18,
        ),
        BackboneSpec(
            "mobilenetv3small", "MobileNetV3Small", "none", "MobileNetV3Small", 160,
            r"^(expanded_conv(?:_\d+)?_|conv_1)", "1.0 M params; built-in preprocessing",
            (("include_preprocessing", True),), blocks=12,
        ),
        BackboneSpec(
            "mobilenetv3large", "MobileNetV3Large", "none", "MobileNetV3Large", 160,
            r"^(expanded_conv(?:_\d+)?_|conv_1)", "3.0 M params; built-in preprocessing",
            (("include_preprocessing", True),), blocks=16,
        ),
        BackboneSpec(
            "efficientnetv2b0", "EfficientNetV2B0", "none", "EfficientNetV2B0", 192,
            r"^(block\d|top)", "5.9 M params; GPU recommended",
            (("include_preprocessing", True),), blocks=7,
        ),
        BackboneSpec(
            "resnet50", "ResNet50", "caffe", "ResNet50", 160,
            r"^(conv\d_block\d+)", "23.6 M params; GPU recommended", blocks=16,
        ),
    )
}


def get_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}") from None


class WeightsUnavailable(CifarTuiError, RuntimeError):
    """A backbone's ImageNet weights are not on disk and cannot be downloaded (or cannot be read)."""


def build_backbone(name: str, image_size: int, weights: str | None = "imagenet"):
    """The headless backbone (no top), with ImageNet weights unless weights is None."""
    import keras

    spec = get_spec(name)
    constructor = getattr(keras.applications, spec.constructor)
    try:
        with warnings.catch_warnings():
            # Any square size works; for sizes it has no weights file for, Keras loads its 224 px weights and warns.
            warnings.filterwarnings("ignore", message=".*input_shape. is undefined or non-square")
            return constructor(
                include_top=False,
                weights=weights,
                input_shape=(image_size, image_size, 3),
                **dict(spec.kwargs),
            )
    except (ValueError, TypeError):
        raise  # a bad argument, not the weights file
    except Exception as exc:  # Keras' failed download is a bare Exception; a damaged file, an OSError
        if weights is None:
            raise
        raise WeightsUnavailable(_weights_problem(spec, exc)) from exc


def _weights_problem(spec: BackboneSpec, exc: Exception) -> str:
    """Which weights file, where Keras keeps it, and the three ways out."""
    try:
        from keras.src.backend.config import keras_home

        models = f"{keras_home()}/models"
    except ImportError:  # a Keras without that private helper: its documented default
        import os

        models = f"{os.environ.get('KERAS_HOME', '~/.keras')}/models"
    text = " ".join(str(exc).split())
    url = re.search(r"https?://\S+?\.h5", text)
    file = url.group(0).rsplit("/", 1)[-1] if url else "the weights file"
    if "URL fetch failure" in text:
        reason = text.rsplit(" -- ", 1)[-1]
        return (f"the ImageNet weights of {spec.label} ({file}) are not in {models} and the download failed "
                f"({reason}). Fix: connect to the internet once (Keras keeps the file), copy {file} into "
                f"{models}, or train with --weights none (random weights, far lower accuracy).")
    return (f"cannot read the ImageNet weights of {spec.label} from {models} ({type(exc).__name__}: {text[:200]}). "
            f"Fix: delete the damaged file there to download it again, or train with --weights none.")


def blocks_of(name: str, backbone) -> list[str]:
    """The backbone's blocks, bottom to top, in layer order."""
    spec = get_spec(name)
    seen: list[str] = []
    for layer in backbone.layers:
        block = spec.block_of(layer.name)
        if block is not None and block not in seen:
            seen.append(block)
    return seen


def first_trainable_layer(name: str, backbone, fine_tune_blocks: int | str) -> int:
    """Index of the first layer of the top `fine_tune_blocks` blocks (len(layers) when 0)."""
    if fine_tune_blocks == 0:
        return len(backbone.layers)
    blocks = blocks_of(name, backbone)
    if isinstance(fine_tune_blocks, str) or fine_tune_blocks >= len(blocks):  # "all"
        return 1  # everything after the input layer
    first_block = blocks[-int(fine_tune_blocks)]
    spec = get_spec(name)
    for index, layer in enumerate(backbone.layers):
        if spec.block_of(layer.name) == first_block:
            return index
    raise AssertionError(f"block {first_block} has no layer")


def describe_fine_tune(name: str, image_size: int, fine_tune_blocks: int | str) -> str:
    """E.g. '3 of 18 blocks, 1.53 M of 2.26 M backbone parameters trainable'."""
    backbone = build_backbone(name, image_size, weights=None)
    blocks = blocks_of(name, backbone)
    start = first_trainable_layer(name, backbone, fine_tune_blocks)
    trainable = sum(w.numpy().size for layer in backbone.layers[start:] for w in layer.trainable_weights)
    total = sum(w.numpy().size for w in backbone.trainable_weights)
    count = len(blocks) if fine_tune_blocks == "all" else min(int(fine_tune_blocks), len(blocks))
    return f"{count} of {len(blocks)} blocks, {trainable / 1e6:.2f} M of {total / 1e6:.2f} M backbone parameters trainable"
