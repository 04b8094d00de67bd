"""The two file helpers every module shares: an atomic writer and a JSON-object reader (records' decoder).

No TensorFlow and no Textual: run folders, the feature cache, checkpoints and the
app's settings all write through :func:`atomic_write`.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Have ``write`` fill a temporary file in the same folder, then rename it over ``path``.

    Readers never see half a file, and a failure (full disk, kill) leaves the old file
    as it was. The temporary name ends with the real one (``.tmp-1a2b3c4d-model.keras``)
    because Keras and NumPy choose the format by suffix. An OSError names ``path``,
    the file the user knows, not the temporary one just removed.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{secrets.token_hex(4)}-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the rename must not land before the data does

    atomic_write(path, write)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A JSON object from a file, or None and why not (missing, unreadable, not an object); never raises.

    Through the run files' decoder (records.read_object): bounded in size, nesting and numbers.
    """
    from .records import read_object

    return read_object(path)
