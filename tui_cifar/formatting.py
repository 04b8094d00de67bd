"""Figures as text, with one rule for a missing value: a dash.

The app draws an en dash (–); the CLI prints ASCII (-) for logs and pipes.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

DASH = "–"
ASCII_DASH = "-"


def fmt(value: Any, spec: str = ".3f", dash: str = DASH) -> str:
    """``format(value, spec)`` for a number; the dash for None or anything that is not one."""
    return format(value, spec) if isinstance(value, (int, float)) else dash


def format_pct(value: float | None, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%" if isinstance(value, (int, float)) else DASH


def format_lr(value: float | None) -> str:
    return fmt(value, ".2g")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def format_started(iso: str | None) -> str:
    """An ISO timestamp as local 'YYYY-MM-DD HH:MM' (an unparsable one cut to 16 characters)."""
    if not iso:
        return DASH
    try:
        when = _dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso[:16]
    return when.strftime("%Y-%m-%d %H:%M")


def wrap_items(items: list[str], width: int, sep: str = "  ·  ") -> str:
    """Items joined by ``sep``, lines broken only between items (a narrow screen never cuts "0.42M trainable")."""
    lines: list[str] = []
    line = ""
    for item in items:
        candidate = f"{line}{sep}{item}" if line else item
        if line and len(candidate) > width:
            lines.append(line + sep.rstrip())
            line = item
        else:
            line = candidate
    return "\n".join(lines + [line]) if line else ""


# Terminal control characters (C0, DEL, C1) and the bidirectional overrides that reorder what follows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def lossless_text(name: Any) -> str:
    """A name (a file's, a run folder's) as valid text: bytes that are not UTF-8 (Python keeps them as
    surrogates) written as \\xNN, as `ls -b` and Python's repr show them; everything else unchanged."""
    text = str(name)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def shown(name: Any) -> str:
    """A name as a terminal shows it safely: lossless_text with control characters written as escapes
    (\\x1b, \\n...), so a file name never moves the cursor, recolours or retitles the terminal.
    Rich markup is a separate matter: print names as rich.text.Text, or escape them."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), lossless_text(name))
