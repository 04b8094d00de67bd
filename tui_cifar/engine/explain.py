"""What the model looked at: Grad-CAM on the last convolutional block of a saved cifar-tui model.

A model.keras is a 32x32 input, a resize and the backbone's preprocessing, the
backbone as one or two nested keras.Model layers (bottom and fine-tuned top),
then the head (pooling, dropout, softmax) as a last nested model. The
backbone's output is the last convolutional block's feature map; Grad-CAM
(Selvaraju et al., 2017) weighs its channels by the mean gradient of the
class's probability and keeps the positive part. The nested models are found
by type, not by layer names, so the model files of every version load.

The map has the feature map's resolution: image_size / 32 cells a side
(3x3 at 96 px, 5x5 at 160 px), so it says which part of the picture, not which pixel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import CifarTuiError
from .data import CLASS_NAMES
from .images import MODEL_INPUT_SIZE, load_image, model_input

# Colours of the heat scale, cold to hot, and how strongly the overlay covers the picture.
_HEAT_STOPS = np.array([0.0, 0.35, 0.65, 1.0])
_HEAT_COLOURS = np.array([(0, 0, 160), (0, 220, 255), (255, 230, 0), (255, 0, 0)], dtype=np.float64)
OVERLAY_ALPHA = 0.5
PNG_PANEL = 256  # pixels a side of each panel of an explanation PNG
PNG_CAPTION = 20  # pixels of the caption strip under the panels: what each panel is


class ExplainError(CifarTuiError):
    """The model is not built the way Grad-CAM here expects (a backbone model followed by a head model)."""


@dataclass
class Explanation:
    """Grad-CAM of one 32x32 input for one class."""

    image: np.ndarray  # the (32, 32, 3) uint8 input the model got
    cam: np.ndarray  # (h, w) float in [0, 1] at the feature map's resolution
    class_name: str

    def heatmap(self, size: int = MODEL_INPUT_SIZE) -> np.ndarray:
        """The map resized (bilinear) to size x size, float32 scaled to [0, 1] again (resizing lowers a corner peak)."""
        heat = np.clip(np.asarray(Image.fromarray(self.cam.astype(np.float32))
                                  .resize((size, size), Image.Resampling.BILINEAR)), 0.0, None)
        peak = heat.max()
        return heat / peak if peak > 0 else heat

    def overlay(self, size: int = MODEL_INPUT_SIZE) -> np.ndarray:
        """The input (upscaled as blocks) with the heat colours blended over it, (size, size, 3) uint8."""
        picture = np.asarray(Image.fromarray(self.image).resize((size, size), Image.Resampling.NEAREST), np.float64)
        colours = heat_colours(self.heatmap(size))
        return np.rint((1 - OVERLAY_ALPHA) * picture + OVERLAY_ALPHA * colours).astype(np.uint8)


def heat_colours(heat: np.ndarray) -> np.ndarray:
    """Values in [0, 1] to RGB floats on a blue-cyan-yellow-red scale."""
    return np.stack([np.interp(heat, _HEAT_STOPS, _HEAT_COLOURS[:, c]) for c in range(3)], axis=-1)


def split_model(model) -> tuple[list, list]:
    """(layers from the input to the backbone's last block, the layers after it): the model is one chain."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    nested = [i for i, layer in enumerate(layers) if isinstance(layer, keras.Model)]
    if len(nested) < 2:
        raise ExplainError(f"{model.name} has no backbone model followed by a head model: cannot locate its last "
                           "convolutional block")
    last_block = nested[-2]
    return layers[: last_block + 1], layers[last_block + 1:]


def explain(model, images: np.ndarray, classes: list[int] | None = None, batch_size: int = 64) -> list[Explanation]:
    """Grad-CAM of each (32, 32, 3) image for its class (default: the model's top class)."""
    import tensorflow as tf

    to_features, to_probabilities = split_model(model)
    explanations = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size])
        x = tf.convert_to_tensor(batch.astype(np.float32))
        for layer in to_features:  # outside the tape: only the head's gradient is needed
            x = layer(x, training=False)
        features = tf.cast(x, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(features)
            probs = features
            for layer in to_probabilities:
                probs = layer(probs, training=False)
            probs = tf.cast(probs, tf.float32)
            wanted = list(np.argmax(probs.numpy(), axis=1)) if classes is None else classes[start:start + batch_size]
            score = tf.reduce_sum(probs * tf.one_hot(wanted, probs.shape[-1]))  # each image's own class
        grads = tape.gradient(score, features).numpy()
        weights = grads.mean(axis=(1, 2))  # one weight per channel and image
        cams = np.maximum(np.einsum("nhwc,nc->nhw", features.numpy(), weights), 0.0)
        peak = cams.max(axis=(1, 2), keepdims=True)
        cams = np.divide(cams, peak, out=np.zeros_like(cams), where=peak > 0)
        explanations += [Explanation(img.astype(np.uint8), cam, CLASS_NAMES[int(k)])
                         for img, cam, k in zip(batch, cams, wanted)]
    return explanations


def panel_captions(explanation: Explanation, probability: float | None) -> list[str]:
    """What each panel of an explanation PNG is, the heatmap's class and its probability included."""
    chance = f" ({probability:.1%})" if probability is not None else ""
    return ["photo (central square)", f"model input {MODEL_INPUT_SIZE}x{MODEL_INPUT_SIZE}",
            f"Grad-CAM: {explanation.class_name}{chance}"]


def explanation_png(photo: Path, explanation: Explanation, out_path: Path, probability: float | None = None) -> Path:
    """Three panels: the photo's central square, the 32x32 input as blocks, and the input under the heatmap of
    ``explanation.class_name``; under each, a caption saying which (the class and its probability for the map)."""
    from PIL import ImageDraw

    panels = [
        load_image(photo, PNG_PANEL),
        np.asarray(Image.fromarray(explanation.image).resize((PNG_PANEL, PNG_PANEL), Image.Resampling.NEAREST)),
        explanation.overlay(PNG_PANEL),
    ]
    strip = np.full((PNG_CAPTION, PNG_PANEL * len(panels), 3), 255, np.uint8)
    picture = Image.fromarray(np.concatenate([np.concatenate(panels, axis=1), strip], axis=0))
    draw = ImageDraw.Draw(picture)
    for k, caption in enumerate(panel_captions(explanation, probability)):
        draw.text((k * PNG_PANEL + 4, PNG_PANEL + 4), caption, fill=(0, 0, 0))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out_path)
    return out_path


def explain_files(model, photos: list[Path], classes: list[str], out_dir: Path, names: list[str],
                  probabilities: list[float] | None = None) -> list[Path]:
    """One explanation PNG per photo, for the given (predicted) class and its probability, named out_dir/<name>.png."""
    images = np.stack([model_input(p) for p in photos])
    explanations = explain(model, images, [CLASS_NAMES.index(c) for c in classes])
    chances: list[float | None] = list(probabilities) if probabilities else [None] * len(photos)
    return [explanation_png(p, e, Path(out_dir) / f"{name}.png", chance)
            for p, e, name, chance in zip(photos, explanations, names, chances)]


def png_names(relative_paths: list[Path]) -> list[str]:
    """A distinct, flat file name per picture: its path under the searched folder with "__" for "/"."""
    names, used = [], set()
    for rel in relative_paths:
        base = re.sub(r"[^\w.-]+", "_", "__".join(Path(rel).with_suffix("").parts)) or "image"
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        names.append(name)
    return names
