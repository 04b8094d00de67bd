"""A run's test-set report as Rich tables, for `cifar-tui evaluate`."""

from __future__ import annotations

from functools import partial
from typing import Any

from ..formatting import ASCII_DASH, fmt, shown

_f = partial(fmt, dash=ASCII_DASH)
MATRIX_CELL = 5  # characters of a confusion-matrix column


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

    for matrix in _confusion_tables(report, "confusion matrix (rows: true class, columns: predicted)", console.width):
        console.print(matrix)
    pairs = report.get("most_confused", [])[:5]
    if pairs:
        console.print("most confused: " + "; ".join(f"{p['true']} -> {p['predicted']} ({p['count']})" for p in pairs))


def _confusion_tables(report: dict[str, Any], title: str, width: int) -> list:
    """The confusion matrix as tables that fit ``width`` columns (the predicted classes split across them)."""
    from rich import box
    from rich.table import Table

    classes = report["classes"]
    label_width = max(map(len, classes))
    # Columns of 5 characters (names cut to 5, counts up to 99999) and one space between; the
    # predicted classes that do not fit the terminal go on into another table below, never cut off.
    per_table = max(1, min(len(classes), (width - label_width - 1) // (MATRIX_CELL + 1)))
    tables = []
    for first in range(0, len(classes), per_table):
        shown = range(first, min(first + per_table, len(classes)))
        part = title
        if per_table < len(classes):
            part = f"{title}, predicted {first + 1}-{shown[-1] + 1} of {len(classes)}"
        matrix = Table(title=part, box=box.SIMPLE_HEAD, padding=0, show_edge=False)  # a space between columns
        matrix.add_column("", no_wrap=True, min_width=label_width)
        for j in shown:
            matrix.add_column(classes[j][:MATRIX_CELL], justify="right", min_width=MATRIX_CELL, no_wrap=True)
        for name, row in zip(classes, report["confusion_matrix"]):
            total = sum(row) or 1
            cells = []
            for j in shown:
                share = row[j] / total
                style = "bold green" if classes[j] == name else ("red" if share >= 0.05 else ("yellow" if share >= 0.02 else "dim"))
                cells.append(f"[{style}]{row[j]}[/]")
            matrix.add_row(name, *cells)
        tables.append(matrix)
    return tables


def print_photo_score(score: dict[str, Any], test: dict[str, Any] | None) -> None:
    """folder_labels.score_photos as text, beside the run's test accuracy and recalls (test) when it has a report."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    for folder, cls in score["folders"].items():  # a folder's name is text, not markup
        console.print(f"folder {escape(shown(repr(folder)))}: " + (cls or "[yellow]no CIFAR-10 class[/] (name it in a --label-map file)"),
                      highlight=False)
    report = score["report"]
    if report is None:
        console.print("no labelled photos: no folder is named after a CIFAR-10 class")
    else:
        beside = f"; test set {test['test_accuracy']:.4f}" if test else ""
        console.print(f"[bold]accuracy on your photos {report['accuracy']:.4f}[/] "
                      f"({report['num_photos']} labelled images){beside}")
        columns = ["class", "photos", "recall", "precision"] + (["test recall"] if test else [])
        table = Table(*columns, title="per class, your photos")
        predicted = [sum(column) for column in zip(*report["confusion_matrix"])]
        for k, name in enumerate(report["classes"]):
            row = report["per_class"][name]
            # Precision of a class never predicted is undefined (0/0), as recall is for a class without photos.
            cells = [name, str(row["support"]), _f(row["recall"]) if row["support"] else ASCII_DASH,
                     _f(row["precision"]) if predicted[k] else ASCII_DASH]
            if test:
                cells.append(_f(test["recall"][name]))
            table.add_row(*cells)
        console.print(table)
        for matrix in _confusion_tables(report, "confusion matrix of your photos (rows: folder class, columns: predicted)",
                                        console.width):
            console.print(matrix)
    if score["unlabelled"]:
        console.print(f"{len(score['unlabelled'])} unlabelled (in no class folder, not scored): "
                      + ", ".join(score["unlabelled"]), highlight=False)
    if score["failed"]:
        console.print(f"{score['failed']} could not be read (not scored)")
