"""Figures as text, with one rule for a missing value: a dash.

The app draws an en dash (–); the CLI prints ASCII (-) for logs and pipes.
"""

from __future__ import annotations

import datetime as _dt
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
