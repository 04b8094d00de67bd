"""Configure screen: the training remembered, validated field by field, and Start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Button, Collapsible, Footer, Header, Input, Label, Select, Static, Switch
from textual.worker import get_current_worker

from ...config import (
    KEEP_ON_PRESET,
    PRESETS,
    SETTING_BY_NAME,
    SETTINGS,
    VAL_FRACTION,
    ConfigError,
    Setting,
    TrainConfig,
    make_config,
    preset_summary,
    with_labels,
)
from ...engine.backbones import BACKBONES
from .. import remembered
from ..messages import StartPreset, StartRun
from ..widgets.setting_help import SettingHelp
from ..workers import in_thread
from .base import CifarScreen

# The form shows config.SETTINGS (TrainConfig's field metadata: label, help, kind, choices),
# the basic settings first, the advanced ones below them (in a collapsible).
FIELDS: tuple[Setting, ...] = (tuple(s for s in SETTINGS if not s.advanced)
                               + tuple(s for s in SETTINGS if s.advanced))
FIELD_BY_NAME = SETTING_BY_NAME
DESCRIBE_FIELDS = ("backbone", "image_size", "fine_tune_blocks")


def parse_text(field: Setting, text: str) -> Any:
    """Form text to a config value; unparsable text is passed on for make_config to name."""
    text = text.strip()
    if field.kind == "path":
        return text or None
    if text == "":
        return None if field.optional else ""
    if field.kind == "blocks" and text.lower() == "all":
        return "all"
    if field.kind in ("int", "blocks"):
        try:
            return int(text.replace("_", "").replace(",", ""))
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return text
    if field.kind == "float":
        try:
            return float(text)
        except ValueError:
            return text
    return text


def shown_value(field: Setting, value: Any) -> str:
    """A value as a person reads it: on/off for switches, 'all' for an empty limit, '10%' for an empty split."""
    if field.kind == "bool":
        return "on" if value else "off"
    if value is None and field.name == "val_size":
        return f"{VAL_FRACTION:.0%}"
    return format_value(field, value) or "all"


def changed_settings(values: dict[str, Any], before: dict[str, Any]) -> list[str]:
    """'Label value' for each experiment setting (not a folder or machine setting) that differs from ``before``.

    A required field left empty is no setting (its own message says so), not "all".
    """
    return [f"{FIELD_BY_NAME[name].label} {shown_value(FIELD_BY_NAME[name], value)}"
            for name, value in values.items()
            if name in FIELD_BY_NAME and name not in KEEP_ON_PRESET and value != before.get(name) and value != ""]


def format_value(field: Setting, value: Any) -> str:
    if value is None:
        return ""
    if field.kind == "float" and isinstance(value, float):
        return f"{value:g}"
    return str(value)


def validate(values: dict[str, Any]) -> tuple[TrainConfig | None, dict[str, str]]:
    """(config, {}) when valid, else (None, {field: message}) for every field found wrong."""
    errors: dict[str, str] = {}
    if not values.get("runs_dir"):
        errors["runs_dir"] = "runs_dir must name a folder"
    for name, value in values.items():
        if name not in SETTING_BY_NAME or name in errors:
            continue
        try:
            make_config({name: value})
        except ConfigError as exc:
            if not exc.fields or exc.fields[0] == name:
                errors[name] = str(exc)
    if errors:
        return None, errors
    try:
        config = make_config({k: v for k, v in values.items() if k in SETTING_BY_NAME})
    except ConfigError as exc:
        for name in exc.fields or ("_form",):
            errors.setdefault(name, str(exc))
        return None, errors
    return config, {}


class FieldRow(Horizontal):
    """Label, control and (below) the field's validation message."""


class ConfigureScreen(CifarScreen):
    """All training settings; Start launches a detached training process."""

    @dataclass
    class EstimateReady(Message):
        """The cost estimate of a config (estimate.estimate_run), as lines to show."""

        config: TrainConfig
        lines: list[str]

    @dataclass
    class DescriptionReady(Message):
        """The parameter count of (backbone, size, blocks), or why it failed."""

        key: tuple
        text: str
        failed: bool

    BINDINGS = [
        Binding("ctrl+s", "start", "Start run", priority=True),
        Binding("ctrl+o", "count_params", "Count params", show=False),
        Binding("escape", "leave_field", "Leave field", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, str] = {}
        self._describe_timer: Timer | None = None
        self._described: tuple | None = None
        self._estimate_timer: Timer | None = None
        self._estimated: TrainConfig | None = None
        self._loading = True


    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="config-actions", classes="toolbar"):
            yield Label("Presets:", classes="toolbar-label")
            for preset in PRESETS:
                yield Button(preset.capitalize(), id=f"preset-{preset}", classes="preset",
                             tooltip=preset_summary(preset))
            yield Static(classes="spacer")
            yield Button("Start ▶ (ctrl+s)", id="start", variant="success")
        yield Static("", id="form-error", classes="field-error")
        yield Static("", id="form-note")
        with Horizontal(id="config-body"):
            with VerticalScroll(id="config-form"):
                for field in FIELDS:
                    if not field.advanced:
                        yield from self._field_row(field)
                with Collapsible(title="Advanced settings", collapsed=True, id="advanced"):
                    for field in FIELDS:
                        if field.advanced:
                            yield from self._field_row(field)
            # Not focusable: a click or Tab that landed here left the typing to the screen's keys (r, e, t
            # switched screens mid-path); the mouse wheel still scrolls it.
            with VerticalScroll(id="config-side", can_focus=False):
                yield SettingHelp(id="setting-help")
                yield Static("", id="run-estimate")
        yield Footer()

    def _field_row(self, field: Setting) -> ComposeResult:
        with Vertical(classes="field", id=f"row-{field.name}"):
            with FieldRow():
                yield Label(field.label, classes="field-label")
                yield self._control(field)
                if field.name == "fine_tune_blocks":
                    yield Button("Count", id="count-params", classes="small", compact=True,
                                 tooltip="count trainable parameters (ctrl+o)")
                    yield Static("", id="blocks-desc", classes="field-side")
                elif field.help and field.kind != "select":  # the backbone list is wide: its help is a tooltip
                    yield Static(field.help, classes="field-side field-help")
            yield Static("", id=f"err-{field.name}", classes="field-error")

    def _control(self, field: Setting) -> Widget:
        wid = f"f-{field.name}"
        if field.kind in ("select", "choice"):
            return Select(list(field.choices), allow_blank=False, id=wid, classes="field-control", compact=True,
                          tooltip=field.help or None)
        if field.kind == "bool":
            return Switch(id=wid, classes="field-switch")
        # No `restrict`: a character it dropped would silently change the entry ("-1" -> "1");
        # what was typed stays, and the message below the field says what is wrong with it.
        placeholder = "all, or a number" if field.kind == "blocks" else ("(default)" if field.optional else "")
        return Input(id=wid, classes="field-control", placeholder=placeholder, compact=True)

    def on_mount(self) -> None:
        values = TrainConfig().to_json()
        saved = remembered.load_last_config() or {}
        values.update({k: v for k, v in saved.items() if k in SETTING_BY_NAME})
        values["runs_dir"] = str(self.cifar.runs_dir)
        if self.cifar.data_dir:
            values["data_dir"] = self.cifar.data_dir
        self.set_values(values)
        from ...engine.data import default_data_dir

        default, origin = default_data_dir()
        if default is not None:  # what an empty Data folder means now
            self.query_one("#f-data_dir", Input).placeholder = f"{default} ({origin.split(' in ')[0]})"
        self._described = self._describe_key()
        cached = self._cached_description()
        self.query_one("#blocks-desc", Static).update(cached or "")
        self.query_one("#f-backbone").focus()
        self.call_after_refresh(self._finish_loading)

    def _finish_loading(self) -> None:
        self._loading = False
        self.revalidate()

    # ------------------------------------------------------------ values
    def set_values(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            field = FIELD_BY_NAME.get(name)
            if field is None:
                continue
            widget = self.query_one(f"#f-{name}")
            if isinstance(widget, Select):
                if value in field.values:
                    widget.value = value
            elif isinstance(widget, Switch):
                widget.value = bool(value)
            elif isinstance(widget, Input):
                widget.value = format_value(field, value)

    def form_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field in FIELDS:
            widget = self.query_one(f"#f-{field.name}")
            if isinstance(widget, Select):
                values[field.name] = None if widget.value is Select.NULL else widget.value
            elif isinstance(widget, Switch):
                values[field.name] = widget.value
            elif isinstance(widget, Input):
                values[field.name] = parse_text(field, widget.value)
        return values

    def revalidate(self) -> TrainConfig | None:
        values = self.form_values()
        config, errors = validate(values)
        self.show_errors(errors)
        if config is not None and config != self._estimated:
            self._estimated = config
            if self._estimate_timer is not None:
                self._estimate_timer.stop()
            self._estimate_timer = self.set_timer(0.5, lambda: self._estimate(config))
        self._show_non_defaults(values)
        return config

    def _show_non_defaults(self, values: dict[str, Any]) -> None:
        """Say which experiment settings differ from the defaults (remembered from the last run, say)."""
        changed = changed_settings(values, TrainConfig().to_json())
        note = self.query_one("#form-note", Static)
        note.update(f"Not the defaults (the Default preset resets them): {', '.join(changed)}." if changed else "")
        note.display = bool(changed)
        note.tooltip = ", ".join(changed) or None  # the whole list, where 24 rows cut the note

    def show_errors(self, errors: dict[str, str]) -> None:
        self.errors = errors
        for field in FIELDS:
            message = with_labels(errors.get(field.name, ""))
            label = self.query_one(f"#err-{field.name}", Static)
            label.update(message)
            label.set_class(bool(message), "-shown")
            self.query_one(f"#f-{field.name}").set_class(bool(message), "-invalid")
            if message and field.advanced:
                self.query_one("#advanced", Collapsible).collapsed = False
        form_error = with_labels(errors.get("_form", ""))
        self.query_one("#form-error", Static).update(form_error)
        self.query_one("#form-error", Static).set_class(bool(form_error), "-shown")

    # ------------------------------------------------------------ events
    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    def _changed(self, event) -> None:
        if self._loading:
            return
        self.revalidate()
        control_id = getattr(event.control, "id", "") or ""
        if control_id.removeprefix("f-") in DESCRIBE_FIELDS:
            self._schedule_describe()

    def on_start_preset(self, message: StartPreset) -> None:
        start_preset(self, self.form_values(), message.preset, str(self.cifar.runs_dir))

    @on(Button.Pressed, ".preset")
    def _preset(self, event: Button.Pressed) -> None:
        self.apply_preset((event.button.id or "").removeprefix("preset-"))

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#count-params")
    def _count_pressed(self) -> None:
        self.action_count_params()

    def apply_preset(self, preset: str) -> None:
        """Set every setting of the experiment (the defaults, then the preset's own) and say which changed."""
        current = self.form_values()
        values = preset_values(preset, current)
        self.set_values(values)
        changed = changed_settings(values, current)
        self.notify(("Set " + ", ".join(changed)) if changed else "The form already had these settings",
                    title=f"Preset '{preset}'", timeout=8)

    def action_start(self) -> None:
        config = self.revalidate()
        if config is None:
            first = next((f for f in FIELDS if f.name in self.errors), None)
            if first is not None:
                self.query_one(f"#f-{first.name}").focus()
            self.notify("Fix the highlighted settings first", title="Not started", severity="warning")
            return
        config = absolute_data_dir(config)
        problem = remembered.save_last_config(config.to_json())
        if problem:
            self.notify(problem, severity="warning")
        self.post_message(StartRun(config))

    def action_leave_field(self) -> None:
        """Escape leaves the field being edited, so the screen keys (c t r e p) work again."""
        self.set_focus(None)

    def on_screen_suspend(self) -> None:
        config, _errors = validate(self.form_values()) if self.is_mounted else (None, {})
        if config is not None:
            remembered.save_last_config(absolute_data_dir(config).to_json())

    # ------------------------------------------------------------ help and cost
    def on_descendant_focus(self, event) -> None:
        """The help panel follows the focus: the setting whose row holds the focused widget."""
        node = event.widget
        while node is not None and node is not self:
            if (node.id or "").startswith("row-"):
                self.query_one(SettingHelp).show(FIELD_BY_NAME[node.id.removeprefix("row-")])
                return
            node = node.parent

    @in_thread("estimate")
    def _estimate(self, config: TrainConfig) -> None:
        from ...runs.estimate import estimate_run

        try:
            lines = estimate_run(config).lines()
        except Exception as exc:  # an unreadable runs folder or an odd record: say so, never a stuck placeholder
            lines = [f"no estimate: {exc}"]
        if not get_current_worker().is_cancelled:
            self.post_message(self.EstimateReady(config, lines))

    @on(EstimateReady)
    def _show_estimate(self, message: EstimateReady) -> None:
        if message.config == self._estimated:
            self.query_one("#run-estimate", Static).update("Cost on this machine\n" + "\n".join(message.lines))

    # ------------------------------------------------------------ parameter count
    def _describe_key(self) -> tuple | None:
        values = self.form_values()
        key = tuple(values.get(name) for name in DESCRIBE_FIELDS)
        backbone, size, blocks = key
        if backbone not in BACKBONES or not isinstance(size, int) or not (blocks == "all" or isinstance(blocks, int)):
            return None
        if any(name in self.errors for name in DESCRIBE_FIELDS):
            return None
        return key

    def _cached_description(self) -> str | None:
        key = self._describe_key()
        return remembered.cached_description(*key) if key else None

    def _schedule_describe(self) -> None:
        key = self._describe_key()
        if key == self._described:
            return
        self._described = key
        desc = self.query_one("#blocks-desc", Static)
        if key is None:
            desc.update("")
            return
        cached = remembered.cached_description(*key)
        if cached:
            desc.update(cached)
            return
        desc.update("counting parameters…")
        if self._describe_timer is not None:
            self._describe_timer.stop()
        self._describe_timer = self.set_timer(0.6, lambda: self._describe(key))

    def action_count_params(self) -> None:
        key = self._describe_key()
        if key is None:
            self.notify("Fix backbone, input size and fine-tune blocks first", severity="warning")
            return
        self.query_one("#blocks-desc", Static).update("counting parameters…")
        self._describe(key)

    @in_thread("describe")
    def _describe(self, key: tuple[str, int, int | str]) -> None:
        worker = get_current_worker()
        try:
            from ...engine import backbones, devices

            devices.configure_for_app(self.cifar.runs_dir)
            text = backbones.describe_fine_tune(*key)
        except Exception as exc:  # shown beside the field; the form stays usable
            text = None
            error = f"cannot count parameters: {exc}"
        if worker.is_cancelled:
            return
        if text is not None:
            remembered.cache_description(*key, text)
            self.post_message(self.DescriptionReady(key, text, False))
        else:
            self.post_message(self.DescriptionReady(key, error, True))

    @on(DescriptionReady)
    def _show_description(self, message: DescriptionReady) -> None:
        key, text, failed = message.key, message.text, message.failed
        if key != self._describe_key():
            return  # the form moved on
        desc = self.query_one("#blocks-desc", Static)
        desc.update(text)
        desc.set_class(failed, "-failed")


def absolute_data_dir(config: TrainConfig) -> TrainConfig:
    """The config with its data folder absolute: remembered and handed to a detached run, it must not depend on
    the folder the app was started from."""
    import dataclasses
    from pathlib import Path

    if not config.data_dir:
        return config
    return dataclasses.replace(config, data_dir=str(Path(config.data_dir).expanduser().resolve()))


def preset_values(preset: str, current: dict[str, Any]) -> dict[str, Any]:
    """A preset's settings: the defaults, the preset's changes, and the machine settings of ``current``."""
    values = {**TrainConfig().to_json(), **PRESETS.get(preset, {})}
    values.update({k: current[k] for k in KEEP_ON_PRESET if current.get(k) is not None})
    return values


def start_preset(node: App | Screen, current: dict[str, Any], preset: str, runs_dir: str) -> None:
    """Ask, then ask the app to start a preset run, keeping the machine settings (folders) of ``current``.

    ``node`` (the configure screen, or the app when that screen was never opened)
    posts the StartRun, or says why the settings cannot make a run.
    """
    from .dialogs import ConfirmScreen

    base = {k: current[k] for k in KEEP_ON_PRESET if current.get(k) is not None}
    base.setdefault("runs_dir", runs_dir)
    try:
        config = make_config(base, preset=preset)
    except ConfigError as exc:
        node.notify(str(exc), title="Cannot start", severity="error")
        return

    def answered(start: bool | None) -> None:
        if start:
            remembered.save_last_config(absolute_data_dir(config).to_json())
            node.post_message(StartRun(absolute_data_dir(config)))

    question = (f"Start a training run with the {preset} preset?\n\n{preset_summary(preset)}; "
                f"every other setting at its default; runs in {config.runs_dir}.")
    node.app.push_screen(ConfirmScreen(question, yes="Start", title=f"Start {preset} run"), answered)
