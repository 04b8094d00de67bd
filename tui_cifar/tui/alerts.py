"""Telling the user a watched run has ended, even when they look at another window.

The terminal bell, a desktop notification through the terminal (OSC 9, understood by
iTerm2, Windows Terminal, kitty, WezTerm, foot; OSC 777, by VTE terminals such as GNOME
Terminal and by rxvt; both ignored by terminals that know neither), and a Textual toast.
"""

from __future__ import annotations

import re

from textual.app import App

_UNSAFE = re.compile(r"[\x00-\x1f\x7f;]")


def desktop_sequences(title: str, body: str) -> str:
    """OSC 9 and OSC 777 notifications for ``title`` and ``body`` (control characters and ';' removed)."""
    title, body = _UNSAFE.sub(" ", title).strip(), _UNSAFE.sub(" ", body).strip()
    # OSC 9 takes one text; Windows Terminal and ConEmu read "9;<digit>..." as a command, so it starts with the title.
    return f"\x1b]9;{title}: {body}\x07\x1b]777;notify;{title};{body}\x07"


def announce(app: App, title: str, body: str, ok: bool) -> None:
    """Bell, desktop notification (when a real terminal is attached) and a toast in the app."""
    app.bell()
    driver = getattr(app, "_driver", None)  # Textual writes its own OSC 52 (clipboard) through the driver too
    if driver is not None and not app.is_headless:
        driver.write(desktop_sequences(title, body))
    app.notify(body, title=title, severity="information" if ok else "warning", timeout=8)
