"""Score a run on the user's own labelled photos: the class of a picture is the name of its folder.

People sort photos as photos/cat/..., photos/Cars/...; a folder whose name is a
CIFAR-10 class (any case, a plural or a common synonym) labels every picture
under it, and a mapping file names the class of any other folder. The scores
come from evaluation.report_from_probabilities, the code path of the test report,
so the two sets of figures mean the same thing.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EXIT_USAGE, CifarTuiError
from ..runs import store
from .data import CLASS_NAMES
from .prediction import FilePrediction

# Words people use for a CIFAR-10 class (after lower-casing; plurals are handled separately).
SYNONYMS = {
    "car": "automobile", "auto": "automobile",
    "plane": "airplane", "aeroplane": "airplane", "aircraft": "airplane", "jet": "airplane",
    "boat": "ship", "kitten": "cat", "kitty": "cat", "puppy": "dog", "lorry": "truck", "pony": "horse",
    "toad": "frog",
}


class LabelMapError(CifarTuiError, ValueError):
    """A --label-map file that cannot be read or names something that is not a CIFAR-10 class."""

    exit_code = EXIT_USAGE


def class_from_name(name: str) -> str | None:
    """The CIFAR-10 class a folder name means ("Cars" -> automobile), or None."""
    word = name.strip().casefold().replace("-", " ").replace("_", " ")
    for candidate in (word, word.removesuffix("s"), word.removesuffix("es")):
        if candidate in CLASS_NAMES:
            return candidate
        if candidate in SYNONYMS:
            return SYNONYMS[candidate]
    return None


def load_label_map(path: Path) -> dict[str, str | None]:
    """folder name (case-folded) -> class, from JSON {"folder": "class"} or CSV rows folder,class.

    An empty class marks a folder as deliberately unlabelled.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelMapError(f"cannot read label map {path}: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            pairs = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LabelMapError(f"label map {path} is not valid JSON: {exc}") from None
        if not isinstance(pairs, dict) or not all(isinstance(v, (str, type(None))) for v in pairs.values()):
            raise LabelMapError(f'label map {path} must be a JSON object like {{"my cats": "cat"}}')
        pairs = list(pairs.items())
    else:
        rows = [row for row in csv.reader(text.splitlines()) if any(cell.strip() for cell in row)]
        if rows and [cell.strip().casefold() for cell in rows[0]] == ["folder", "class"]:
            rows = rows[1:]
        if any(len(row) != 2 for row in rows):
            raise LabelMapError(f"label map {path}: every CSV row must be folder,class")
        pairs = [(folder, label) for folder, label in rows]
    mapping: dict[str, str | None] = {}
    for folder, label in pairs:
        cls = class_from_name(label) if label and label.strip() else None
        if label and label.strip() and cls is None:
            raise LabelMapError(
                f"label map {path}: {label!r} (for folder {folder!r}) is not a CIFAR-10 class; "
                f"use one of {', '.join(CLASS_NAMES)}")
        mapping[folder.strip().casefold()] = cls
    return mapping


def folder_of(result: FilePrediction) -> str | None:
    """The folder that labels a picture: its first subfolder under the searched folder, else its parent."""
    if result.root is not None:
        parts = result.relative_path.parts
        return parts[0] if len(parts) > 1 else None
    return result.path.parent.name or None


def score_photos(results: list[FilePrediction], label_map: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Accuracy, per-class scores and confusion matrix over the pictures whose folder names a class.

    results need all 10 probabilities (classify with top_k=10). Pictures in no
    class folder are listed under "unlabelled", failed ones are counted; neither is scored.
    """
    from .evaluation import report_from_probabilities

    label_map = label_map or {}
    folders: dict[str, str | None] = {}
    y_true, y_prob, unlabelled = [], [], []
    for r in results:
        if r.error is not None:
            continue
        folder = folder_of(r)
        key = (folder or "").casefold()
        cls = label_map[key] if key in label_map else (class_from_name(folder) if folder else None)
        if folder is not None:
            folders[folder] = cls
        if cls is None:
            unlabelled.append(r.relative_path.as_posix())
            continue
        probs = dict(r.top or ())
        y_true.append(CLASS_NAMES.index(cls))
        y_prob.append([probs[c] for c in CLASS_NAMES])
    report = _photos_report(report_from_probabilities(np.array(y_true), np.array(y_prob))) if y_true else None
    return {
        "report": report,
        "labelled": len(y_true),
        "unlabelled": unlabelled,
        "failed": sum(r.error is not None for r in results),
        "folders": folders,
    }


# The test report's own figures, named for what they are here: scores on the user's photos, not the test set.
PHOTO_KEYS = {"test_accuracy": "accuracy", "test_loss": "loss", "num_test": "num_photos"}


def _photos_report(report: dict[str, Any]) -> dict[str, Any]:
    return {PHOTO_KEYS.get(key, key): value for key, value in report.items()}


def test_set_scores(run_dir: Path) -> dict[str, Any] | None:
    """The run's test accuracy and per-class recalls, to show beside the photos' ({"test_accuracy", "recall"}), or None."""
    report = store.read_report(run_dir)[0] if Path(run_dir).is_dir() else None
    if not report or not isinstance(report.get("per_class"), dict):  # none yet, or one this version cannot read
        return None
    return {"test_accuracy": report.get("test_accuracy"),
            "recall": {name: (row or {}).get("recall") for name, row in report["per_class"].items()}}
