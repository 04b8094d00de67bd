"""Robustness of `cifar-tui predict` and of loading model files: bad pictures, untrusted or wrong models.

One tiny model is trained once for the module (random weights, fake data, seconds) and reused.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_config
from faultkit import run_cli, save_jpeg, save_png
from PIL import Image

from tui_cifar.cli import commands
from tui_cifar.engine.launcher import create_run
from tui_cifar.runs import store

# TensorFlow's C++ start-up lines, which TF_CPP_MIN_LOG_LEVEL does not silence (absl logs before it is set up).
# What predict says about the folders it searched and the CSV it wrote, beside the per-file lines.
FOLDER_NEWS = re.compile(r"^\S+: \d+ images? found in \d+ folders?, \d+ skipped$|^predictions written to ")
TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} |To enable the following instructions)")


@pytest.fixture(scope="module")
def trained_run(fake_cifar, tmp_path_factory) -> Path:
    from tui_cifar.config import make_config
    from tui_cifar.engine.training import train_run

    base = tmp_path_factory.mktemp("predict_run")
    config = make_config(tiny_config(fake_cifar, base / "runs", cache_dir=str(base / "cache"), epochs_fine=1))
    run_dir = create_run(config)
    assert train_run(config, run_dir) == "finished"
    assert (run_dir / store.MODEL_FILE).is_file()
    return run_dir


@pytest.fixture
def picture_mix(tmp_path) -> tuple[list[Path], list[Path], dict[Path, str]]:
    """(command-line arguments, the good pictures among them, each bad input -> words its error must contain)."""
    good_png = save_png(tmp_path / "red.png")
    good_jpg = save_jpeg(tmp_path / "noise.jpg")
    folder = tmp_path / "folder"
    folder.mkdir()
    in_folder = save_png(folder / "green.png", colour=(20, 200, 20))
    empty_folder = tmp_path / "empty_folder"
    empty_folder.mkdir()
    missing = tmp_path / "missing.png"
    zero = tmp_path / "zero.jpg"
    zero.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("these are my notes, not a picture\n")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good_jpg.read_bytes()[: good_jpg.stat().st_size // 2])
    bad = {missing: "no such file", empty_folder: "no images", zero: "empty file", text: "not an image", cut: "truncated"}
    args = [good_png, missing, folder, empty_folder, zero, text, good_jpg, cut]
    return args, [good_png, in_folder, good_jpg], bad


def test_predict_mixed_inputs_text(trained_run, picture_mix):
    """Bad files: one line each on stderr with the reason; good ones classified on stdout; exit 3 (some unreadable)."""
    args, good, expect = picture_mix
    result = run_cli("predict", trained_run, *args, "--top-k", "2")
    assert result.returncode == commands.EXIT_SOME_UNREADABLE == 3, result.stderr
    assert "Traceback" not in result.stderr
    out_lines = result.stdout.splitlines()
    assert len(out_lines) == len(good), result.stdout
    for path in good:
        (line,) = [l for l in out_lines if l.startswith(f"{path}: ")]
        assert len(line.split(", ")) == 2 and "%" in line, line  # top-2 classes with probabilities
    err_lines = [l for l in result.stderr.splitlines()
                 if l.strip() and not TF_NOISE.match(l) and not FOLDER_NEWS.search(l)]
    for path, reason in expect.items():
        lines = [l for l in err_lines if l.startswith(f"{path}: ")]
        assert len(lines) == 1, (path, err_lines)
        assert reason in lines[0].lower(), lines[0]
    assert len(err_lines) == len(expect), err_lines


def test_predict_mixed_inputs_json(trained_run, picture_mix, capsys):
    args, good, expect = picture_mix
    rc = commands.main(["predict", str(trained_run), *map(str, args), "--json", "--top-k", "3"])
    assert rc == commands.EXIT_SOME_UNREADABLE
    entries = {e["path"]: e for e in json.loads(capsys.readouterr().out)}
    assert set(entries) == {str(p) for p in [*good, *expect]}
    for path in good:
        entry = entries[str(path)]
        assert entry["error"] is None and len(entry["top"]) == 3
        assert abs(sum(t["probability"] for t in entry["top"])) <= 1.0 + 1e-6
    for path, reason in expect.items():
        entry = entries[str(path)]
        assert entry["top"] is None and reason in entry["error"].lower(), entry


def test_predict_only_good_files_exits_0(trained_run, tmp_path, capsys):
    rc = commands.main(["predict", str(trained_run), str(save_png(tmp_path / "a.png"))])
    assert rc == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'a.png'}: ")


def test_predict_a_folder_of_class_subfolders(trained_run, tmp_path):
    """Photos kept in class subfolders: all found, what was skipped said, the CSV written beside the run."""
    photos = tmp_path / "photos"
    for rel in ["cat/a.png", "cat/2023/b.png", "Dogs/c.png", "loose.png", ".thumbnails/t.png"]:
        (photos / rel).parent.mkdir(parents=True, exist_ok=True)
        save_png(photos / rel)
    (photos / "Dogs" / "notes.txt").write_text("not a picture")
    (photos / "cat" / "again").symlink_to(photos)  # a loop back to the top
    photos.chmod(0o555)  # a read-only photo folder: nothing may be written into it
    try:
        result = run_cli("predict", trained_run, photos)
    finally:
        photos.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert [line.partition(": ")[0] for line in result.stdout.splitlines()] == [
        str(photos / rel) for rel in ["cat/2023/b.png", "cat/a.png", "Dogs/c.png", "loose.png"]]
    err = result.stderr.splitlines()
    assert f"{photos}: 4 images found in 4 folders, 2 skipped" in err
    assert f"{photos / 'cat' / 'again'}: skipped: link to a folder already searched" in err
    assert f"{photos / 'Dogs' / 'notes.txt'}: skipped: not an image file (by its suffix)" in err
    table = trained_run / "predictions" / "photos.csv"
    assert f"predictions written to {table}" in err
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["relative_path"] for r in rows] == ["cat/2023/b.png", "cat/a.png", "Dogs/c.png", "loose.png"]
    assert all(r["prediction"] and not r["error"] for r in rows)
    assert sorted(p.name for p in photos.rglob("*") if p.is_file()) == ["a.png", "b.png", "c.png", "loose.png",
                                                                       "notes.txt", "t.png"]


def test_classify_folder_counts_found_skipped_and_failed(trained_run, tmp_path):
    """The core API the app's folder action uses: the scan, a result per picture, and a one-line summary."""
    from tui_cifar.engine.prediction import load_classifier, write_csv

    photos = tmp_path / "photos"
    (photos / "cat").mkdir(parents=True)
    save_png(photos / "cat" / "a.png")
    save_jpeg(photos / "b.jpg")
    (photos / "cat" / "broken.png").write_text("not a picture")
    (photos / "notes.txt").write_text("x")
    classifier = load_classifier(trained_run)
    done = classifier.classify_folder(photos)
    assert [r.relative_path.as_posix() for r in done.results] == ["b.jpg", "cat/a.png", "cat/broken.png"]
    assert done.summary() == "3 images found in 2 folders, 1 skipped; 2 classified, 1 failed"
    write_csv(done.results, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().count("\n") == 4  # the header and a row per picture


def test_predict_an_unwritable_csv_path_is_one_clear_line(trained_run, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    save_png(folder / "a.png")
    (tmp_path / "file").write_text("x")
    result = run_cli("predict", trained_run, folder, "--csv", tmp_path / "file" / "out.csv")
    assert result.returncode == 1
    assert f"cifar-tui: cannot write {tmp_path / 'file' / 'out.csv'}" in result.stderr
    assert "Traceback" not in result.stderr


def test_predict_explain_writes_one_png_per_picture_named_after_its_folder(trained_run, tmp_path):
    photos = tmp_path / "photos"
    for rel in ["cat/a.png", "dog/a.png"]:
        (photos / rel).parent.mkdir(parents=True)
        save_png(photos / rel)
    single = save_jpeg(tmp_path / "b.jpg")
    result = run_cli("predict", trained_run, photos, single, "--explain", tmp_path / "why")
    assert result.returncode == 0, result.stderr
    assert f"3 explanations written to {tmp_path / 'why'}" in result.stderr
    assert sorted(p.name for p in (tmp_path / "why").iterdir()) == ["b.png", "cat__a.png", "dog__a.png"]
    for png in (tmp_path / "why").iterdir():
        assert Image.open(png).size == (768, 256 + 20)  # photo, model input, heatmap: 256 px each; captions


def test_predict_explain_into_a_file_keeps_the_predictions_and_says_why(trained_run, tmp_path):
    picture = save_png(tmp_path / "a.png")
    blocker = tmp_path / "why"
    blocker.write_text("a file, not a folder")
    result = run_cli("predict", trained_run, picture, "--explain", blocker)
    assert result.returncode == 1
    assert result.stdout.startswith(f"{picture}: ")
    assert f"cifar-tui: no explanations written to {blocker}" in result.stderr and "Traceback" not in result.stderr


def test_explain_refuses_a_model_without_a_backbone_model(tmp_path):
    import keras

    from tui_cifar.engine.explain import ExplainError, explain

    plain = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10, activation="softmax")])
    with pytest.raises(ExplainError, match="no backbone model followed by a head model"):
        explain(plain, np.zeros((1, 32, 32, 3), np.uint8))


# --- model files that must be refused -------------------------------------------------------------


def _save(model, path: Path) -> Path:
    model.save(path)
    return path


def test_lambda_layer_is_refused_without_running_its_code(tmp_path):
    import keras

    from tui_cifar.engine.prediction import ModelLoadError, load_model_checked

    marker = tmp_path / "code_ran"
    payload = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")  # noqa: S307
    model = keras.Sequential([
        keras.Input((32, 32, 3)), keras.layers.Lambda(payload), keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    path = _save(model, tmp_path / "evil.keras")
    marker.unlink(missing_ok=True)  # building the model above ran it once, here
    with pytest.raises(ModelLoadError) as info:
        load_model_checked(path)
    message = str(info.value)
    assert message.startswith(f"refused to load {path}: it contains a Lambda layer with Python code")
    assert "safe_mode" in message
    assert not marker.exists(), "the Lambda's code ran while loading"


@pytest.mark.parametrize(
    "make, shapes",
    [
        (lambda k: k.Sequential([k.Input((28, 28, 1)), k.layers.Flatten(), k.layers.Dense(10, activation="softmax")]),
         ["(None, 28, 28, 1)", "(None, 32, 32, 3)"]),
        (lambda k: k.Sequential([k.Input((32, 32, 3)), k.layers.Flatten(), k.layers.Dense(5, activation="softmax")]),
         ["(None, 5)", "(None, 10)"]),
    ],
    ids=["mnist-shaped-input", "five-classes"],
)
def test_valid_model_of_the_wrong_shape_is_refused(tmp_path, make, shapes):
    import keras

    from tui_cifar.engine.prediction import ModelLoadError, load_model_checked

    path = _save(make(keras), tmp_path / "other.keras")
    with pytest.raises(ModelLoadError) as info:
        load_model_checked(path)
    message = str(info.value)
    assert "not a CIFAR-10 model" in message
    for shape in shapes:
        assert shape in message, message


@pytest.mark.parametrize("content", [b"", b"hello, not a zip", b"PK\x03\x04" + b"\x00" * 60],
                         ids=["empty", "text", "broken-zip"])
def test_file_that_is_not_a_model(tmp_path, content):
    from tui_cifar.engine.prediction import ModelLoadError, load_model_checked

    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError) as info:
        load_model_checked(path)
    assert str(info.value).startswith(f"cannot load {path}: ")
    assert "\n" not in str(info.value)


def test_predict_with_a_run_that_has_no_model(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    rc = commands.main(["predict", str(run), str(save_png(tmp_path / "a.png"))])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"no model at {run / store.MODEL_FILE}" in err and "first epoch" in err


def test_predict_refuses_an_untrusted_model_file(trained_run, tmp_path, capsys):
    """Through the CLI: a .keras file that is not a model gives one message, no traceback, exit 1."""
    fake = tmp_path / "download.keras"
    fake.write_text("<html>404 not found</html>")
    rc = commands.main(["predict", str(fake), str(save_png(tmp_path / "a.png"))])
    captured = capsys.readouterr()
    assert rc == 1 and captured.out == ""
    assert captured.err.startswith(f"cifar-tui: cannot load {fake}") and captured.err.count("\n") == 1


def test_run_copy_with_a_swapped_in_wrong_model_is_refused(trained_run, tmp_path, capsys):
    import keras

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    _save(keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]),
          run / store.MODEL_FILE)
    rc = commands.main(["predict", str(run), str(save_png(tmp_path / "a.png"))])
    assert rc == 1
    assert "(None, 2)" in capsys.readouterr().err


def test_a_labelled_folder_with_unreadable_pictures_is_scored_and_exits_3(trained_run, tmp_path):
    """2 of 8 pictures unreadable: the 6 others classified and scored, the 2 named, exit 3 (not 1, a failure)."""
    photos = tmp_path / "photos"
    for rel in ["cat/a.png", "cat/b.png", "cat/c.png", "dog/a.png", "dog/b.png", "ship/a.png"]:
        (photos / rel).parent.mkdir(parents=True, exist_ok=True)
        save_png(photos / rel)
    (photos / "cat" / "broken.png").write_text("not a picture")
    (photos / "dog" / "empty.jpg").write_bytes(b"")
    result = run_cli("predict", trained_run, photos, "--labels-from-folders", "--json")
    assert result.returncode == commands.EXIT_SOME_UNREADABLE, result.stderr
    out = json.loads(result.stdout)
    report = out["photos"]["report"]
    assert report["num_photos"] == 6 and "accuracy" in report and "test_accuracy" not in report
    assert out["photos"]["failed"] == 2
    assert sorted(Path(p["path"]).name for p in out["predictions"] if p["error"]) == ["broken.png", "empty.jpg"]
    text = run_cli("predict", trained_run, photos, "--labels-from-folders")  # the same, as text
    assert text.returncode == commands.EXIT_SOME_UNREADABLE and "accuracy on your photos" in text.stdout
    assert sum(1 for line in text.stderr.splitlines() if ": error: " in line) == 2
