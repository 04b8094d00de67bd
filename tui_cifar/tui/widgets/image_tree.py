"""A directory tree of image files, for picking pictures to classify."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual.widgets import DirectoryTree

from ...engine.images import is_image_name


class ImageTree(DirectoryTree):
    """A directory tree showing only folders and image files (hidden ones left out).

    An image is what the classifier accepts: the suffixes of ``images.find_images``.
    """

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        keep = []
        for path in paths:
            if path.name.startswith("."):
                continue
            try:
                if path.is_dir() or is_image_name(path.name):
                    keep.append(path)
            except OSError:
                continue
        return keep
