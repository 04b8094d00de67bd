"""The configure screen's help panel: the focused setting explained (config.SETTINGS' ``explain``)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ...config import Setting


def describe(setting: Setting) -> Text:
    """Label, explanation, allowed values and default of a setting, as the panel shows them."""
    text = Text(setting.label, style="bold")
    text.append("\n")
    text.append(setting.explain or setting.help)
    facts = []
    if setting.range is not None:
        lo, hi = setting.range
        facts.append(f"allowed {lo:g} to {hi:g}")
    elif setting.kind == "choice":
        facts.append("one of " + ", ".join(setting.values))
    if setting.default is not None and setting.kind not in ("select", "path"):
        facts.append(f"default {setting.default}")
    if facts:
        text.append("\n" + "; ".join(facts), style="dim")
    return text


class SettingHelp(Static):
    """Explains the setting whose field has the focus; ``setting`` is the one shown (None: the general hint)."""

    HINT = "Move to a setting (tab, arrows) to see what it does, its trade-off and a sensible range."

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(self.HINT, id=id)
        self.setting: Setting | None = None

    def show(self, setting: Setting | None) -> None:
        self.setting = setting
        self.update(describe(setting) if setting is not None else self.HINT)
