"""Training configuration: one validated dataclass shared by the CLI, the TUI and run folders."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .backbones import BACKBONES
from .hardware import parse_devices
from . import runstore
from .runstore import CONFIG_FILE, RunStoreError, no_cifar_model_reason


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message names the field."""


def setting(default: Any, label: str, help: str = "", *, range: tuple[float, float] | None = None,
            choices: tuple[tuple[str, str], ...] = (), kind: str | None = None, advanced: bool = False,
            flag: str | None = None) -> Any:
    """A TrainConfig field with what the CLI and the configure form need to show and check it.

    Each setting is declared here once: its label, help text, allowed range or choices;
    ``cli.py`` derives the ``train`` flags from it and the configure screen its form.
    """
    return field(default=default, metadata={
        "label": label, "help": help, "range": range, "choices": choices, "kind": kind,
        "advanced": advanced, "flag": flag,
    })


_BACKBONE_CHOICES = tuple((f"{spec.label} — {spec.description}", name) for name, spec in BACKBONES.items())


# The field order is the form's order (basic settings first, then the advanced ones).
@dataclass
class TrainConfig:
    backbone: str = setting("mobilenetv2", "Backbone", "see `cifar-tui backbones`", choices=_BACKBONE_CHOICES,
                            kind="select")
    image_size: int = setting(160, "Input size (px)", "CIFAR's 32 px images are upscaled to this", range=(32, 600))
    # Blocks of the backbone unfrozen in stage 2: an int, or "all".
    fine_tune_blocks: int | str = setting(3, "Fine-tune blocks", "top blocks unfrozen in stage 2 (a number or 'all')",
                                          choices=(("all", "all"),), kind="blocks")
    epochs_head: int = setting(8, "Epochs, stage 1 (head)", "new classifier head on frozen features", range=(0, 1000))
    epochs_fine: int = setting(6, "Epochs, stage 2 (fine-tune)", "0 skips fine-tuning", range=(0, 1000))
    lr_head: float = setting(2e-3, "Learning rate, stage 1", "for head_batch_size 512", range=(1e-7, 1.0))
    lr_fine: float = setting(3e-4, "Learning rate, stage 2", range=(1e-8, 1.0))
    batch_size: int = setting(128, "Batch size", "stage 2", range=(1, 4096))  # stage 2 (and end-to-end) batches
    # Stage 1 trains on cached feature vectors, where a step costs little but Keras' per-step
    # overhead: larger batches make its epochs several times faster.
    head_batch_size: int = setting(512, "Batch size, stage 1", "on cached features", range=(1, 16384), advanced=True)
    dropout: float = setting(0.3, "Dropout", range=(0.0, 0.95), advanced=True)
    label_smoothing: float = setting(0.1, "Label smoothing", range=(0.0, 0.5), advanced=True)
    weight_decay: float = setting(1e-4, "Weight decay", range=(0.0, 1.0), advanced=True)
    augment: bool = setting(True, "Augmentation", "mirrored view of every image (+ crops end to end)")
    tta_flip: bool = setting(True, "Test-time flip (TTA)", "average each test image with its mirror", flag="--no-tta")
    val_size: int = setting(5000, "Validation images", "held out of the training set", range=(10, 25000), advanced=True)
    patience: int = setting(3, "Early-stopping patience", "epochs without val improvement", range=(1, 1000),
                            advanced=True)
    seed: int = setting(42, "Random seed", range=(0, 2**31 - 1), advanced=True)
    limit_train: int | None = setting(None, "Limit training images", "a stratified subset (empty: all 50,000)",
                                      range=(20, 50000), advanced=True)
    limit_test: int | None = setting(None, "Limit test images", "a stratified subset (empty: all 10,000)",
                                     range=(10, 10000), advanced=True)
    mixed_precision: str = setting("auto", "Mixed precision", "float16 compute (auto: on with a GPU)",
                                   choices=(("auto (GPU only)", "auto"), ("on", "on"), ("off", "off")), advanced=True)
    weights: str = setting("imagenet", "Backbone weights", "none: random weights (tests)",
                           choices=(("ImageNet", "imagenet"), ("none (random)", "none")), advanced=True)
    data_dir: str | None = setting(None, "Data folder", "CIFAR-10 location (empty: the default)", kind="path")
    runs_dir: str = setting("runs", "Runs folder", "where run folders are created", kind="path")
    cache_dir: str | None = setting(None, "Feature cache folder", "empty: the default", kind="path", advanced=True)
    # Who runs the frozen forward passes (features, test report, prediction).
    runtime: str = setting("auto", "Forward-pass runtime", "auto: LiteRT (XNNPACK) on a CPU, TensorFlow on a GPU",
                           choices=(("auto", "auto"), ("LiteRT", "litert"), ("Keras/TensorFlow", "keras")),
                           advanced=True)
    devices: str = setting("auto", "Devices", "auto (every GPU, else the CPU), cpu, or GPU numbers: 0 or 0,1",
                           kind="devices", advanced=True)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def run_name(self) -> str:
        return f"{self.backbone}-{self.image_size}px"


@dataclass(frozen=True)
class Setting:
    """One TrainConfig field as the CLI and the configure form see it.

    ``kind`` is one of select, choice, bool, int, float, blocks (a count or a word), devices, path;
    ``choices`` are (label, value) pairs.
    """

    name: str
    label: str
    kind: str
    help: str
    default: Any
    types: tuple[type, ...]  # the declared type, e.g. (int, NoneType) for ``int | None``
    optional: bool  # None allowed (an empty form field)
    advanced: bool
    choices: tuple[tuple[str, str], ...]
    range: tuple[float, float] | None
    flag: str  # the `cifar-tui train` option

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(value for _label, value in self.choices)


def _settings() -> tuple[Setting, ...]:
    hints = typing.get_type_hints(TrainConfig)
    out = []
    for f in fields(TrainConfig):
        meta = f.metadata
        types = typing.get_args(hints[f.name]) or (hints[f.name],)
        plain = [t for t in types if t is not type(None)]
        kind = meta["kind"] or ("choice" if meta["choices"] else
                                {bool: "bool", int: "int", float: "float"}.get(plain[0], "path"))
        dashed = f.name.replace("_", "-")
        flag = meta["flag"] or (f"--no-{dashed}" if f.default is True else f"--{dashed}")
        out.append(Setting(f.name, meta["label"], kind, meta["help"], f.default, types, type(None) in types,
                           meta["advanced"], meta["choices"], meta["range"], flag))
    return tuple(out)


SETTINGS: tuple[Setting, ...] = _settings()
SETTING_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


PRESETS: dict[str, dict[str, Any]] = {
    # The fastest run that beats the seed notebook: the head alone on 4,500 images at 112 px
    # (79.0% with its model ready 10 s after the start, 35 s with the test report; bench/RESULTS.md).
    # Chosen on validation accuracy (bench/quick_sweep.json): 112 px gave the most accuracy per
    # second of feature extraction, and short, brisk head training suits so few images.
    "quick": {"image_size": 112, "limit_train": 5000, "val_size": 500, "fine_tune_blocks": 0,
              "epochs_head": 12, "epochs_fine": 0, "augment": False, "tta_flip": False,
              "head_batch_size": 128, "lr_head": 3e-3},
    # The default: 92.3% in about 9 minutes on a 2-core CPU (bench/RESULTS.md).
    "default": {},
    # More resolution, depth and epochs: 94.2% in about 25 minutes on a 2-core CPU.
    "best": {"image_size": 192, "fine_tune_blocks": 5, "epochs_fine": 12, "patience": 5},
}


def _check_type(s: Setting, value: Any) -> Any:
    """The value as its declared type (a whole float is an int, an int a float), or a ConfigError naming the setting."""
    name = s.name
    if value is None and s.optional:
        return None
    if s.kind == "blocks":  # a count or a word: fine_tune_blocks is 3 or "all"
        if value in s.values:
            return value
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            words = " or ".join(repr(w) for w in s.values)
            raise ConfigError(f"{name} must be a whole number >= 0 or {words}, not {value!r}")
        return value
    if s.kind == "devices":
        try:
            parse_devices(value)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return str(value).strip().lower()
    if s.choices:
        if value not in s.values:
            raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(s.values)}")
        return value
    if bool in s.types:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, not {value!r}")
        return value
    if int in s.types:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{name} must be a whole number, not {value!r}")
        return int(value)
    if float in s.types:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, not {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be text, not {value!r}")
    return value


def make_config(values: dict[str, Any] | None = None, preset: str | None = None) -> TrainConfig:
    """Build a validated TrainConfig from a preset plus overrides; unknown keys are refused."""
    merged: dict[str, Any] = {}
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        merged.update(PRESETS[preset])
    merged.update({k: v for k, v in (values or {}).items()})
    unknown = sorted(set(merged) - set(SETTING_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
    checked = {}
    for name, value in merged.items():
        s = SETTING_BY_NAME[name]
        value = _check_type(s, value)
        if s.range is not None and value is not None:
            lo, hi = s.range
            if not lo <= value <= hi:
                raise ConfigError(f"{name} must be between {lo:g} and {hi:g}, not {value!r}")
        checked[name] = value
    config = TrainConfig(**checked)
    if config.epochs_head + config.epochs_fine == 0:
        raise ConfigError("epochs_head and epochs_fine are both 0: nothing to train")
    train_pool = config.limit_train or 50000
    if config.val_size >= train_pool:
        raise ConfigError(f"val_size ({config.val_size}) must be smaller than the training images ({train_pool})")
    return config


# A run folder's config.json, written by this or another version, is judged here and only here:
# config_file_problems for listing runs (never raises), config_from_run for using one.


def config_file_problems(config: dict[str, Any]) -> list[str]:
    """What makes a run's config.json differ from this version's settings (unknown or missing keys)."""
    if not config or runstore.run_kind(config) != "cifar-tui":  # a Keras run's config holds what its script had
        return []
    known = {f.name for f in fields(TrainConfig)}
    problems = []
    unknown = sorted(set(config) - known)
    if unknown:
        problems.append(f"config.json has settings this version does not know ({', '.join(unknown)}); "
                        "written by a newer cifar-tui?")
    missing = [f.name for f in fields(TrainConfig) if f.name not in config]
    if missing:
        problems.append(f"config.json lacks {', '.join(missing)} (written by an older cifar-tui?); defaults assumed")
    return problems


def config_from_run(data: dict[str, Any], run_dir: Path) -> TrainConfig:
    """The TrainConfig a run folder was started with; one this version cannot use says why, as a RunStoreError."""
    reason = no_cifar_model_reason(data)
    if reason:
        raise RunStoreError(f"{run_dir}: {reason}")
    try:
        return make_config(data)
    except ConfigError as exc:
        raise RunStoreError(
            f"{Path(run_dir) / CONFIG_FILE} cannot be used: {exc} (written by another version of cifar-tui?)"
        ) from exc


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a JSON config file (a TOML file too, by its suffix) into a plain dict."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold an object of settings")
    return data
