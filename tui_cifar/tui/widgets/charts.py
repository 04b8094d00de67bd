"""Line charts on textual-plotext: each widget owns its figure and replots from stored data.

The data a chart shows is kept on the widget (``series``, ``vlines``) so that
tests and callers can read what is plotted without parsing the drawing. A
series colour is an RGB triple or the name of a theme colour ("primary"):
theme colours are looked up at each drawing, and the chart redraws when the
app's theme changes, as the confusion matrix does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from textual.app import RenderResult
from textual.color import Color
from textual_plotext import PlotextPlot

from ...runs.curves import ema, log_scale_points

# Categorical colours readable on both dark and light themes (the "tableau 10" palette).
PALETTE = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)
TRAIN_COLOR = "primary"  # theme colours: they follow the app's theme
VAL_COLOR = "warning"
MARK_COLOR = (127, 127, 127)
HIGHLIGHT_COLOR = "success"  # e.g. the epoch whose weights a run keeps

Point = tuple[float, float]
ChartColor = tuple[int, int, int] | str


TITLE_MARGIN = 8  # plotext centres a title over the plot beside the y tick labels, and leaves out a longer one


def fit_title(options: Sequence[str], width: int) -> str:
    """The first title that fits ``width`` (plotext leaves out a title wider than its plot), else the last one
    cut at a word ("Accuracy per step · ema 0.6 · log" in a half-width chart at 80 columns)."""
    for option in options:
        if len(option) <= width:
            return option
    last = options[-1] if options else ""
    cut = last[:width + 1].rsplit(" ", 1)[0] if " " in last[:width + 1] else last[:width]
    return cut.rstrip(" ·—")


class LineChart(PlotextPlot):
    """A titled line chart of named (x, y) series, with optional vertical marker lines."""

    DEFAULT_CSS = """
    LineChart {
        min-height: 6;
    }
    """

    def __init__(
        self,
        title: str = "",
        *,
        xlabel: str = "",
        ylabel: str = "",
        ylim: tuple[float, float] | None = None,
        marker: str = "hd",
        integer_x: bool = False,
        empty_text: str = "waiting for data…",
        legend: bool = True,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.chart_title = title
        self.drawn_title = ""  # the title as drawn: fit_title of chart_title and its smoothing and scale
        self.xlabel = xlabel
        self.ylabel = ylabel
        self.ylim = ylim
        self.marker = marker
        self.integer_x = integer_x
        self.empty_text = empty_text
        self.legend = legend  # plotext draws it over the top-left corner; off where curves live there
        self.series: dict[str, list[Point]] = {}
        self.series_colors: dict[str, ChartColor] = {}
        self.vlines: list[float] = []
        self.highlights: list[float] = []
        self.smoothing = 0.0  # TensorBoard's EMA weight; 0: the raw curve only
        self.log_y = False
        self._draw()

    def on_mount(self) -> None:
        # PlotextPlot's own on_mount (run too) follows the theme's background and text colours
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._draw())

    def set_series(
        self,
        series: Mapping[str, Sequence[Point]],
        *,
        colors: Mapping[str, ChartColor] | None = None,
        vlines: Sequence[float] = (),
        highlights: Sequence[float] = (),
    ) -> None:
        """Replace the plotted data and replot (clear data, plot, refresh).

        ``vlines`` are grey marker lines (a stage boundary); ``highlights`` are drawn in HIGHLIGHT_COLOR.
        """
        self.series = {name: list(points) for name, points in series.items()}
        self.series_colors = dict(colors or {})
        self.vlines = list(vlines)
        self.highlights = list(highlights)
        self._draw()

    def point_count(self, name: str) -> int:
        return len(self.series.get(name, ()))

    def resolve_color(self, color: ChartColor) -> tuple[int, int, int]:
        """An RGB triple for plotext: a theme colour's name is looked up in the app's current theme."""
        if not isinstance(color, str):
            return color
        value = self.app.theme_variables.get(color)
        return Color.parse(value).rgb if value else PALETTE[0]

    def faint(self, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
        """A colour two thirds of the way to the background: the raw curve under a smoothed one."""
        background = self.styles.background if self.styles.background.a else Color.parse("black")
        mixed = Color(*rgb).blend(background, 0.65)
        return mixed.rgb

    def shown_series(self) -> dict[str, list[Point]]:
        """The points drawn: log scale keeps positive values only."""
        if not self.log_y:
            return self.series
        return {name: log_scale_points(points) for name, points in self.series.items()}

    def render(self) -> RenderResult:
        """Plot afresh for each drawing: plotext's build takes the log of the stored y values in place, so a
        second build of the same figure (a resize) took the log of the logs, and the size picks the title."""
        self._plot_figure()
        return super().render()

    def _draw(self) -> None:
        self._plot_figure()
        self.refresh()

    def _plot_figure(self) -> None:
        plt = self.plt
        plt.clear_figure()
        series = self.shown_series()
        has_data = any(series.values())
        if has_data:
            smooth = [f"smoothed {self.smoothing:g}", f"ema {self.smoothing:g}"] if self.smoothing else ["", ""]
            log = "log" if self.log_y else ""
            short = self.chart_title.split(" per ")[0].split(" over ")[0]  # "Accuracy per step" -> "Accuracy"
            options = [" · ".join(p for p in (title, smoothed, log) if p)
                       for title, smoothed in ((self.chart_title, smooth[0]), (self.chart_title, smooth[1]),
                                               (short, smooth[1]))]
        else:
            options = [f"{self.chart_title} — {self.empty_text}", self.chart_title]
        self.drawn_title = fit_title(options, self.size.width - TITLE_MARGIN)
        plt.title(self.drawn_title)
        if self.xlabel:
            plt.xlabel(self.xlabel)
        if self.ylabel:
            plt.ylabel(self.ylabel)
        if self.log_y and has_data:
            plt.yscale("log")
        for index, (name, points) in enumerate(series.items()):
            if not points:
                continue
            xs = [p[0] for p in points]
            ys = [p[1] for p in points]
            color = self.resolve_color(self.series_colors.get(name, PALETTE[index % len(PALETTE)]))
            marker = self.marker if len(points) > 1 else "dot"
            if self.smoothing and len(points) > 1:
                plt.plot(xs, ys, color=self.faint(color), marker=marker)  # the raw curve, faint
                ys = ema(ys, self.smoothing)
            plt.plot(xs, ys, label=name if self.legend else None, color=color, marker=marker)
        for x in self.vlines:
            plt.vline(x, MARK_COLOR)
        if has_data:
            for x in self.highlights:
                plt.vline(x, self.resolve_color(HIGHLIGHT_COLOR))
        if self.integer_x and has_data:
            xs_all = [p[0] for points in series.values() for p in points]
            lo, hi = int(min(xs_all)), int(max(xs_all) + 0.999)
            step = max(1, (hi - lo) // 10 + 1)
            plt.xticks(list(range(lo, hi + 1, step)))
        if self.ylim is not None and has_data:
            plt.ylim(*self.ylim)
        if not has_data:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
