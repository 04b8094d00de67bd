"""The two file helpers every module shares: an atomic writer and a JSON-object reader.

No TensorFlow and no Textual: run folders, the feature cache, checkpoints and the
app's settings all write through :func:`atomic_write`.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable, Iterable


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
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


# A spreadsheet takes a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell: a number as it is; text (names of files and runs may be anyone's) lossless and valid
    UTF-8 (formatting.lossless_text), with a leading quote when a spreadsheet would read it as a formula."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    from .formatting import lossless_text

    text = lossless_text(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def atomic_write_csv(path: Path, header: list[str], rows: Iterable[Iterable[Any]]) -> int:
    """A whole CSV or none (atomic_write); every cell through csv_cell. Returns the number of rows written.
    ``rows`` may be a generator: it is streamed, never held."""
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        with open(tmp, "x", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow([csv_cell(h) for h in header])
            for row in rows:
                writer.writerow([csv_cell(v) for v in row])
                count += 1
            f.flush()
            os.fsync(f.fileno())

    atomic_write(Path(path), write)
    return count


def read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A JSON object from a file, or None and why not (missing, unreadable, not an object); never raises."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"{Path(path).name} is missing"
    except (OSError, ValueError) as exc:
        return None, f"{Path(path).name} is unreadable ({exc})"
    if not isinstance(data, dict):
        return None, f"{Path(path).name} does not hold a JSON object"
    return data, None
