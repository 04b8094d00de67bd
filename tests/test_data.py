"""tui_cifar.engine.data: local folders and tarballs, the seeded stratified split, clear errors."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tui_cifar.engine import data
from tui_cifar.engine.data import CLASS_NAMES, DatasetNotFound, load_cifar10, make_splits

PER_BATCH = 60  # conftest.write_fake_cifar's default


def _expected(fake_cifar: Path):
    """The fake data read the way the DATA.md says any reader may: a plain pickle.load."""
    folder = fake_cifar / "cifar-10-batches-py"

    def read(name):
        with open(folder / name, "rb") as f:
            raw = pickle.load(f, encoding="bytes")
        x = np.asarray(raw[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return x, np.asarray(raw[b"labels"])

    train = [read(f"data_batch_{i}") for i in range(1, 6)]
    return np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]), *read("test_batch")


def _check_loaded(loaded, fake_cifar):
    x_train, y_train, x_test, y_test, source = loaded
    ex_train, ey_train, ex_test, ey_test = _expected(fake_cifar)
    assert x_train.shape == (5 * PER_BATCH, 32, 32, 3) and x_train.dtype == np.uint8
    assert x_test.shape == (PER_BATCH, 32, 32, 3)
    np.testing.assert_array_equal(x_train, ex_train)
    np.testing.assert_array_equal(y_train, ey_train)
    np.testing.assert_array_equal(x_test, ex_test)
    np.testing.assert_array_equal(y_test, ey_test)
    return source


def test_images_are_decoded_from_rgb_planes(tmp_path):
    """CIFAR stores 1024 R, then 1024 G, then 1024 B bytes, row-major."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    image = np.zeros((32, 32, 3), np.uint8)
    image[0, 1] = (10, 20, 30)  # row 0, column 1
    image[5, 0] = (200, 100, 50)
    row = image.transpose(2, 0, 1).reshape(-1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": row[None], b"labels": [7]}, f)
    x_train, y_train, _, _, _ = load_cifar10(tmp_path)
    assert tuple(x_train[0, 0, 1]) == (10, 20, 30)
    assert tuple(x_train[0, 5, 0]) == (200, 100, 50)
    assert y_train.tolist() == [7] * 5


def test_load_from_the_folder_holding_the_batches_folder(fake_cifar):
    source = _check_loaded(load_cifar10(fake_cifar), fake_cifar)
    assert source == str(fake_cifar / "cifar-10-batches-py")


def test_load_from_the_batches_folder_itself(fake_cifar):
    source = _check_loaded(load_cifar10(fake_cifar / "cifar-10-batches-py"), fake_cifar)
    assert source == str(fake_cifar / "cifar-10-batches-py")


def test_load_expands_the_home_folder(fake_cifar, monkeypatch):
    monkeypatch.setenv("HOME", str(fake_cifar.parent))
    _check_loaded(load_cifar10(f"~/{fake_cifar.name}"), fake_cifar)


def _make_tarball(fake_cifar: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(fake_cifar / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return dest


def test_load_from_the_official_tarball_in_a_folder(fake_cifar, tmp_path):
    _make_tarball(fake_cifar, tmp_path / "cifar-10-python.tar.gz")
    source = _check_loaded(load_cifar10(tmp_path), fake_cifar)
    assert source == str(tmp_path / "cifar-10-python.tar.gz")


def test_load_from_a_tarball_path(fake_cifar, tmp_path):
    tarball = _make_tarball(fake_cifar, tmp_path / "my-copy.tar.gz")
    assert _check_loaded(load_cifar10(tarball), fake_cifar) == str(tarball)


def test_a_truncated_tarball_is_reported_not_crashed_on(fake_cifar, tmp_path):
    tarball = _make_tarball(fake_cifar, tmp_path / "cifar-10-python.tar.gz")
    tarball.write_bytes(tarball.read_bytes()[: tarball.stat().st_size // 2])
    with pytest.raises(DatasetNotFound, match=str(tmp_path)):
        load_cifar10(tmp_path)


def test_a_tarball_missing_a_batch_is_reported(fake_cifar, tmp_path):
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name in ["data_batch_1", "test_batch"]:
            tar.add(fake_cifar / "cifar-10-batches-py" / name, arcname=f"cifar-10-batches-py/{name}")
    with pytest.raises(DatasetNotFound, match="unreadable or incomplete"):
        load_cifar10(tmp_path)


def _keras_load_fails(monkeypatch):
    import keras

    def offline():
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)


def test_not_found_lists_every_place_tried(tmp_path, monkeypatch):
    _keras_load_fails(monkeypatch)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "khome"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFound) as info:
        load_cifar10(empty)
    message = str(info.value)
    for place in (empty, empty / "cifar-10-batches-py", empty / "cifar-10-python.tar.gz", tmp_path / "khome" / "datasets"):
        assert str(place) in message
    assert "OSError" in message and "network is unreachable" in message
    assert "--data-dir" in message  # and what to do about it


def test_not_found_without_a_data_dir_names_the_keras_cache(tmp_path, monkeypatch):
    _keras_load_fails(monkeypatch)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "khome"))
    with pytest.raises(DatasetNotFound, match=str(tmp_path / "khome" / "datasets")):
        load_cifar10(None)


def test_an_incomplete_folder_falls_through_with_the_places_listed(fake_cifar, tmp_path, monkeypatch):
    _keras_load_fails(monkeypatch)
    partial = tmp_path / "cifar-10-batches-py"
    partial.mkdir()
    (partial / "data_batch_1").write_bytes((fake_cifar / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    with pytest.raises(DatasetNotFound, match="cifar-10-batches-py"):
        load_cifar10(tmp_path)


def test_a_garbled_batch_is_reported(fake_cifar, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for src in (fake_cifar / "cifar-10-batches-py").iterdir():
        (folder / src.name).write_bytes(src.read_bytes())
    (folder / "data_batch_3").write_bytes(b"this is not a pickle")
    with pytest.raises(DatasetNotFound, match="unreadable"):
        load_cifar10(tmp_path)


# --- splits -----------------------------------------------------------------------------------


def _rows(x: np.ndarray) -> set[bytes]:
    return {img.tobytes() for img in x}


def test_validation_split_is_stratified_disjoint_and_complete(fake_cifar):
    s = make_splits(str(fake_cifar), val_size=50, seed=3)
    assert len(s.y_val) == 50 and len(s.y_train) == 250 and len(s.y_test) == PER_BATCH
    assert s.x_train.dtype == np.uint8 and s.x_train.shape[1:] == (32, 32, 3)
    val_counts = np.bincount(s.y_val, minlength=10)
    assert val_counts.max() - val_counts.min() <= 1
    train_counts = np.bincount(s.y_train, minlength=10)
    assert train_counts.max() - train_counts.min() <= 1
    # The fake images are all distinct (noise), so pixel rows identify images.
    x_all, y_all, x_test, _ = _expected(fake_cifar)
    assert len(_rows(x_all)) == len(x_all)
    assert _rows(s.x_train).isdisjoint(_rows(s.x_val))
    assert _rows(s.x_train) | _rows(s.x_val) == _rows(x_all)
    assert _rows(s.x_test) == _rows(x_test)
    assert _rows(s.x_test).isdisjoint(_rows(s.x_train) | _rows(s.x_val))
    # labels travel with their images
    lookup = {img.tobytes(): y for img, y in zip(x_all, y_all)}
    assert all(lookup[img.tobytes()] == y for img, y in zip(s.x_val, s.y_val))
    assert all(lookup[img.tobytes()] == y for img, y in zip(s.x_train, s.y_train))


def test_same_seed_same_split_other_seed_other_split(fake_cifar):
    a = make_splits(str(fake_cifar), val_size=50, seed=7)
    b = make_splits(str(fake_cifar), val_size=50, seed=7)
    c = make_splits(str(fake_cifar), val_size=50, seed=8)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert _rows(a.x_val) != _rows(c.x_val)


def test_limit_train_and_limit_test_are_stratified_subsets(fake_cifar):
    s = make_splits(str(fake_cifar), val_size=20, seed=1, limit_train=100, limit_test=30)
    assert len(s.y_train) + len(s.y_val) == 100
    assert len(s.y_val) == 20
    assert len(s.y_test) == 30
    assert np.bincount(s.y_test, minlength=10).tolist() == [3] * 10
    assert np.bincount(np.concatenate([s.y_train, s.y_val]), minlength=10).tolist() == [10] * 10
    x_all, _, x_test, _ = _expected(fake_cifar)
    assert _rows(s.x_train) | _rows(s.x_val) <= _rows(x_all)
    assert _rows(s.x_test) <= _rows(x_test)


def test_limits_at_or_above_the_data_size_keep_everything(fake_cifar):
    s = make_splits(str(fake_cifar), val_size=50, seed=1, limit_train=50000, limit_test=10000)
    assert len(s.y_train) + len(s.y_val) == 5 * PER_BATCH and len(s.y_test) == PER_BATCH


@pytest.mark.parametrize("limit_test", [None, 20, 30, 10000])
def test_test_indices_match_the_test_subset_of_make_splits(fake_cifar, limit_test):
    s = make_splits(str(fake_cifar), val_size=50, seed=11, limit_test=limit_test)
    _, _, x_test, y_test, _ = load_cifar10(fake_cifar)
    index = data.test_indices(limit_test, 11, y_test)  # (not imported by name: pytest would collect it)
    assert len(index) == len(s.y_test) and len(set(index.tolist())) == len(index)
    np.testing.assert_array_equal(x_test[index], s.x_test)
    np.testing.assert_array_equal(y_test[index], s.y_test)


def test_load_test_images_is_the_full_official_test_set(fake_cifar):
    x, y = data.load_test_images(str(fake_cifar))
    _, _, ex, ey = _expected(fake_cifar)
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)


def test_class_names_are_cifar10s_in_label_order():
    assert CLASS_NAMES == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
