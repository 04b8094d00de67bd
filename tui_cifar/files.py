"""The two file helpers every module shares: an atomic writer and a bounded JSON reader (records' decoder uses it).

No TensorFlow and no Textual: run folders, the feature cache, checkpoints and the
app's settings all write through :func:`atomic_write`.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


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


# JSON from files someone else may have written (run folders are copied between people): bounded.
MAX_DEPTH = 32  # nesting of objects and lists; the run files nest 4 deep
MAX_FILE_BYTES = 16 * 2**20  # config.json, status.json, report.json (a report is ~20 KB)
_MAX_INT_DIGITS = 16  # longer integers are read as floats (huge ones as infinity): no 4,300-digit ints


class Malformed(ValueError):
    """What makes a run file unusable, in a few words (the readers add the file's name)."""


def _int_or_float(text: str) -> int | float:
    return int(text) if len(text.lstrip("-")) <= _MAX_INT_DIGITS else float(text)


def loads(data: bytes | str, limit: int = MAX_FILE_BYTES) -> Any:
    """JSON from a file someone else may have written: bounded in size, nesting and integer length.

    NaN and Infinity are read (a diverged loss is logged so); raises Malformed, never anything else.
    """
    if len(data) > limit:
        raise Malformed(f"larger than {limit // 2**20} MiB" if limit >= 2**20 else f"longer than {limit} bytes")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, parse_int=_int_or_float)
    except UnicodeDecodeError as exc:
        raise Malformed(f"not UTF-8 text: byte {exc.start}") from None
    except RecursionError:
        raise Malformed(f"nested more than {MAX_DEPTH} levels deep") from None
    except (ValueError, OverflowError) as exc:
        raise Malformed(str(exc)) from None
    if _depth(value) > MAX_DEPTH:
        raise Malformed(f"nested more than {MAX_DEPTH} levels deep")
    return value


def _depth(value: Any) -> int:
    """How deep lists and objects nest (iteratively: a reader's recursion must not be the limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_json(path: Path, limit: int = MAX_FILE_BYTES) -> tuple[dict[str, Any] | None, str | None]:
    """A JSON object from a file, or None and why not ("NAME is missing" / "NAME is unreadable (why)"); never raises."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
        value = loads(data, limit)
    except FileNotFoundError:
        return None, f"{path.name} is missing"
    except OSError as exc:
        return None, f"{path.name} is unreadable ({exc.strerror or exc})"
    except Malformed as exc:
        return None, f"{path.name} is unreadable ({exc})"
    if not isinstance(value, dict):
        return None, f"{path.name} is unreadable (not a JSON object)"
    return value, None

