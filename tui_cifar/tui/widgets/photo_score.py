"""The predict screen's score of a labelled photo folder: accuracy and per-class recall beside the test set's.

The figures come from folder_labels.score_photos (the test report's own code);
this only lays them out, as `cifar-tui predict --labels-from-folders` prints them.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ...formatting import DASH, fmt, format_pct


def photo_score_text(score: dict[str, Any], test: dict[str, Any] | None) -> Group:
    """Headline (photo accuracy, test accuracy) and a table: class, photos, recall, test recall."""
    report = score["report"]
    headline = Text(f"accuracy on your photos {format_pct(report['accuracy'])}", style="bold")
    headline.append(f" ({report['num_photos']} labelled", style="")
    headline.append(f", {len(score['unlabelled'])} in no class folder" if score["unlabelled"] else "")
    headline.append(f", {score['failed']} unreadable" if score["failed"] else "")
    headline.append(")")
    if test:
        headline.append(f" · test set {format_pct(test['test_accuracy'])}")
    table = Table("class", "photos", "recall", *(["test"] if test else []), box=None, padding=(0, 1),
                  header_style="bold")
    for name in report["classes"]:
        row = report["per_class"][name]
        cells = [name, str(row["support"]), fmt(row["recall"], ".2f") if row["support"] else DASH]
        if test:
            cells.append(fmt(test["recall"].get(name), ".2f"))
        table.add_row(*cells)
    return Group(headline, table)
