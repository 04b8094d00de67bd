"""Training configuration: one validated dataclass shared by the CLI, the TUI and run folders."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .backbones import BACKBONES


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message names the field."""


@dataclass
class TrainConfig:
    backbone: str = "mobilenetv2"
    image_size: int = 160
    # Blocks of the backbone unfrozen in stage 2: an int, or "all".
    fine_tune_blocks: int | str = 3
    epochs_head: int = 8
    epochs_fine: int = 6
    lr_head: float = 2e-3  # for head_batch_size 512
    lr_fine: float = 3e-4
    batch_size: int = 128  # stage 2 (and end-to-end) batches
    # Stage 1 trains on cached feature vectors, where a step costs little but Keras' per-step
    # overhead: larger batches make its epochs several times faster.
    head_batch_size: int = 512
    dropout: float = 0.3
    label_smoothing: float = 0.1
    weight_decay: float = 1e-4
    augment: bool = True  # a mirrored view of every training image (plus random crops when fine-tuning from pixels)
    tta_flip: bool = True  # average the prediction of each image and its mirror at test time
    val_size: int = 5000
    patience: int = 3
    seed: int = 42
    weights: str = "imagenet"  # or "none" for random weights (tests)
    limit_train: int | None = None
    limit_test: int | None = None
    data_dir: str | None = None
    runs_dir: str = "runs"
    cache_dir: str | None = None
    mixed_precision: str = "auto"  # auto | on | off
    # Who runs the frozen forward passes (features, test report, prediction): auto = LiteRT on a CPU, Keras on a GPU.
    runtime: str = "auto"  # auto | keras | litert

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def run_name(self) -> str:
        return f"{self.backbone}-{self.image_size}px"


_RANGES: dict[str, tuple[float, float]] = {
    "image_size": (32, 600),
    "epochs_head": (0, 1000),
    "epochs_fine": (0, 1000),
    "lr_head": (1e-7, 1.0),
    "lr_fine": (1e-8, 1.0),
    "batch_size": (1, 4096),
    "head_batch_size": (1, 16384),
    "dropout": (0.0, 0.95),
    "label_smoothing": (0.0, 0.5),
    "weight_decay": (0.0, 1.0),
    "val_size": (10, 25000),
    "patience": (1, 1000),
    "seed": (0, 2**31 - 1),
    "limit_train": (20, 50000),
    "limit_test": (10, 10000),
}

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


def _check_type(name: str, value: Any, kind: Any) -> Any:
    if name == "fine_tune_blocks":
        if value == "all":
            return value
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"fine_tune_blocks must be a whole number >= 0 or 'all', not {value!r}")
        return value
    if name == "mixed_precision":
        if value not in ("auto", "on", "off"):
            raise ConfigError(f"mixed_precision must be auto, on or off, not {value!r}")
        return value
    if name == "runtime":
        if value not in ("auto", "keras", "litert"):
            raise ConfigError(f"runtime must be auto, keras or litert, not {value!r}")
        return value
    if name == "weights":
        if value not in ("imagenet", "none"):
            raise ConfigError(f"weights must be 'imagenet' or 'none', not {value!r}")
        return value
    if name == "backbone":
        if value not in BACKBONES:
            raise ConfigError(f"unknown backbone {value!r}; choose one of: {', '.join(BACKBONES)}")
        return value
    if value is None and "None" in str(kind):
        return None
    if "bool" in str(kind):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, not {value!r}")
        return value
    if "int" in str(kind):
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{name} must be a whole number, not {value!r}")
        return int(value)
    if "float" in str(kind):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, not {value!r}")
        return float(value)
    if "str" in str(kind):
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be text, not {value!r}")
        return value
    return value


def make_config(values: dict[str, Any] | None = None, preset: str | None = None) -> TrainConfig:
    """Build a validated TrainConfig from a preset plus overrides; unknown keys are refused."""
    merged: dict[str, Any] = {}
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        merged.update(PRESETS[preset])
    merged.update({k: v for k, v in (values or {}).items()})
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(merged) - set(known))
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
    checked = {}
    for name, value in merged.items():
        value = _check_type(name, value, known[name].type)
        if name in _RANGES and value is not None:
            lo, hi = _RANGES[name]
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


def config_from_run(data: dict[str, Any], run_dir: Path) -> TrainConfig:
    """The TrainConfig a run folder was started with; one this version cannot use says why, as a RunStoreError."""
    from .runstore import CONFIG_FILE, RunStoreError

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
