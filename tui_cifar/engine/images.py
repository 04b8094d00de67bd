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

from ..errors import CifarTuiError

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)

# CIFAR-10's side: every picture is brought to this before it reaches a model.
MODEL_INPUT_SIZE = 32

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


class ImageLoadError(CifarTuiError):
    """A picture could not be used; str() is one line naming the file and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(reason.split())  # Pillow messages may hold newlines
        super().__init__(f"{self.path.name or self.path}: {self.reason}", title="Cannot use this picture")


@dataclass
class LoadResult:
    """One input of load_many: array set if it loaded, else error (str of the ImageLoadError)."""

    path: Path
    array: np.ndarray | None
    error: str | None


def model_input(path: str | os.PathLike[str]) -> np.ndarray:
    """Exactly the (32, 32, 3) array a classifier gets for this picture: show it as "what the model sees"."""
    return load_image(path, MODEL_INPUT_SIZE)


def load_image(path: str | os.PathLike[str], size: int = MODEL_INPUT_SIZE) -> np.ndarray:
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


@dataclass
class ImageScan:
    """What find_images found under a folder: the pictures, and each entry it left out with the reason."""

    root: Path
    images: list[Path]
    skipped: list[tuple[Path, str]]  # (path, reason): not an image, unreadable, a link loop

    @property
    def folders(self) -> int:
        """How many folders (root included) hold at least one picture."""
        return len({path.parent for path in self.images})

    def summary(self) -> str:
        return (f"{len(self.images)} image{'s' * (len(self.images) != 1)} found in {self.folders} "
                f"folder{'s' * (self.folders != 1)}, {len(self.skipped)} skipped")


def find_images(folder: str | os.PathLike[str]) -> ImageScan:
    """Image files (by suffix) in folder and all its subfolders; raises ImageLoadError if folder cannot be listed.

    Users keep photos in class or album subfolders, so the walk recurses. Hidden
    files and folders are left out silently: macOS leaves "._photo.jpg" metadata
    files beside the real pictures, and ".git" or ".thumbnails" hold no photos.
    Other files, unreadable subfolders and symlinks back into a folder already
    walked are reported in ``skipped``. The order is deterministic: by relative
    path, ignoring case, so a CSV comes out the same on every filesystem.
    """
    root = Path(folder)
    images: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    try:
        _walk(root, images, skipped, seen=set(), top=True)
    except OSError as exc:
        raise ImageLoadError(root, _os_reason(exc, "folder")) from None
    key = lambda p: tuple((part.casefold(), part) for part in p.relative_to(root).parts)  # noqa: E731
    return ImageScan(root, sorted(images, key=key), sorted(skipped, key=lambda item: key(item[0])))


def is_image_name(name: str) -> bool:
    """Whether find_images would pick a file of this name: an image suffix, and not hidden."""
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES




def _walk(folder: Path, images: list[Path], skipped: list[tuple[Path, str]], seen: set, top: bool = False) -> None:
    """Depth-first; ``seen`` holds the (device, inode) of every folder walked, so a link cycle ends."""
    try:
        st = folder.stat()
        if (st.st_dev, st.st_ino) in seen:
            skipped.append((folder, "link to a folder already searched"))
            return
        seen.add((st.st_dev, st.st_ino))
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError as exc:
        if top:
            raise
        skipped.append((folder, _os_reason(exc, "folder")))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            is_dir, is_file = entry.is_dir(), entry.is_file()  # both follow symlinks
        except OSError as exc:
            skipped.append((path, _os_reason(exc, "file")))
            continue
        if is_dir:
            _walk(path, images, skipped, seen)
        elif is_file and is_image_name(entry.name):
            images.append(path)
        elif is_file:
            skipped.append((path, "not an image file (by its suffix)"))
        else:
            skipped.append((path, "broken link" if entry.is_symlink() else "not a regular file"))


def load_many(paths: Iterable[str | os.PathLike[str]], size: int = MODEL_INPUT_SIZE) -> list[LoadResult]:
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
        floats = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, neginf=0.0)
        if floats.max(initial=0.0) <= 1.0:  # the usual 0..1 convention for float pictures
            floats = floats * 255.0
        return Image.fromarray(np.clip(np.rint(floats), 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, _BACKGROUND)
        flat.alpha_composite(rgba)
        return flat.convert("RGB")
    return img.convert("RGB")
