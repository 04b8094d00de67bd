"""The ROC tab of the evaluate screen: one-vs-rest curves, all classes or one, with the AUCs."""

from __future__ import annotations

from typing import Any

from rich.color import Color as RichColor
from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Select, Static

from .charts import MARK_COLOR, PALETTE, LineChart

ALL = "__all__"


class RocPanel(Vertical):
    """A class picker, the ROC chart and its legend (class, colour, AUC) beside it."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.report: dict[str, Any] = {}
        self.class_names: list[str] = []

    def compose(self) -> ComposeResult:
        with Horizontal(id="roc-controls"):
            yield Label("Curves:", classes="toolbar-label")
            yield Select([("All classes", ALL)], value=ALL, allow_blank=False, id="roc-class")
            yield Static("", id="roc-auc")
        with Horizontal(id="roc-box"):
            # ROC curves rise through the top-left corner, where plotext puts its legend:
            # the legend (class, colour, AUC) goes beside the chart instead.
            yield LineChart("One-vs-rest ROC: true positive rate", xlabel="false positive rate",
                            ylim=(0, 1.02), empty_text="no ROC curves in the report", legend=False,
                            id="roc-chart")
            yield Static("", id="roc-legend")

    def show(self, report: dict[str, Any], class_names: list[str]) -> None:
        """Show a test report's curves (all classes first)."""
        self.report = report
        self.class_names = class_names
        select = self.query_one("#roc-class", Select)
        curves = report.get("roc_curves") or {}
        select.set_options([("All classes", ALL)] + [(n, n) for n in class_names if n in curves])
        select.value = ALL
        self._plot()

    @on(Select.Changed, "#roc-class")
    def _class_changed(self) -> None:
        self._plot()

    def _plot(self) -> None:
        report = self.report
        curves = report.get("roc_curves") or {}
        per_class = report.get("per_class") or {}
        choice = self.query_one("#roc-class", Select).value
        names = [n for n in self.class_names if n in curves and (choice in (ALL, Select.NULL) or n == choice)]
        series: dict[str, list[tuple[float, float]]] = {}
        colors: dict[str, tuple[int, int, int]] = {}
        for name in names:
            curve = curves.get(name) or {}
            fpr, tpr = curve.get("fpr") or [], curve.get("tpr") or []
            auc = (per_class.get(name) or {}).get("roc_auc")
            label = f"{name} {auc:.3f}" if isinstance(auc, (int, float)) else name
            series[label] = list(zip(fpr, tpr))
            colors[label] = PALETTE[self.class_names.index(name) % len(PALETTE)]
        if series:
            series["chance"] = [(0.0, 0.0), (1.0, 1.0)]
            colors["chance"] = MARK_COLOR
        chart = self.query_one("#roc-chart", LineChart)
        chart.set_series(series, colors=colors)
        legend = Text("\n").join(
            Text.assemble(("━━ ", Style(color=RichColor.from_rgb(*color))), label) for label, color in colors.items()
        )
        self.query_one("#roc-legend", Static).update(legend)
        auc_text = ""
        if choice not in (ALL, Select.NULL):
            auc = (per_class.get(choice) or {}).get("roc_auc")
            auc_text = f"AUC {auc:.4f}" if isinstance(auc, (int, float)) else ""
        elif isinstance(report.get("macro_roc_auc"), (int, float)):
            auc_text = f"macro AUC {report['macro_roc_auc']:.4f}"
        self.query_one("#roc-auc", Static).update(auc_text)
