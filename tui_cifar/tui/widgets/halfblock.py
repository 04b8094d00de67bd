"""Images drawn with half-block characters: two pixels per cell, any terminal, any test.

``▀`` takes the top pixel as its foreground colour and the bottom one as its
background, so a W x H cell area shows W x 2H pixels.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from textual.widget import Widget

UPPER_HALF = "\u2580"


def _to_pil(image: Any):
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    # a numpy array (H, W, 3) uint8
    return Image.fromarray(image).convert("RGB")


def fit_size(src_w: int, src_h: int, max_cols: int, max_rows: int, upscale: bool = True) -> tuple[int, int]:
    """Pixel size (w, h) to draw an image in at most max_cols x max_rows cells, keeping its shape."""
    max_w, max_h = max(1, max_cols), max(2, 2 * max_rows)
    scale = min(max_w / src_w, max_h / src_h)
    if not upscale:
        scale = min(scale, 1.0)
    w = max(1, int(src_w * scale))
    h = max(2, int(src_h * scale))
    return w, h + (h % 2)


class HalfBlock:
    """A Rich renderable of an image fitted into a cell box."""

    def __init__(self, image: Any, max_cols: int, max_rows: int, *, smooth: bool | None = None):
        self.image = _to_pil(image)
        self.max_cols = max_cols
        self.max_rows = max_rows
        self.smooth = smooth

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from PIL import Image

        src_w, src_h = self.image.size
        cols = min(self.max_cols, options.max_width)
        w, h = fit_size(src_w, src_h, cols, self.max_rows)
        upscaling = w > src_w
        smooth = (not upscaling) if self.smooth is None else self.smooth
        resample = Image.Resampling.LANCZOS if smooth else Image.Resampling.NEAREST
        img = self.image.resize((w, h), resample)
        px = img.load()
        new_line = Segment.line()
        for y in range(0, h, 2):
            for x in range(w):
                top = px[x, y]
                bottom = px[x, y + 1] if y + 1 < h else top
                yield Segment(UPPER_HALF, Style.from_color(_rgb(top), _rgb(bottom)))
            yield new_line


def _rgb(pixel):
    from rich.color import Color

    return Color.from_rgb(*pixel[:3])


class HalfBlockImage(Widget):
    """Shows an image (PIL or uint8 array) fitted to the widget's size in half-blocks."""

    DEFAULT_CSS = """
    HalfBlockImage {
        width: 1fr;
        height: 1fr;
    }
    """

    def __init__(self, image: Any = None, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self._image = _to_pil(image) if image is not None else None

    @property
    def image(self):
        return self._image

    @image.setter
    def image(self, value: Any) -> None:
        self._image = _to_pil(value) if value is not None else None
        self.refresh(layout=True)

    def render(self):
        if self._image is None:
            return ""
        return HalfBlock(self._image, self.content_size.width, self.content_size.height)
