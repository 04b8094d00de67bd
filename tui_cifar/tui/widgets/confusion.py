"""The confusion matrix as a DataTable: rows are true classes, columns predictions.

Each cell is shaded by its share of the row (the true class): the diagonal in
the theme's success colour, mistakes in its error colour, so the eye finds the
big confusions first. ``percent`` switches the numbers between counts and row
percentages; the cursor picks a cell (Enter) to list those test images.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.color import Color
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

SHORT_NAMES = {"airplane": "plane", "automobile": "auto"}

CELL_WIDTH = 6


def short_name(name: str, width: int = CELL_WIDTH - 1) -> str:
    return SHORT_NAMES.get(name, name)[:width]


class ConfusionMatrix(DataTable):
    """A 10x10 (or NxN) confusion matrix with row-normalised shading."""

    DEFAULT_CSS = """
    ConfusionMatrix {
        height: auto;
        max-height: 14;
        width: auto;
    }
    """

    # A 10x10 matrix needs no paging: PageUp/PageDown/Home/End scroll what the screen shows beside it (the
    # evaluate screen's images), where DataTable's would move the cell away from the images shown.
    BINDINGS = [
        Binding("pageup", "scroll_beside('page_up')", show=False),
        Binding("pagedown", "scroll_beside('page_down')", show=False),
        Binding("home", "scroll_beside('home')", show=False),
        Binding("end", "scroll_beside('end')", show=False),
    ]

    @dataclass
    class ScrollBeside(Message):
        """PageUp, PageDown, Home or End on the matrix: ``how`` is page_up, page_down, home or end."""

        matrix: ConfusionMatrix
        how: str

        @property
        def control(self) -> ConfusionMatrix:
            return self.matrix

    percent: reactive[bool] = reactive(False)

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        # Each cell has its own colours, which would hide the cursor's: the cursor's win.
        super().__init__(id=id, classes=classes, cursor_type="cell", cell_padding=0, zebra_stripes=False,
                         cursor_foreground_priority="css", cursor_background_priority="css")
        self.matrix: list[list[int]] = []
        self.class_names: list[str] = []

    def action_scroll_beside(self, how: str) -> None:
        self.post_message(self.ScrollBeside(self, how))

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.rebuild())

    def set_data(self, matrix: list[list[int]], class_names: list[str]) -> None:
        self.matrix = [[int(v) for v in row] for row in matrix]
        self.class_names = list(class_names)
        self.rebuild()

    def watch_percent(self, _old: bool, _new: bool) -> None:
        self.rebuild()

    def row_total(self, row: int) -> int:
        return sum(self.matrix[row]) if self.matrix else 0

    def share(self, row: int, col: int) -> float:
        total = self.row_total(row)
        return self.matrix[row][col] / total if total else 0.0

    def cell_text(self, row: int, col: int) -> str:
        """The number shown in a cell, as displayed."""
        if self.percent:
            return f"{100 * self.share(row, col):.1f}"
        return str(self.matrix[row][col])

    def _colors(self) -> tuple[Color, Color, Color]:
        variables = self.app.theme_variables
        base = Color.parse(variables.get("surface", "#1e1e1e"))
        good = Color.parse(variables.get("success", "#4caf50"))
        bad = Color.parse(variables.get("error", "#f44336"))
        return base, good, bad

    def _cell(self, row: int, col: int) -> Text:
        base, good, bad = self._colors()
        share = self.share(row, col)
        if row == col:
            color = base.blend(good, min(1.0, share))
        else:
            # mistakes are rarer: a quarter of the row already gives full colour
            color = base.blend(bad, min(1.0, share * 4))
        fg = color.get_contrast_text(0.95)
        text = self.cell_text(row, col)
        if self.matrix[row][col] == 0:
            text = "·"
        return Text(f"{text:>{CELL_WIDTH - 1}} ", style=Style(bgcolor=color.rich_color, color=fg.rich_color))

    def rebuild(self) -> None:
        if not self.is_mounted:
            return
        cursor = self.cursor_coordinate
        self.clear(columns=True)
        n = len(self.matrix)
        if not n:
            return
        for j in range(n):
            self.add_column(Text(f"{short_name(self.class_names[j]):>{CELL_WIDTH - 1}} "), width=CELL_WIDTH, key=str(j))
        for i in range(n):
            self.add_row(*[self._cell(i, j) for j in range(n)], key=str(i),
                         label=Text(f"{self.class_names[i][:10]:>10} ", style="bold"))
        if cursor.row < n and cursor.column < n:
            self.move_cursor(row=cursor.row, column=cursor.column)
