"""tui_cifar.engine.folder_labels: which folder is which class, and the score over labelled photos (no model needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tui_cifar.engine.data import CLASS_NAMES
from tui_cifar.engine.folder_labels import LabelMapError, class_from_name, load_label_map, score_photos
from tui_cifar.engine.prediction import FilePrediction


@pytest.mark.parametrize("name, expected", [
    ("cat", "cat"), ("Cats", "cat"), ("DOG", "dog"), ("horses", "horse"), ("deer", "deer"), ("Cars", "automobile"),
    ("plane", "airplane"), ("Aeroplanes", "airplane"), ("boats", "ship"), ("automobile", "automobile"),
    ("holiday", None), ("2023", None), ("", None),
])
def test_class_from_folder_name(name, expected):
    assert class_from_name(name) == expected


def test_label_map_from_json_and_csv(tmp_path):
    as_json = tmp_path / "map.json"
    as_json.write_text('{"My Pets": "cat", "garage": "car", "misc": ""}')
    assert load_label_map(as_json) == {"my pets": "cat", "garage": "automobile", "misc": None}
    as_csv = tmp_path / "map.csv"
    as_csv.write_text("folder,class\nMy Pets,cat\nharbour,Ships\n\n")
    assert load_label_map(as_csv) == {"my pets": "cat", "harbour": "ship"}


@pytest.mark.parametrize("name, text, words", [
    ("bad.json", '{"pets": "unicorn"}', "'unicorn' (for folder 'pets') is not a cifar-10 class"),
    ("list.json", '["cat"]', "must be a json object"),
    ("broken.json", '{"pets": ', "not valid json"),
    ("rows.csv", "pets,cat,extra\n", "every csv row must be folder,class"),
    ("missing.csv", None, "cannot read label map"),
])
def test_bad_label_maps_are_refused_with_the_reason(tmp_path, name, text, words):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(LabelMapError) as info:
        load_label_map(path)
    assert words in str(info.value).lower()


def _prediction(root: Path, rel: str, predicted: str, confidence: float = 0.9) -> FilePrediction:
    rest = (1 - confidence) / (len(CLASS_NAMES) - 1)
    top = sorted(((c, confidence if c == predicted else rest) for c in CLASS_NAMES), key=lambda t: -t[1])
    return FilePrediction(root / rel, top, root=root)


def test_score_counts_each_class_folder_and_lists_the_unlabelled(tmp_path):
    root = tmp_path / "photos"
    results = [
        _prediction(root, "cat/a.png", "cat"), _prediction(root, "cat/2023/b.png", "dog"),
        _prediction(root, "Cars/c.png", "automobile"), _prediction(root, "Cars/d.png", "truck"),
        _prediction(root, "Cars/e.png", "automobile"), _prediction(root, "pets/f.png", "cat"),
        _prediction(root, "holiday/g.png", "ship"), _prediction(root, "loose.png", "frog"),
        FilePrediction(root / "cat" / "broken.png", None, "broken.png: empty file", root),
    ]
    score = score_photos(results, {"pets": "cat"})
    report = score["report"]
    assert score["labelled"] == 6 and score["failed"] == 1
    assert score["unlabelled"] == ["holiday/g.png", "loose.png"]
    assert score["folders"] == {"cat": "cat", "Cars": "automobile", "pets": "cat", "holiday": None}
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["per_class"]["cat"]["recall"] == pytest.approx(2 / 3)  # a, f right; b taken for a dog
    assert report["per_class"]["automobile"]["recall"] == pytest.approx(2 / 3)
    assert report["per_class"]["automobile"]["support"] == 3
    cm = np.array(report["confusion_matrix"])
    cat, dog, car, truck = (CLASS_NAMES.index(c) for c in ("cat", "dog", "automobile", "truck"))
    assert cm.sum() == 6 and cm[cat, cat] == 2 and cm[cat, dog] == 1 and cm[car, car] == 2 and cm[car, truck] == 1


def test_no_class_folder_means_no_report(tmp_path):
    root = tmp_path / "photos"
    score = score_photos([_prediction(root, "holiday/a.png", "cat"), _prediction(root, "b.png", "dog")])
    assert score["report"] is None and score["labelled"] == 0
    assert score["unlabelled"] == ["holiday/a.png", "b.png"]


def test_files_named_on_the_command_line_take_their_parent_folder_as_label(tmp_path):
    score = score_photos([FilePrediction(tmp_path / "dogs" / "x.png", _prediction(tmp_path, "x", "dog").top)])
    assert score["labelled"] == 1 and score["report"]["accuracy"] == 1.0
