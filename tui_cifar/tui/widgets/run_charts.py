"""The training screen's charts and the line of chart keys above them, drawn from the latest look at the run
and the chart settings the keys change (metric, smoothing, log scale, x axis)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Static

from ...runs import diagnostics, tbreader
from .charts import TRAIN_COLOR, VAL_COLOR, LineChart
from .run_header import WatchedRun

X_LABELS = {"epoch": "epoch", "step": "step", "wall time": "wall time (s)"}
PER_UNIT = {"epoch": " per epoch", "step": " per step", "wall time": " over time"}


@dataclass(frozen=True)
class ChartSettings:
    """What the chart keys set: the right chart's metric (None: the run's main one), the EMA weight, a log
    y axis and the x axis (curves.X_AXES)."""

    metric: str | None = None
    smoothing: float = 0.0
    log_y: bool = False
    x_axis: str = "epoch"


class ChartKeys(Static):
    """The chart keys with their current values: ``v epochs  m accuracy  z smooth off  y linear  x epoch``."""

    view: reactive[str] = reactive("epochs")
    chart: reactive[ChartSettings] = reactive(ChartSettings)
    watched: reactive[WatchedRun | None] = reactive(None)

    def _redraw(self) -> None:
        self.update(self.keys())

    watch_view = watch_chart = watch_watched = _redraw

    def keys(self) -> Text:
        chart = self.chart
        metric = self.watched.progress.chart_metric(chart.metric) if self.watched else chart.metric or "accuracy"
        smooth = f"{chart.smoothing:g}" if chart.smoothing else "off"
        return Text.assemble(
            ("v", "bold"), f" {self.view}  ", ("m", "bold"), f" {metric}  ",
            ("z", "bold"), f" smooth {smooth}  ", ("y", "bold"), f" {'log' if chart.log_y else 'linear'}  ",
            ("x", "bold"), f" {chart.x_axis}", style="dim")


class EpochCharts(Horizontal):
    """Loss, and the chart's metric, per epoch (or step, or wall time): train and val curves, the stage
    boundary in grey and the kept epoch in the success colour. Redrawn when an epoch or a setting is new."""

    chart: reactive[ChartSettings] = reactive(ChartSettings)
    watched: reactive[WatchedRun | None] = reactive(None)

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._drawn: tuple[Any, ...] = ()

    def compose(self) -> ComposeResult:
        yield LineChart("Loss", xlabel="epoch", integer_x=True, id="loss-chart")
        yield LineChart("Accuracy", xlabel="epoch", integer_x=True, id="acc-chart")

    def _draw(self) -> None:
        watched, settings = self.watched, self.chart
        if watched is None or not self.is_mounted:
            return
        p = watched.progress
        drawn = (p, p.epoch_version, settings)
        if drawn == self._drawn:
            return
        self._drawn = drawn
        metric = p.chart_metric(settings.metric)
        train_key = metric[4:] if metric.startswith("val_") else metric
        axis = settings.x_axis
        series = p.epoch_series(["loss", train_key], axis=axis)
        marks: list[float] = []
        highlights: list[float] = []
        if axis == "epoch":
            boundary = p.stage_boundary
            marks = [boundary] if boundary is not None else []
            kept = diagnostics.kept_epoch(p.epochs, p.config or {})
            # the epoch whose weights the run keeps (best validation accuracy), in the success colour
            highlights = [p.epoch_offset(kept[0]) + kept[1]] if kept is not None else []
        # a TensorBoard run's records are its logged steps, whatever its script calls them: never "epoch"
        unit = "step" if axis == "epoch" and watched.kind == tbreader.KIND else axis
        for chart_id, title, key in (("#loss-chart", "Loss", "loss"),
                                     ("#acc-chart", train_key.replace("_", " ").capitalize(), train_key)):
            chart = self.query_one(chart_id, LineChart)
            chart.chart_title = title + PER_UNIT[unit]
            chart.xlabel = X_LABELS[unit]
            chart.integer_x = axis == "epoch"
            chart.smoothing = settings.smoothing
            chart.log_y = settings.log_y
            chart.set_series({"train": series.get(key, []), "val": series.get(f"val_{key}", [])},
                             colors={"train": TRAIN_COLOR, "val": VAL_COLOR}, vlines=marks, highlights=highlights)

    watch_chart = watch_watched = _draw


class BatchChart(LineChart):
    """The loss of every logged batch, the stage boundary in grey; redrawn when a batch or a setting is new."""

    chart: reactive[ChartSettings] = reactive(ChartSettings)
    watched: reactive[WatchedRun | None] = reactive(None)

    def __init__(self, id: str | None = None) -> None:
        super().__init__("Loss per batch", xlabel="epoch", integer_x=True, id=id)
        self._drawn: tuple[Any, ...] = ()

    def _draw_batches(self) -> None:
        watched, settings = self.watched, self.chart
        if watched is None:
            return
        p = watched.progress
        drawn = (p, p.batch_version, settings.smoothing, settings.log_y)
        if drawn == self._drawn:
            return
        self._drawn = drawn
        boundary = p.stage_boundary
        self.smoothing, self.log_y = settings.smoothing, settings.log_y
        self.set_series({"batch loss": p.batch_points}, colors={"batch loss": TRAIN_COLOR},
                        vlines=[boundary - 0.5] if boundary is not None else [])

    watch_chart = watch_watched = _draw_batches
