"""A run's test-set report as Rich tables, for `cifar-tui evaluate`."""

from __future__ import annotations

from functools import partial
from typing import Any

from .formatting import ASCII_DASH, fmt

_f = partial(fmt, dash=ASCII_DASH)


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]test accuracy {report['test_accuracy']:.4f}[/] on {report['num_test']} images"
        f"{' (flip TTA)' if report.get('tta_flip') else ''}; macro ROC-AUC {_f(report.get('macro_roc_auc'), '.4f')}; "
        f"best validation accuracy {_f(report.get('best_val_accuracy'), '.4f')}"
    )
    table = Table("class", "precision", "recall", "F1", "support", "ROC-AUC", title="per class")
    for name in report["classes"]:
        row = report["per_class"][name]
        table.add_row(name, _f(row["precision"]), _f(row["recall"]), _f(row["f1"]), str(row["support"]), _f(row["roc_auc"], ".4f"))
    for label, key in (("macro avg", "macro_avg"), ("weighted avg", "weighted_avg")):
        row = report[key]
        table.add_row(f"[bold]{label}[/]", _f(row["precision"]), _f(row["recall"]), _f(row["f1"]), str(row["support"]),
                      _f(row.get("roc_auc"), ".4f"))
    console.print(table)

    classes = report["classes"]
    matrix = Table(title="confusion matrix (rows: true class, columns: predicted)")
    matrix.add_column("", no_wrap=True)
    for name in classes:
        matrix.add_column(name[:5], justify="right", min_width=5, no_wrap=True)
    for name, row in zip(classes, report["confusion_matrix"]):
        total = sum(row) or 1
        cells = []
        for j, count in enumerate(row):
            share = count / total
            style = "bold green" if classes[j] == name else ("red" if share >= 0.05 else ("yellow" if share >= 0.02 else "dim"))
            cells.append(f"[{style}]{count}[/]")
        matrix.add_row(name, *cells)
    console.print(matrix)
    pairs = report.get("most_confused", [])[:5]
    if pairs:
        console.print("most confused: " + "; ".join(f"{p['true']} -> {p['predicted']} ({p['count']})" for p in pairs))
