"""Turn any user picture into what the model was trained on: a CIFAR-10-like 32x32 RGB uint8 array.

Only stdlib, numpy and Pillow: the TUI previews and the CLI checks pictures
without importing TensorFlow or Textual, and the tests stay fast.

CIFAR-10 pictures are square and the object fills the frame, so a photo is
EXIF-rotated, cut to its central square and downscaled with antialiasing
(a plain squash would distort shapes, a letterbox would shrink the object).
"""

from __future__ import annotations

import os
import re
import stat
import struct
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)

# Only the decoders behind IMAGE_SUFFIXES (JPEG includes the MPO files many
# phone cameras write). Pillow identifies a file by content, not name: this
# keeps e.g. an EPS renamed .png from reaching Ghostscript or a rare decoder.
_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "GIF", "TIFF", "WEBP", "PPM")

# Refused from the header, before decoding. Above every common camera (61 MP
# full frame) and below Pillow's own decompression-bomb warning (~89.5 MP), so
# normally this limit, with its W x H message, is the one a user meets.
MAX_PIXELS = 80_000_000

# Transparent areas are composited over white: cut-outs, logos and clip art are
# drawn to be seen on a white page, and the colour stored under alpha 0 is
# arbitrary (often black), which would invent a dark scene around the object.
_BACKGROUND = (255, 255, 255, 255)

# What Pillow raises for files it identifies but cannot decode.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error)

_HIGH_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


class ImageLoadError(Exception):
    """A picture could not be used; str() is one line naming the file and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(reason.split())  # Pillow messages may hold newlines
        super().__init__(f"{self.path.name or self.path}: {self.reason}")


@dataclass
class LoadResult:
    """One input of load_many: array set if it loaded, else error (str of the ImageLoadError)."""

    path: Path
    array: np.ndarray | None
    error: str | None


def load_image(path: str | os.PathLike[str], size: int = 32) -> np.ndarray:
    """The picture as a (size, size, 3) uint8 array: central square, antialiased; raises ImageLoadError."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    # A JPEG decodes at >= 2x the target (DCT scaling: a 4000x3000 photo in a
    # fraction of the time); LANCZOS does the last, antialiased step.
    img = _open_rgb(Path(path), 2 * size)
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    # Crop first: resize(box=...) would let the filter read pixels outside the square.
    square = img.crop((left, top, left + side, top + side))
    return np.array(square.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0))


def load_preview(path: str | os.PathLike[str], max_side: int = 256) -> Image.Image:
    """An RGB, EXIF-rotated copy no larger than max_side, uncropped, for a terminal preview."""
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    img = _open_rgb(Path(path), max_side)
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return img


def find_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files (by suffix) directly in folder, sorted by name ignoring case; raises ImageLoadError.

    Hidden files are skipped: macOS leaves "._photo.jpg" metadata files beside
    the real pictures, and they are not images.
    """
    folder = Path(folder)
    try:
        with os.scandir(folder) as entries:
            found = [Path(entry.path) for entry in entries if is_image_name(entry.name) and entry.is_file()]
    except OSError as exc:
        raise ImageLoadError(folder, _os_reason(exc, "folder")) from None
    return sorted(found, key=lambda p: (p.name.casefold(), p.name))


def is_image_name(name: str) -> bool:
    """Whether find_images would pick a file of this name: an image suffix, and not hidden."""
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES


def load_many(paths: Iterable[str | os.PathLike[str]], size: int = 32) -> list[LoadResult]:
    """One LoadResult per input, in order; a bad file gives an error, never an exception."""
    results = []
    for path in paths:
        try:
            results.append(LoadResult(Path(path), load_image(path, size), None))
        except ImageLoadError as exc:
            results.append(LoadResult(Path(path), None, str(exc)))
    return results


def _open_rgb(path: Path, draft_side: int) -> Image.Image:
    """First frame, EXIF-rotated, in 8-bit RGB; JPEGs decoded at no less than draft_side."""
    _check_regular_file(path)
    try:
        # Pillow only warns between ~89.5 and ~179 MP; treat that as the error it is here.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=_FORMATS) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ImageLoadError(path, f"image too large ({w} x {h} pixels, limit {MAX_PIXELS:,})")
                img.draft("RGB", (draft_side, draft_side))
                # load() inside the try: a truncated file must fail here. Pillow's
                # ImageFile.LOAD_TRUNCATED_IMAGES (False) is left alone, so it is
                # never silently padded with gray.
                img.load()
                return _to_rgb(ImageOps.exif_transpose(img))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(path, _bomb_reason(exc)) from None
    except UnidentifiedImageError:
        raise ImageLoadError(path, "not an image (cannot identify image file format)") from None
    except OSError as exc:
        if exc.errno is not None:  # the filesystem (e.g. permission denied), not the decoder
            raise ImageLoadError(path, _os_reason(exc, "file")) from None
        raise ImageLoadError(path, f"cannot decode image ({exc})") from None
    except _DECODE_ERRORS as exc:
        raise ImageLoadError(path, f"cannot decode image ({exc})") from None


def _check_regular_file(path: Path) -> None:
    """Clear reasons for what Pillow reports badly: folders, empty files, and FIFOs it would block on."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ImageLoadError(path, _os_reason(exc, "file")) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError(path, "is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageLoadError(path, "not a regular file")
    if st.st_size == 0:
        raise ImageLoadError(path, "empty file")


def _os_reason(exc: OSError, noun: str) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"no such {noun}"
    if isinstance(exc, NotADirectoryError):  # "a.png/b.png", or find_images given a file
        return "no such file" if noun == "file" else "not a folder"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return (exc.strerror or str(exc)).lower()


def _bomb_reason(exc: Exception) -> str:
    """Pillow's check fires inside Image.open, before the size is known: its message gives pixel counts."""
    match = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", str(exc))
    if match is None:
        return f"image too large ({exc})"
    pixels, limit = (int(g) for g in match.groups())
    return f"image too large ({pixels:,} pixels, limit {min(limit, MAX_PIXELS):,})"


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any mode to 8-bit RGB: high bit depths scaled (Pillow's convert clips), alpha over white."""
    if img.mode in _HIGH_BIT_MODES:
        # 16-bit data (mode I included: older Pillow opens 16-bit PNGs as I): 65535 -> 255, rounded.
        values = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
        return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8)).convert("RGB")
    if img.mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, neginf=0.0)
        if values.max(initial=0.0) <= 1.0:  # the usual 0..1 convention for float pictures
            values = values * 255.0
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, _BACKGROUND)
        flat.alpha_composite(rgba)
        return flat.convert("RGB")
    return img.convert("RGB")
