"""The per-class tab of the evaluate screen: precision, recall, F1, support and ROC-AUC per class."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from ...formatting import DASH, fmt

COLUMNS = (("class", "Class"), ("precision", "Precision"), ("recall", "Recall"),
           ("f1", "F1"), ("support", "Support"), ("roc_auc", "ROC-AUC"))


class ClassReport(DataTable):
    """One row per class (keyed by its name), then the macro and weighted averages."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, report: dict[str, Any], class_names: list[str]) -> None:
        """Fill the table from a test report (metrics of ``evaluation.evaluate_run``)."""
        self.clear()
        per_class = report.get("per_class") or {}
        for name in class_names:
            row = per_class.get(name) or {}
            self.add_row(name, fmt(row.get("precision")), fmt(row.get("recall")), fmt(row.get("f1")),
                         str(row.get("support", DASH)), fmt(row.get("roc_auc"), ".4f"), key=name)
        for key, label in (("macro_avg", "macro avg"), ("weighted_avg", "weighted avg")):
            row = report.get(key)
            if isinstance(row, dict):
                auc = row.get("roc_auc", report.get("macro_roc_auc") if key == "macro_avg" else None)
                self.add_row(Text(label, style="bold"), fmt(row.get("precision")), fmt(row.get("recall")),
                             fmt(row.get("f1")), str(row.get("support", DASH)), fmt(auc, ".4f"), key=key)
