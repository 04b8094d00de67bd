"""The misclassified gallery of the evaluate screen: the test images of one confusion-matrix cell.

The screen finds the images (predictions.npz, the CIFAR-10 test set, in
workers); this widget shows what it is told: a title line, a loading
indicator, and thumbnails laid out in as many columns as fit, at one of
three zoom sizes.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Vertical, VerticalScroll
from textual.widgets import Label, LoadingIndicator, Static

from .halfblock import HalfBlockImage

THUMB_SIZES = ((16, 8), (32, 16), (64, 32))  # cells; 32 x 16 cells = the 32 x 32 pixels, one to one


class Thumb(Vertical):
    """A test image and its caption."""

    def __init__(self, image: Any, caption: str, size: tuple[int, int]):
        super().__init__(classes="thumb")
        self.image = image
        self.caption = caption
        self.styles.width = size[0]
        self.styles.height = size[1] + 1

    def compose(self) -> ComposeResult:
        yield HalfBlockImage(self.image)
        yield Label(self.caption, classes="thumb-caption")


class MisclassifiedGallery(Vertical):
    """Title, loading indicator and a grid of captioned thumbnails."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.size_index = 1

    def compose(self) -> ComposeResult:
        yield Static("Select a cell (Enter) to see its test images.", id="mistakes-title")
        yield LoadingIndicator(id="mistakes-loading")
        with VerticalScroll(id="mistakes-scroll"):
            yield Grid(id="mistakes-grid")

    def on_mount(self) -> None:
        self.loading_images(False)

    def say(self, text: str | Text) -> None:
        self.query_one("#mistakes-title", Static).update(text)

    def loading_images(self, loading: bool) -> None:
        self.query_one("#mistakes-loading").display = loading

    def clear(self) -> None:
        self.query_one("#mistakes-grid", Grid).remove_children()

    def show_images(self, items: list[tuple[Any, str]]) -> None:
        """Replace the thumbnails with these (image, caption) pairs."""
        self.clear()
        grid = self.query_one("#mistakes-grid", Grid)
        size = THUMB_SIZES[self.size_index]
        grid.mount_all([Thumb(image, caption, size) for image, caption in items])
        self.relayout()

    def zoom(self) -> None:
        """Next thumbnail size (the caller shows the images again)."""
        self.size_index = (self.size_index + 1) % len(THUMB_SIZES)

    def has_images(self) -> bool:
        return bool(self.query_one("#mistakes-grid", Grid).children)

    def relayout(self) -> None:
        """As many columns of thumbnails as the width allows."""
        grid = self.query_one("#mistakes-grid", Grid)
        width = self.query_one("#mistakes-scroll").content_size.width or 40
        thumb_w, thumb_h = THUMB_SIZES[self.size_index]
        columns = max(1, width // (thumb_w + 1))
        grid.styles.grid_size_columns = columns
        grid.styles.grid_columns = f"{thumb_w}"
        rows = -(-len(grid.children) // columns) if grid.children else 1
        grid.styles.height = rows * (thumb_h + 2)
