"""Data folders are data, never code: a pickle that would run code, and malformed batches, are refused
with a message naming the file, before any run folder is made."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import write_fake_cifar

from tui_cifar.cli import commands
from tui_cifar.engine import data
from tui_cifar.engine.data import DatasetNotFound, load_cifar10

PER_BATCH = 60


class _CreatesMarker:
    """Unpickled by a plain pickle.load, this creates the marker file (by calling os.system)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _folder_with(tmp_path: Path, batch: str, content: dict | object) -> Path:
    """The fake CIFAR-10 with one batch replaced by ``content``, pickled as an attacker would."""
    folder = write_fake_cifar(tmp_path / "data")
    with open(folder / "cifar-10-batches-py" / batch, "wb") as f:
        pickle.dump(content, f)
    return folder


def _train(folder: Path, runs: Path, capsys, *extra: str) -> tuple[int, str]:
    code = commands.main(["train", "--data-dir", str(folder), "--runs-dir", str(runs), "--weights", "none", *extra])
    return code, capsys.readouterr().err


def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "marker"
    folder = _folder_with(tmp_path, "data_batch_2", {b"data": _CreatesMarker(marker), b"labels": [0]})
    with open(folder / "cifar-10-batches-py" / "data_batch_2", "rb") as f:
        pickle.load(f)  # the payload is real: a plain pickle.load (the code before this change) runs it
    assert marker.exists()
    marker.unlink()

    runs = tmp_path / "runs"
    code, err = _train(folder, runs, capsys)
    assert code == 1
    assert "data_batch_2" in err and "posix.system" in err and "nothing in it was run" in err
    assert not marker.exists()
    assert not runs.exists() or not any(runs.iterdir())


def test_the_detached_start_refuses_before_making_a_run_folder(tmp_path, capsys):
    marker = tmp_path / "marker"
    folder = _folder_with(tmp_path, "test_batch", _CreatesMarker(marker))
    runs = tmp_path / "runs"
    code, err = _train(folder, runs, capsys, "--detach")
    assert code == 1 and "test_batch" in err and not marker.exists()
    assert not runs.exists() or not any(runs.iterdir())


def test_a_payload_inside_a_tarball_is_refused(tmp_path):
    import tarfile

    marker = tmp_path / "marker"
    folder = _folder_with(tmp_path, "data_batch_1", {b"data": _CreatesMarker(marker), b"labels": []})
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    with pytest.raises(DatasetNotFound, match=r"cifar-10-python.tar.gz:cifar-10-batches-py/data_batch_1"):
        load_cifar10(tarball)
    assert not marker.exists()


def _images(n: int = PER_BATCH) -> np.ndarray:
    return np.zeros((n, 3072), np.uint8)


BAD_BATCHES = {
    "fewer labels than images": ({b"data": _images(), b"labels": [0] * (PER_BATCH - 1)}, "59 labels for 60 images"),
    "a label above 9": ({b"data": _images(), b"labels": [10] + [0] * (PER_BATCH - 1)}, "outside 0-9 (e.g. 10)"),
    "a negative label": ({b"data": _images(), b"labels": [-1] + [0] * (PER_BATCH - 1)}, "outside 0-9 (e.g. -1)"),
    "float pixels": ({b"data": _images().astype(np.float32) / 255, b"labels": [0] * PER_BATCH}, "pixels are float"),
    "height x width x channel": ({b"data": np.zeros((PER_BATCH, 32, 32, 3), np.uint8), b"labels": [0] * PER_BATCH},
                                 "height x width x channel"),
    "a wrong size": ({b"data": np.zeros((PER_BATCH, 1024), np.uint8), b"labels": [0] * PER_BATCH}, "not N x 3072"),
    "an object array": ({b"data": np.array([b"x"] * PER_BATCH, dtype=object), b"labels": [0] * PER_BATCH},
                        "not plain numbers"),
    "float labels": ({b"data": _images(), b"labels": [0.5] * PER_BATCH}, "not a list of whole numbers"),
    "not a dict": ([1, 2, 3], "holds a list"),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_bad_data_is_refused_with_its_reason_and_no_run_folder(case, tmp_path, capsys):
    content, reason = BAD_BATCHES[case]
    folder = _folder_with(tmp_path, "data_batch_4", content)
    runs = tmp_path / "runs"
    code, err = _train(folder, runs, capsys)
    assert code == 1
    assert "data_batch_4" in err and reason in err, err
    assert len(err.strip().splitlines()) == 1
    assert not runs.exists() or not any(runs.iterdir())


def test_the_real_batches_pass_the_restricted_unpickler():
    real = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar-10-batches-py"
    if not real.is_dir():
        pytest.skip("../shared/datasets is missing")
    with open(real / "test_batch", "rb") as f:
        raw = data._unpickle(f, "test_batch")
    x, y = data._decode_batch(raw, "test_batch")
    assert x.shape == (10000, 32, 32, 3) and tuple(x[0, 0, 0]) == (158, 112, 49)
    assert np.bincount(y).tolist() == [1000] * 10


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_every_pickle_protocol_of_plain_arrays_still_loads(protocol, tmp_path):
    folder = tmp_path / "data"
    write_fake_cifar(folder)
    for path in (folder / "cifar-10-batches-py").iterdir():
        raw = pickle.loads(path.read_bytes())
        raw[b"labels"] = np.asarray(raw[b"labels"], np.int64)  # an array of labels, as some copies hold
        path.write_bytes(pickle.dumps(raw, protocol=protocol))
    x_train, y_train, _, _, _ = load_cifar10(folder)
    assert x_train.shape == (5 * PER_BATCH, 32, 32, 3) and y_train.tolist()[:3] == [0, 1, 2]
    shutil.rmtree(folder)
