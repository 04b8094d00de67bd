"""CIFAR-10 loading: a local folder or tarball first, then the Keras cache/download.

Importing this module does not import TensorFlow; only the Keras fallback does.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CifarTuiError

CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
BATCH_FOLDER = "cifar-10-batches-py"
TARBALL = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
# The data folder for every command and the app when none is given: this variable, else the folder a successful
# `train --data-dir` (or the app's "choose the folder") remembered for this user.
DATA_DIR_ENV = "CIFAR_TUI_DATA_DIR"
REMEMBERED_DATA_DIR = "data_dir.json"  # in paths.config_dir()


class DatasetNotFound(CifarTuiError):
    """CIFAR-10 is nowhere to be found; the message lists every place tried and what to do."""


@dataclass
class Splits:
    """uint8 images (N, 32, 32, 3) and int labels; the test split is for the final report only."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


class UnsafeDataError(ValueError):
    """A data file that is not plain CIFAR-10 data (code in a pickle, wrong shapes or types); names the file."""


# What the official "python version" batches may reference, and nothing else: numpy's array
# reconstruction (and protocol 5's buffer form), the dtype of an array, and the latin-1 bytes
# codec that protocol 2 pickles use. Everything else (os.system, builtins.eval...) is refused.
class _Refused(pickle.UnpicklingError):
    """Something a CIFAR-10 batch never holds, met while unpickling (and not built)."""


_SIMPLE_DTYPE = re.compile(r"[|<>=]?[biu][1248]|[|<>=]?f[248]")


def _checked_dtype(spec, align=False, copy=False):
    """numpy.dtype for plain numbers only: an object dtype would let an array hold any pickled object."""
    if isinstance(spec, bytes):  # a Python 2 pickle read with encoding="bytes"
        spec = spec.decode("latin1")
    if not isinstance(spec, str) or not _SIMPLE_DTYPE.fullmatch(spec):
        raise _Refused(f"an array of type {spec!r}, not plain numbers")
    return np.dtype(spec, bool(align), bool(copy))


def _checked_reconstruct(subtype, shape, dtype):
    """numpy's _reconstruct: an empty plain array, whose pickled state (BUILD) then sets dtype, shape and bytes."""
    if subtype is not np.ndarray:
        raise _Refused("an array subclass")
    return np.ndarray((0,), np.uint8)


def _checked_frombuffer(buffer, dtype, shape, order):
    if not isinstance(buffer, (bytes, bytearray)) or not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise _Refused("an array buffer that is not plain bytes")
    array = np.frombuffer(buffer, dtype=dtype)
    return array.reshape(shape, order="F" if order == "F" else "C").copy()


def _latin1_encode(text, encoding="latin1"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("a codec call other than latin-1 bytes")
    return text.encode("latin1")


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _checked_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _checked_reconstruct,
    ("numpy._core.numeric", "_frombuffer"): _checked_frombuffer,
    ("numpy.core.numeric", "_frombuffer"): _checked_frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _checked_dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _BatchUnpickler(pickle.Unpickler):
    """pickle.Unpickler that builds plain data only: find_class admits what a CIFAR-10 batch holds."""

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"it refers to {module}.{name}, which CIFAR-10 data never does") from None


def _unpickle(file, where: str) -> dict:
    """One batch, read without running any code it might carry; UnsafeDataError naming ``where`` otherwise."""
    try:
        raw = _BatchUnpickler(file, encoding="bytes").load()
    except _Refused as exc:
        raise UnsafeDataError(f"{where}: {exc}; it is not a CIFAR-10 batch (nothing in it was run)") from exc
    if not isinstance(raw, dict):
        raise UnsafeDataError(f"{where} holds a {type(raw).__name__}, not a CIFAR-10 batch (a dict)")
    return raw


def _decode_batch(raw: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,) int64), checked against the official layout before use."""
    data = raw.get(b"data", raw.get("data"))
    labels = raw.get(b"labels", raw.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{where}: batch has no data/labels")
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "biuf":
        raise UnsafeDataError(f"{where}: data is a {type(data).__name__}, not an array of pixels")
    if data.dtype != np.uint8:
        kind = "float" if data.dtype.kind == "f" else str(data.dtype)
        raise UnsafeDataError(f"{where}: pixels are {kind} ({data.dtype}), not bytes (uint8 0-255)")
    if data.ndim == 4 and data.shape[1:] == (32, 32, 3):
        raise UnsafeDataError(f"{where}: images are laid out height x width x channel {data.shape}; "
                              "the official layout is N x 3072 (1024 red, 1024 green, 1024 blue bytes)")
    if data.ndim != 2 or data.shape[1] != 3072:
        raise UnsafeDataError(f"{where}: data has shape {data.shape}, not N x 3072 (32x32 RGB planes)")
    if isinstance(labels, np.ndarray):
        labels = labels.tolist()
    if not isinstance(labels, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        raise UnsafeDataError(f"{where}: labels are not a list of whole numbers")
    if len(labels) != len(data):
        raise UnsafeDataError(f"{where}: {len(labels)} labels for {len(data)} images")
    bad = [v for v in labels if not 0 <= v < len(CLASS_NAMES)]
    if bad:
        raise UnsafeDataError(f"{where}: {len(bad)} labels outside 0-9 (e.g. {bad[0]})")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64)


def _read_folder(folder: Path, batches: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    for name in batches:
        with open(folder / name, "rb") as f:
            parts.append(_decode_batch(_unpickle(f, str(folder / name)), str(folder / name)))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _read_tarball(path: Path, batches: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    with tarfile.open(path, "r:gz") as tar:
        for name in batches:
            try:
                member = tar.extractfile(f"{BATCH_FOLDER}/{name}")
            except KeyError:  # tarfile's way of saying the member is absent
                member = None
            if member is None:
                raise ValueError(f"{name} missing from {path}")
            where = f"{path}:{BATCH_FOLDER}/{name}"
            parts.append(_decode_batch(_unpickle(member, where), where))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _local_candidates(data_dir: Path) -> list[Path]:
    """The places a --data-dir may point at, in the order they are tried."""
    return [data_dir, data_dir / BATCH_FOLDER, data_dir / TARBALL]


def _keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def default_data_dir() -> tuple[Path | None, str]:
    """The data folder used when none is given, and where it comes from: $CIFAR_TUI_DATA_DIR, else the remembered one."""
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser(), f"${DATA_DIR_ENV}"
    from ..files import read_json
    from ..paths import config_dir

    folder = (read_json(config_dir() / REMEMBERED_DATA_DIR)[0] or {}).get("folder")
    if isinstance(folder, str) and folder:
        return Path(folder), f"remembered in {config_dir() / REMEMBERED_DATA_DIR}"
    return None, ""


def remember_data_dir(folder: str | os.PathLike) -> Path:
    """Remember a folder that holds CIFAR-10, as an absolute path, for the next command or app session without one."""
    from ..files import atomic_write_json
    from ..paths import config_dir

    folder = Path(folder).expanduser().resolve()
    config_dir().mkdir(parents=True, exist_ok=True)
    atomic_write_json(config_dir() / REMEMBERED_DATA_DIR, {"folder": str(folder)})
    return folder


def find_cifar10(data_dir: str | os.PathLike | None = None) -> str | None:
    """Where CIFAR-10 would be read from without a download (a quick look: no file is read), or None.

    The places load_cifar10 tries: ``data_dir``, else the default data folder; then what Keras unpacked in its cache.
    """
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()[0]
    candidates = _local_candidates(folder) if folder is not None else []
    candidates += sorted(_keras_cache_dir().glob(f"cifar-10-batches-py*/{BATCH_FOLDER}"))
    for candidate in candidates:
        if candidate.is_dir() and all((candidate / b).is_file() for b in (*TRAIN_BATCHES, TEST_BATCH)):
            return str(candidate)
        if candidate.is_file() and candidate.name.endswith((".tar.gz", ".tgz")):
            return str(candidate)
    return None


def _load_local(data_dir: Path, batches: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, str] | None:
    for candidate in _local_candidates(data_dir):
        if candidate.is_dir() and all((candidate / b).is_file() for b in batches):
            x, y = _read_folder(candidate, batches)
            return x, y, str(candidate)
        if candidate.is_file() and candidate.name.endswith((".tar.gz", ".tgz")):
            x, y = _read_tarball(candidate, batches)
            return x, y, str(candidate)
    return None


def _load_keras() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    return x_train, y_train.reshape(-1), x_test, y_test.reshape(-1)


def load_cifar10(data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """(x_train, y_train, x_test, y_test, source), or DatasetNotFound naming every place tried.

    Without ``data_dir``: the default data folder ($CIFAR_TUI_DATA_DIR or the remembered one), then Keras' cache
    and its download.
    """
    tried: list[str] = []
    origin = ""
    if data_dir is None:
        data_dir, origin = default_data_dir()
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        with _dataset_errors(folder):
            train = _load_local(folder, TRAIN_BATCHES)
            test = _load_local(folder, (TEST_BATCH,))
        if train and test:
            return train[0], train[1], test[0], test[1], train[2]
        tried += [f"{p}{f' ({origin})' if origin else ''}" for p in _local_candidates(folder)]
    cache = _keras_cache_dir()
    try:
        x_train, y_train, x_test, y_test = _load_keras()
        return x_train, y_train, x_test, y_test, f"keras.datasets.cifar10 ({cache})"
    except Exception as exc:  # network errors come in many types (URLError, OSError, Exception)
        # Keras says "URL fetch failure on URL: None -- REASON": the reason is the useful part.
        reason = str(exc).rsplit(" -- ", 1)[-1] if " -- " in str(exc) else f"{type(exc).__name__}: {exc}"
        tried.append(f"the Keras cache {cache} and its download (failed: {' '.join(reason.split())[:200]})")
    lines = "\n".join(f"  - {t}" for t in tried)
    raise DatasetNotFound(
        "CIFAR-10 was not found. Looked in:\n"
        f"{lines}\n"
        f"Fix: connect to the internet once (Keras downloads it to {cache}), or pass "
        "--data-dir PATH pointing at a folder holding cifar-10-batches-py/ (the official python "
        f"version) or cifar-10-python.tar.gz (`train --data-dir` remembers it; ${DATA_DIR_ENV} sets it too)."
    )


def check_local_data(data_dir: str | os.PathLike | None) -> None:
    """Read and check a --data-dir's batches as training will (DatasetNotFound if refused or unreadable).

    Called before a run folder is made, so bad data never leaves a run behind. Data that is not
    in the folder is left to the training process (the Keras cache and its download).
    """
    if data_dir is None:
        return
    folder = Path(data_dir).expanduser()
    with _dataset_errors(folder):
        for batches in (TRAIN_BATCHES, (TEST_BATCH,)):
            _load_local(folder, batches)


@contextlib.contextmanager
def _dataset_errors(folder: Path):
    """A local folder's read failures as one DatasetNotFound naming the folder (and the file, when refused)."""
    try:
        yield
    except UnsafeDataError as exc:
        raise DatasetNotFound(f"CIFAR-10 under {folder} is refused: {exc}") from exc
    except (OSError, ValueError, pickle.UnpicklingError, tarfile.TarError, EOFError) as exc:
        raise DatasetNotFound(f"CIFAR-10 under {folder} is unreadable or incomplete: {exc}") from exc


def _stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a class-balanced random subset of size n (all indices when n >= len(y))."""
    if n >= len(y):
        return np.arange(len(y))
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    return np.sort(keep)


def make_splits(
    data_dir: str | None,
    val_size: int,
    seed: int,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> Splits:
    """A seeded, stratified validation split carved from the training images."""
    from sklearn.model_selection import train_test_split

    x_train, y_train, x_test, y_test, source = load_cifar10(data_dir)
    if limit_train:
        keep = _stratified_subset(y_train, limit_train, seed)
        x_train, y_train = x_train[keep], y_train[keep]
    if limit_test:
        keep = _stratified_subset(y_test, limit_test, seed)
        x_test, y_test = x_test[keep], y_test[keep]
    train_idx, val_idx = train_test_split(
        np.arange(len(y_train)), test_size=val_size, stratify=y_train, random_state=seed
    )
    return Splits(
        x_train[train_idx], y_train[train_idx], x_train[val_idx], y_train[val_idx], x_test, y_test, source
    )


def test_indices(limit_test: int | None, seed: int, y_test: np.ndarray) -> np.ndarray:
    """Which images of the official test set a run's report used (for showing them later)."""
    return _stratified_subset(y_test, limit_test or len(y_test), seed)


def load_test_images(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The full official test set, for showing misclassified images."""
    _, _, x_test, y_test, _ = load_cifar10(data_dir)
    return x_test, y_test
