"""tui_cifar.engine.images: every picture is built here with Pillow, and each test checks the pixels that come out."""

from __future__ import annotations

import ast
import math
import os
import struct
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin, features

from tui_cifar.engine import images
from tui_cifar.engine.images import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    ImageLoadError,
    LoadResult,
    find_images,
    is_image_name,
    load_image,
    load_many,
    load_preview,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def assert_pixel(actual, expected, tol=0):
    """Compare one pixel, channel by channel, with a tolerance for lossy formats."""
    diff = np.abs(np.asarray(actual, dtype=int) - np.asarray(expected, dtype=int))
    assert diff.max() <= tol, f"pixel {tuple(int(v) for v in actual)} != {expected} (tol {tol})"


def assert_uniform(array, expected, tol=0):
    """The whole output is one colour: for uniform inputs, or crops that must keep only one region."""
    assert array.shape[-1] == 3 and array.dtype == np.uint8
    diff = np.abs(array.astype(int) - np.asarray(expected, dtype=int))
    assert diff.max() <= tol, f"max deviation {diff.max()} from {expected} (tol {tol})"


def halves(size=(200, 100), left=RED, right=BLUE) -> Image.Image:
    """Left half one colour, right half another: makes rotations and crops visible."""
    img = Image.new("RGB", size, left)
    img.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return img


def png_with_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height, with a few bytes of pixel data.

    Refusing it with "too large" (not "cannot decode") proves the check runs on
    the header, before any pixel is decoded.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )
    return path


def noisy(size=64, seed=0) -> Image.Image:
    """Random pixels compress badly, so a half file really cuts the pixel data."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def truncated(path: Path, fmt: str) -> Path:
    noisy().save(path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# --- module contract ------------------------------------------------------------------------


def test_imports_only_stdlib_numpy_and_pillow():
    """Checked statically, through the package's own modules it imports (errors.py): importing the package
    for real could pull in TensorFlow elsewhere."""
    modules, seen, todo = set(), set(), [Path(images.__file__)]
    while todo:
        path = todo.pop()
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level:  # one of ours: read it too
                own = path.parents[node.level - 1] / f"{node.module.replace('.', '/')}.py"
                assert own.exists(), f"{path.name} imports {'.' * node.level}{node.module}, which is not a module"
                todo += [] if own in seen else [own]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules.add(node.module)
    roots = {name.split(".")[0] for name in modules} - {"__future__"}
    assert roots <= {"numpy", "PIL"} | set(sys.stdlib_module_names)


def test_suffixes_are_lowercase_and_cover_common_formats():
    assert {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"} <= IMAGE_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)


@pytest.mark.parametrize("size", [32, 64, 7])
def test_shape_dtype_and_size(tmp_path, size):
    path = tmp_path / "p.png"
    Image.new("RGB", (50, 40), (10, 20, 30)).save(path)
    out = load_image(path, size=size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    assert_uniform(out, (10, 20, 30))


def test_size_must_be_positive(tmp_path):
    path = tmp_path / "p.png"
    Image.new("RGB", (8, 8)).save(path)
    with pytest.raises(ValueError):
        load_image(path, size=0)


def test_tiny_image_is_upscaled(tmp_path):
    path = tmp_path / "tiny.png"
    Image.new("RGB", (4, 4), (200, 100, 50)).save(path)
    assert_uniform(load_image(path), (200, 100, 50))


# --- geometry: EXIF orientation and centre crop ------------------------------------------------


@pytest.mark.parametrize(
    "orientation, red_at, blue_at",
    [
        (1, (16, 3), (16, 28)),  # as stored: red left, blue right
        (3, (16, 28), (16, 3)),  # rotated 180: red right
        (6, (3, 16), (28, 16)),  # displayed rotated 90 clockwise: the left (red) side on top
        (8, (28, 16), (3, 16)),  # displayed rotated 90 counter-clockwise: red at the bottom
    ],
)
def test_exif_orientation_is_honoured(tmp_path, orientation, red_at, blue_at):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    halves((200, 100)).save(path, quality=95, exif=exif.tobytes())
    out = load_image(path)
    assert_pixel(out[red_at], RED, tol=40)
    assert_pixel(out[blue_at], BLUE, tol=40)


@pytest.mark.parametrize("size", [(300, 100), (100, 300)])
def test_centre_crop_keeps_the_middle(tmp_path, size):
    w, h = size
    img = Image.new("RGB", size, RED)
    img.paste(GREEN, (w // 3, 0, 2 * w // 3, h) if w > h else (0, h // 3, w, 2 * h // 3))
    path = tmp_path / "wide.png"
    img.save(path)
    assert_uniform(load_image(path), GREEN)


def test_big_jpeg_decodes_in_draft_mode(tmp_path, monkeypatch):
    """A 6000x4000 photo must decode at 1/8 scale (750x500), not at 24 megapixels."""
    img = Image.new("RGB", (6000, 4000), RED)
    img.paste(GREEN, (1000, 0, 5000, 4000))  # exactly the central square
    path = tmp_path / "big.jpg"
    img.save(path, quality=80)

    decoded_sizes = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = original_draft(self, mode, size)
        decoded_sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    start = time.perf_counter()
    out = load_image(path)
    assert time.perf_counter() - start < 2.0
    assert decoded_sizes == [(750, 500)]
    assert_uniform(out[2:-2, 2:-2], GREEN, tol=8)  # edges: JPEG blocks straddle the red border


# --- modes ---------------------------------------------------------------------------------


def test_grayscale_gives_three_equal_channels(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))).save(path)
    out = load_image(path)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert out[16, 0, 0] < 20 and out[16, -1, 0] > 235  # the left-to-right ramp survives


def test_bilevel_mode_1(tmp_path):
    img = Image.new("1", (64, 64), 0)
    img.paste(1, (0, 0, 64, 32))
    path = tmp_path / "bw.png"
    img.save(path)
    out = load_image(path)
    assert_uniform(out[:12], WHITE)
    assert_uniform(out[-12:], (0, 0, 0))


def test_palette_without_transparency(tmp_path):
    path = tmp_path / "pal.png"
    halves((64, 64), RED, GREEN).convert("P").save(path)
    assert Image.open(path).mode == "P"
    out = load_image(path)
    assert_uniform(out[:, :12], RED)
    assert_uniform(out[:, -12:], GREEN)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_becomes_white(tmp_path, fmt):
    img = Image.new("P", (64, 64), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 0 black (transparent), 1 red
    img.paste(1, (32, 0, 64, 64))
    path = tmp_path / f"pal.{fmt.lower()}"
    img.save(path, fmt, transparency=0)
    out = load_image(path)
    assert_uniform(out[:, :12], WHITE)
    assert_uniform(out[:, -12:], RED)


@pytest.mark.parametrize(
    "rgba, expected, tol",
    [
        ((0, 0, 0, 0), WHITE, 0),  # fully transparent black: white, not black
        ((255, 0, 0, 255), RED, 0),
        ((0, 0, 255, 128), (127, 127, 255), 2),  # half-transparent blue over white
    ],
)
def test_rgba_is_composited_over_white(tmp_path, rgba, expected, tol):
    path = tmp_path / "rgba.png"
    Image.new("RGBA", (40, 40), rgba).save(path)
    assert_uniform(load_image(path), expected, tol)


@pytest.mark.parametrize("la, expected", [((50, 0), WHITE), ((50, 255), (50, 50, 50))])
def test_gray_with_alpha(tmp_path, la, expected):
    path = tmp_path / "la.png"
    Image.new("LA", (40, 40), la).save(path)
    assert_uniform(load_image(path), expected)


def test_rgb_png_with_transparent_colour_key(tmp_path):
    path = tmp_path / "trns.png"
    halves((64, 64), (0, 0, 0), BLUE).save(path, transparency=(0, 0, 0))
    out = load_image(path)
    assert_uniform(out[:, :12], WHITE)
    assert_uniform(out[:, -12:], BLUE)


@pytest.mark.parametrize("value, expected", [(0, 0), (2570, 10), (32768, 128), (65535, 255)])
def test_16_bit_png_is_scaled_not_clipped(tmp_path, value, expected):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((40, 40), value, dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    assert_uniform(load_image(path), (expected,) * 3)


def test_32_bit_integer_tiff_is_read_as_16_bit_range(tmp_path):
    path = tmp_path / "int.tif"
    Image.fromarray(np.full((40, 40), 32768, dtype=np.int32)).save(path)
    assert Image.open(path).mode == "I"
    assert_uniform(load_image(path), (128,) * 3)


@pytest.mark.parametrize("value, expected", [(0.5, 128), (1.0, 255), (200.0, 200), (-3.0, 0), (float("nan"), 0)])
def test_float_tiff(tmp_path, value, expected):
    path = tmp_path / "float.tif"
    Image.fromarray(np.full((40, 40), value, dtype=np.float32)).save(path)
    assert Image.open(path).mode == "F"
    assert_uniform(load_image(path), (expected,) * 3)


@pytest.mark.parametrize("name", ["cyan.jpg", "cyan.tif"])
def test_cmyk_cyan(tmp_path, name):
    path = tmp_path / name
    Image.new("CMYK", (40, 40), (255, 0, 0, 0)).save(path)
    assert Image.open(path).mode == "CMYK"
    assert_uniform(load_image(path), (0, 255, 255), tol=10)


def test_ycbcr_tiff(tmp_path):
    path = tmp_path / "ycc.tif"
    Image.new("RGB", (40, 40), (200, 30, 60)).convert("YCbCr").save(path)
    assert Image.open(path).mode == "YCbCr"
    assert_uniform(load_image(path), (200, 30, 60), tol=4)


def test_animated_gif_uses_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (40, 40), RED), Image.new("RGB", (40, 40), BLUE)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    assert_uniform(load_image(path), RED)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"])
def test_common_formats_load(tmp_path, suffix):
    if suffix == ".webp" and not features.check("webp"):
        pytest.skip("this Pillow was built without WebP support")
    colour = (128, 128, 128) if suffix == ".pgm" else (200, 60, 30)
    path = tmp_path / f"p{suffix}"
    Image.new("L" if suffix == ".pgm" else "RGB", (48, 36), colour[0] if suffix == ".pgm" else colour).save(path)
    assert suffix in IMAGE_SUFFIXES
    assert_uniform(load_image(path), colour, tol=6)


# --- refusals ------------------------------------------------------------------------------


def _check_error(exc: ImageLoadError, path: Path, fragment: str) -> None:
    message = str(exc)
    assert exc.path == path
    assert fragment in exc.reason
    assert message == f"{path.name}: {exc.reason}"
    assert "\n" not in message


def test_bomb_refused_by_pillow_error(tmp_path):
    path = png_with_header(tmp_path / "bomb.png", 50000, 50000)
    start = time.perf_counter()
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert time.perf_counter() - start < 1.0
    _check_error(info.value, path, "too large")
    assert "2,500,000,000 pixels" in info.value.reason


def test_pillow_bomb_warning_refuses_without_touching_global_filters(tmp_path, monkeypatch):
    """Between Pillow's limit and twice it, Pillow only warns; that must refuse the file too.

    An application may lower Pillow's limit below MAX_PIXELS; lowering it here
    makes the warning, not this module's own check, the one that fires.
    """
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    path = png_with_header(tmp_path / "bomb.png", 1200, 1200)
    filters_before = list(warnings.filters)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    _check_error(info.value, path, "too large (1,440,000 pixels, limit 1,000,000)")
    assert warnings.filters == filters_before


def test_over_own_limit_refused_from_header(tmp_path):
    side = math.isqrt(MAX_PIXELS) + 1
    path = png_with_header(tmp_path / "huge.png", side, side)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    _check_error(info.value, path, f"too large ({side} x {side} pixels, limit {MAX_PIXELS:,})")


def test_preview_refuses_bombs_too(tmp_path):
    path = png_with_header(tmp_path / "bomb.png", 50000, 50000)
    with pytest.raises(ImageLoadError, match="too large"):
        load_preview(path)


def _missing(tmp_path):
    return tmp_path / "missing.png"


def _directory(tmp_path):
    path = tmp_path / "folder.png"
    path.mkdir()
    return path


def _empty(tmp_path):
    path = tmp_path / "empty.jpg"
    path.touch()
    return path


def _text(tmp_path):
    path = tmp_path / "photo.png"
    path.write_text("this is not a picture\n")
    return path


def _eps_named_png(tmp_path):
    """Pillow could open EPS (through Ghostscript); the loader only accepts its listed formats."""
    path = tmp_path / "drawing.png"
    path.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    return path


def _under_a_file(tmp_path):
    parent = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(parent)
    return parent / "b.png"


def _corrupt_png_data(tmp_path):
    return png_with_header(tmp_path / "corrupt.png", 100, 100)


def _fifo(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    "make, fragment",
    [
        (_missing, "no such file"),
        (_directory, "is a directory, not an image file"),
        (_empty, "empty file"),
        (_text, "not an image (cannot identify image file format)"),
        (_eps_named_png, "not an image"),
        (_under_a_file, "no such file"),
        (lambda tmp: truncated(tmp / "cut.jpg", "JPEG"), "truncated"),
        (lambda tmp: truncated(tmp / "cut.png", "PNG"), "truncated"),
        (_corrupt_png_data, "cannot decode image"),
        (_fifo, "not a regular file"),
    ],
    ids=["missing", "directory", "empty", "text", "eps", "under-file", "cut-jpeg", "cut-png", "corrupt", "fifo"],
)
def test_bad_files_give_one_line_reasons(tmp_path, make, fragment):
    path = make(tmp_path)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    _check_error(info.value, path, fragment)
    with pytest.raises(ImageLoadError):
        load_preview(path)


def test_permission_denied(tmp_path):
    path = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(path)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("this user (e.g. root) can read a mode-000 file")
        with pytest.raises(ImageLoadError) as info:
            load_image(path)
        _check_error(info.value, path, "permission denied")
    finally:
        path.chmod(0o644)


def test_permission_error_from_open_is_reported(tmp_path, monkeypatch):
    """The same mapping, also checked when running as root (where mode 000 does not stop reads)."""
    path = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(path)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    _check_error(info.value, path, "permission denied")


# --- preview, folders, batches -----------------------------------------------------------------


def test_preview_is_rgb_downscaled_uncropped_and_rotated(tmp_path):
    path = tmp_path / "wide.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    halves((1200, 600)).save(path, quality=90, exif=exif.tobytes())
    preview = load_preview(path, max_side=100)
    assert preview.mode == "RGB"
    assert preview.size == (50, 100)  # rotated to portrait, aspect kept, not cropped
    assert_pixel(preview.getpixel((25, 5)), RED, tol=40)
    assert_pixel(preview.getpixel((25, 95)), BLUE, tol=40)


def test_preview_of_transparent_png_is_rgb_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (300, 150), (0, 0, 0, 0)).save(path)
    preview = load_preview(path, max_side=64)
    assert preview.mode == "RGB" and preview.size == (64, 32)
    assert_uniform(np.asarray(preview), WHITE)


def test_find_images_lists_sorted_image_files_only(tmp_path):
    for name in ["b.PNG", "a.jpg", "C.webp", "notes.txt", "noext", ".hidden.png", "._a.jpg"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "album.png").mkdir()  # a folder with an image-like name is searched, not taken for a picture
    scan = find_images(tmp_path)
    assert scan.images == [tmp_path / "a.jpg", tmp_path / "b.PNG", tmp_path / "C.webp"]
    assert scan.skipped == [(tmp_path / "noext", "not an image file (by its suffix)"),
                            (tmp_path / "notes.txt", "not an image file (by its suffix)")]
    assert scan.summary() == "3 images found in 1 folder, 2 skipped"


def test_find_images_recurses_into_class_subfolders_in_a_stable_order(tmp_path):
    """Photos kept as cat/, Dogs/, cat/2023/...: all found, by relative path ignoring case; hidden folders left out."""
    for rel in ["cat/b.jpg", "cat/A.png", "cat/2023/x.png", "Dogs/d.webp", "top.png", ".thumbnails/t.png",
                "cat/.git/c.png", "Dogs/readme.md"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    scan = find_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in scan.images] == [
        "cat/2023/x.png", "cat/A.png", "cat/b.jpg", "Dogs/d.webp", "top.png"]
    assert [(p.relative_to(tmp_path).as_posix(), why) for p, why in scan.skipped] == [
        ("Dogs/readme.md", "not an image file (by its suffix)")]
    assert scan.folders == 4 and scan.summary() == "5 images found in 4 folders, 1 skipped"


def test_find_images_survives_link_loops_and_unreadable_subfolders(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.png").write_bytes(b"x")
    (tmp_path / "cat" / "back").symlink_to(tmp_path)  # a loop: cat/back/cat/back/...
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        scan = find_images(tmp_path)
    finally:
        locked.chmod(0o755)
    assert scan.images == [tmp_path / "cat" / "a.png"]
    reasons = {p.relative_to(tmp_path).as_posix(): why for p, why in scan.skipped}
    assert reasons["cat/back"] == "link to a folder already searched"
    assert reasons["dangling.png"] == "broken link"
    assert reasons.get("locked") == (None if os.geteuid() == 0 else "permission denied")  # root reads any folder


def test_find_images_empty_folder(tmp_path):
    scan = find_images(tmp_path)
    assert scan.images == [] and scan.skipped == []


def test_model_input_is_what_the_classifier_is_given(tmp_path):
    path = tmp_path / "wide.png"
    halves((300, 100)).save(path)
    assert np.array_equal(images.model_input(path), load_many([path])[0].array)
    assert images.model_input(path).shape == (32, 32, 3)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda tmp: tmp / "nowhere", "no such folder"),
        (lambda tmp: _text(tmp), "not a folder"),
    ],
    ids=["missing", "file"],
)
def test_find_images_refuses_non_folders(tmp_path, make, fragment):
    folder = make(tmp_path)
    with pytest.raises(ImageLoadError) as info:
        find_images(folder)
    _check_error(info.value, folder, fragment)


def test_load_many_keeps_order_and_reports_bad_files(tmp_path):
    good_png = tmp_path / "good.png"
    Image.new("RGB", (40, 40), GREEN).save(good_png)
    good_jpg = tmp_path / "good.jpg"
    Image.new("RGB", (40, 40), BLUE).save(good_jpg, quality=95)
    paths = [good_png, tmp_path / "missing.png", _text(tmp_path), str(good_jpg), _empty(tmp_path)]

    results = load_many(paths, size=16)

    assert [r.path for r in results] == [Path(p) for p in paths]
    assert all(isinstance(r, LoadResult) for r in results)
    assert [r.error is None for r in results] == [True, False, False, True, False]
    assert_uniform(results[0].array, GREEN)
    assert results[3].array.shape == (16, 16, 3)
    assert_uniform(results[3].array, BLUE, tol=6)
    assert results[1].array is None and results[1].error == "missing.png: no such file"
    assert results[2].error.startswith("photo.png: not an image")
    assert results[4].error == "empty.jpg: empty file"


def test_load_many_accepts_a_generator(tmp_path):
    path = tmp_path / "g.png"
    Image.new("RGB", (8, 8), RED).save(path)
    results = load_many(p for p in [path, path])
    assert len(results) == 2 and all(r.error is None for r in results)


@pytest.mark.parametrize("name, expected", [("cat.png", True), ("CAT.JPG", True), ("scan.TIFF", True), ("._cat.jpg", False),
                                            (".hidden.png", False), ("notes.txt", False), ("png", False)])
def test_is_image_name_is_find_images_rule(tmp_path, name, expected):
    assert is_image_name(name) is expected
    (tmp_path / name).write_bytes(b"")
    assert (find_images(tmp_path).images == [tmp_path / name]) is expected
