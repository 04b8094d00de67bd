"""The predict screen's file picker: textual_fspicker's FileOpen, showing pictures, opening one at the first Enter."""

from __future__ import annotations

from textual import on
from textual.widgets import Input
from textual_fspicker import FileOpen, Filters
from textual_fspicker.parts import DirectoryNavigation

from ...engine.images import is_image_name


class ImageOpen(FileOpen):
    """Enter (or a click) on a picture opens it at once: FileOpen only copies its name into the input, which
    took a second Enter. A folder still opens as a folder."""

    def __init__(self, location, title: str) -> None:
        super().__init__(location, title=title,
                         filters=Filters(("Images", lambda p: is_image_name(p.name)), ("All files", lambda _p: True)))

    @on(DirectoryNavigation.Selected)
    def _open_at_once(self, event: DirectoryNavigation.Selected) -> None:
        self.query_one(Input).value = event.path.name
        self._confirm_file(event)  # type: ignore[arg-type]  # it only stops the event and reads the input
