"""Training configuration: one validated dataclass shared by the CLI, the TUI and run folders."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .engine.backbones import BACKBONES
from .engine.devices import parse_devices
from .engine.forward import RUNTIMES
from .errors import EXIT_USAGE, CifarTuiError
from .formatting import shown
from .runs import store
from .runs.store import CONFIG_FILE, RunStoreError, no_cifar_model_reason


class ConfigError(CifarTuiError, ValueError):
    """A configuration value or file is invalid; the message names the field, ``fields`` lists the settings it is about.

    ``fields`` is empty for what no one setting holds (an unknown key, preset or file).
    """

    exit_code = EXIT_USAGE
    title = "Invalid setting"

    def __init__(self, message: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = tuple(fields)


def setting(default: Any, label: str, help: str = "", *, range: tuple[float, float] | None = None,
            choices: tuple[tuple[str, str], ...] = (), kind: str | None = None, advanced: bool = False,
            flag: str | None = None, explain: str = "", machine: bool = False) -> Any:
    """A TrainConfig field with what the CLI and the configure form need to show and check it.

    Each setting is declared here once: its label, one-line help, allowed range or choices, and
    ``explain``, a few sentences for a student (what it does, the trade-off, a sensible range);
    ``cli.commands`` derives the ``train`` flags from it and the configure screen its form and help panel.
    ``machine``: a setting of the machine rather than of the experiment (folders, devices, precision,
    runtime, weights): a preset leaves it as it is (KEEP_ON_PRESET).
    """
    return field(default=default, metadata={
        "label": label, "help": help, "range": range, "choices": choices, "kind": kind,
        "advanced": advanced, "flag": flag, "explain": explain, "machine": machine,
    })


_BACKBONE_CHOICES = tuple((f"{spec.label} — {spec.description}", name) for name, spec in BACKBONES.items())


# The field order is the form's order (basic settings first, then the advanced ones).
@dataclass
class TrainConfig:
    backbone: str = setting("mobilenetv2", "Backbone", "see `cifar-tui backbones`", choices=_BACKBONE_CHOICES,
                            kind="select",
        explain=(
            "The pretrained network whose ImageNet features are reused. Bigger backbones usually reach higher"
            " accuracy but are slower per image and need more memory. MobileNetV2 is a fast, good start on a "
            "CPU."))
    image_size: int = setting(160, "Input size (px)", "CIFAR's 32 px images are upscaled to this", range=(32, 600),
        explain=(
            "CIFAR-10 images are 32x32; they are upscaled to this size before the backbone sees them, because"
            " ImageNet backbones learned their features on larger images. Larger sizes give more accuracy but"
            " cost time and memory roughly with the square of the size. Sensible: 96 to 224 (160 is a good "
            "compromise)."))
    # Blocks of the backbone unfrozen in stage 2: an int, or "all".
    fine_tune_blocks: int | str = setting(3, "Fine-tune blocks", "top blocks unfrozen in stage 2 (a number or 'all')",
                                          choices=(("all", "all"),), kind="blocks",
        explain=(
            "Stage 2 unfreezes this many of the backbone's top blocks and trains them together with the head,"
            " so the pretrained features adapt to CIFAR-10. More blocks adapt more and can gain accuracy, but"
            " train slower and overfit sooner. 0 trains only the head; 2 to 5 is typical; 'all' retrains the "
            "whole backbone."))
    epochs_head: int = setting(8, "Epochs, stage 1 (head)", "new classifier head on frozen features", range=(0, 1000),
        explain=(
            "Stage 1 trains only the new classifier head on features computed once by the frozen backbone, so"
            " its epochs are fast. Too few leave accuracy on the table; early stopping ends the stage when "
            "validation accuracy stops improving. Sensible: 5 to 15."))
    epochs_fine: int = setting(4, "Epochs, stage 2 (fine-tune)", "0 skips fine-tuning", range=(0, 1000),
        explain=(
            "Stage 2 fine-tunes the unfrozen blocks, epoch by epoch over all training images: much slower "
            "than stage 1. More epochs can gain a little accuracy but risk overfitting; early stopping keeps "
            "the best epoch. 0 skips fine-tuning. Sensible: 3 to 12."))
    lr_head: float = setting(2e-3, "Learning rate, stage 1", "for head_batch_size 512", range=(1e-7, 1.0),
        explain=(
            "How big a step the optimiser takes when training the head. Too high and the loss jumps around or"
            " becomes NaN; too low and training crawls. It decays over the stage (cosine). Sensible: 1e-3 to "
            "5e-3."))
    lr_fine: float = setting(6e-4, "Learning rate, stage 2", "lower than stage 1's", range=(1e-8, 1.0),
        explain=(
            "The learning rate for fine-tuning, kept about 10x lower than stage 1's so the pretrained "
            "features are adjusted, not destroyed. Too high erases what the backbone learned on ImageNet. "
            "Sensible: 1e-4 to 1e-3."))
    batch_size: int = setting(128, "Batch size", "stage 2", range=(1, 4096),
        explain=(
            "Images per training step in stage 2. Larger batches use the hardware better but need more memory"
            " and may generalise slightly worse; if you change it a lot, scale the learning rate with it. "
            "Sensible: 32 to 256."))  # stage 2 (and end-to-end) batches
    # Stage 1 trains on cached feature vectors, where a step costs little but Keras' per-step
    # overhead: larger batches make its epochs several times faster.
    head_batch_size: int = setting(512, "Batch size, stage 1", "on cached features", range=(1, 16384), advanced=True,
        explain=(
            "Images per step in stage 1, which trains on cached feature vectors: a step costs little, so "
            "larger batches make epochs several times faster. Sensible: 128 to 1024."))
    dropout: float = setting(0.3, "Dropout", "fraction of features dropped in training", range=(0.0, 0.95), advanced=True,
        explain=(
            "During training, randomly zeroes this fraction of the features going into the classifier, so it "
            "cannot rely on a few of them. Regularisation: more dropout fights overfitting but slows "
            "learning; too much underfits. Sensible: 0.2 to 0.5."))
    label_smoothing: float = setting(0.1, "Label smoothing", "softer targets than 100%", range=(0.0, 0.5), advanced=True,
        explain=(
            "Trains towards about 90% (with 0.1) instead of 100% confidence in the right class, spreading the rest "
            "over the others. Keeps the model from becoming overconfident and often helps accuracy a little. "
            "Sensible: 0 to 0.2."))
    weight_decay: float = setting(1e-4, "Weight decay", "pulls weights towards zero (AdamW)", range=(0.0, 1.0), advanced=True,
        explain=(
            "Pulls every weight slightly towards zero at each step (AdamW), preferring simpler models: "
            "regularisation against overfitting. Too much holds the model back. Sensible: 1e-5 to 1e-3."))
    augment: bool = setting(False, "Augmentation", "mirrored view of every image (+ crops end to end)",
        explain=(
            "Trains on mirrored copies of the images too (and random crops when fine-tuning end to end), so "
            "the model sees more varied examples: it fights overfitting in long fine-tuning (the best preset "
            "turns it on). Off by default: with 4 fine-tuning epochs it gained nothing on validation "
            "(bench/preset_sweep.json) and the first feature extraction takes twice as long with it."))
    tta_flip: bool = setting(True, "Test-time flip (TTA)", "average each test image with its mirror", flag="--no-tta",
        explain=(
            "Test-time augmentation: each test image is classified as itself and mirrored, and the two "
            "predictions are averaged. Usually a small accuracy gain for twice the evaluation time. It does "
            "not change training."))
    val_size: int | None = setting(None, "Validation images", "held out of the training set (empty: 10% of them)",
                                   range=(10, 25000), advanced=True,
        explain=(
            "Training images held out to measure accuracy on images the model never trained on: this "
            "validation accuracy picks the best epoch and drives early stopping. More makes that measure more"
            " reliable but leaves fewer images to learn from. Empty holds out 10% of the training images "
            "(5,000 of 50,000; 300 of a 3,000-image limit). Sensible: 2,000 to 5,000."))
    patience: int = setting(3, "Early-stopping patience", "epochs without val improvement", range=(1, 1000),
                            advanced=True,
        explain=(
            "Early stopping ends a stage when validation accuracy has not improved for this many epochs, and "
            "the weights of the best epoch are kept. It saves time and stops training once it starts "
            "overfitting. Small values may stop too early on a noisy curve. Sensible: 2 to 5."))
    seed: int = setting(42, "Random seed", "the same seed repeats a run", range=(0, 2**31 - 1), advanced=True,
        explain=(
            "Fixes the random choices (validation split, shuffling, initial head weights) so a run can be "
            "repeated. Changing it shows how much results vary by chance: differences smaller than that are "
            "noise."))
    limit_train: int | None = setting(None, "Limit training images", "a stratified subset (empty: all 50,000)",
                                      range=(20, 50000), advanced=True,
        explain=(
            "Trains on a stratified subset of this many CIFAR-10 training images (equal per class) instead of"
            " all 50,000. Much faster for trying settings; accuracy is lower with fewer images. Empty uses "
            "all."))
    limit_test: int | None = setting(None, "Limit test images", "a stratified subset (empty: all 10,000)",
                                     range=(10, 10000), advanced=True,
        explain=(
            "Evaluates on a stratified subset of the 10,000 test images. Faster, but the test accuracy is "
            "less precise (about ±1 point with 2,000 images). Empty uses all."))
    mixed_precision: str = setting("auto", "Mixed precision", "float16 compute (auto: on with a GPU)",
                                   choices=(("auto (GPU only)", "auto"), ("on", "on"), ("off", "off")), advanced=True,
        explain=(
            "Computes in 16-bit floats where it is safe, keeping weights in 32-bit. On GPUs with tensor cores"
            " it is much faster and uses less memory; on CPUs it is usually slower. auto turns it on only "
            "with a GPU."), machine=True)
    weights: str = setting("imagenet", "Backbone weights", "none: random weights (tests)",
                           choices=(("ImageNet", "imagenet"), ("none (random)", "none")), advanced=True,
        explain=(
            "ImageNet: the backbone starts from features learned on 1.2 million photos, which is what makes "
            "transfer learning work. none: random weights, which learn far less in the same time; useful only"
            " for tests."), machine=True)
    data_dir: str | None = setting(None, "Data folder", "CIFAR-10 location (empty: the default)", kind="path",
        explain=(
            "The folder with the CIFAR-10 dataset (the python-version batches). Empty uses the default "
            "location, where it is downloaded if missing."), machine=True)
    runs_dir: str = setting("runs", "Runs folder", "where run folders are created", kind="path",
        explain=(
            "Each run gets its own folder here: its settings, live metrics log, best model and test report. "
            "The runs screen lists this folder."), machine=True)
    cache_dir: str | None = setting(None, "Feature cache folder", "empty: the default", kind="path", advanced=True,
        explain=(
            "Where frozen-backbone features are cached: a later run with the same backbone, size, fine-tune "
            "depth and data skips recomputing them. Empty uses the user cache folder."), machine=True)
    # Who runs the frozen forward passes (features, test report, prediction).
    runtime: str = setting("auto", "Forward-pass runtime", "auto: LiteRT (XNNPACK) on a CPU, TensorFlow on a GPU",
                           choices=tuple((label, name) for name, label in RUNTIMES.items()),
                           advanced=True,
        explain=(
            "Which engine runs the frozen backbone's forward passes (feature extraction, the test report, "
            "prediction). LiteRT (XNNPACK) is several times faster than TensorFlow on many CPUs and gives the "
            "same features within float16 rounding; TensorFlow is the right engine on a GPU. auto picks for you."), machine=True)
    devices: str = setting("auto", "Devices", "auto (every GPU, else the CPU), cpu, or GPU numbers: 0 or 0,1",
                           kind="devices", advanced=True,
        explain=(
            "Which devices train: auto uses every GPU TensorFlow sees (several GPUs split each batch between them), "
            "else the CPU; cpu keeps a run off the GPUs; 0 or 0,1 picks GPUs by number (as nvidia-smi counts them). "
            "Batches are global: with N GPUs each gets 1/N of every batch, so raise the batch size (and the "
            "learning rate with it) to keep them busy."), machine=True)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def val_images(self) -> int:
        """How many training images the validation split holds: val_size, or VAL_FRACTION of them when unset."""
        return val_images(self.limit_train, self.val_size)

    @property
    def run_name(self) -> str:
        return f"{self.backbone}-{self.image_size}px"


# The validation split when val_size is empty: this fraction of the training images (of limit_train when set).
VAL_FRACTION = 0.1
CIFAR_TRAIN_IMAGES = 50000


def val_images(limit_train: int | None, val_size: int | None) -> int:
    """The validation split's size for these settings (a run folder's config.json too, which may predate the fraction)."""
    if val_size:
        return int(val_size)
    return max(10, round(VAL_FRACTION * (limit_train or CIFAR_TRAIN_IMAGES)))


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
    explain: str  # a few sentences for a student: what it does, the trade-off, a sensible range
    machine: bool = False  # of the machine, not the experiment: presets leave it alone

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
                           meta["advanced"], meta["choices"], meta["range"], flag, meta["explain"], meta["machine"]))
    return tuple(out)


SETTINGS: tuple[Setting, ...] = _settings()
SETTING_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
# Settings of the machine rather than of the experiment: presets leave them alone.
# (The backbone is part of the experiment: a preset's figures were measured with the default one.)
KEEP_ON_PRESET: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.machine)


def with_labels(message: str) -> str:
    """A ConfigError message with each setting's key (``batch_size``) replaced by its label as the form shows it."""
    return _SETTING_NAME.sub(lambda m: f"“{SETTING_BY_NAME[m.group(0)].label}”", message)


def with_flags(message: str) -> str:
    """A ConfigError message with each setting's key (``val_size``) replaced by its `train` flag (``--val-size``)."""
    return _SETTING_NAME.sub(lambda m: _positive_flag(SETTING_BY_NAME[m.group(0)]), message)


def _positive_flag(s: Setting) -> str:
    """The flag that sets a value: ``--tta`` of ``--tta/--no-tta``, ``--val-size``."""
    return s.flag.replace("--no-", "--", 1) if s.kind == "bool" else s.flag


_SETTING_NAME = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(sorted(SETTING_BY_NAME, key=len, reverse=True))
                           + r")(?![A-Za-z0-9_])")


PRESETS: dict[str, dict[str, Any]] = {
    # The fastest run that beats the seed notebook: the head alone on 4,500 images at 112 px
    # (79.0% with its model ready 11 s after the start, 28-31 s with the test report; bench/RESULTS.md).
    # Chosen on validation accuracy (bench/quick_sweep.json): 112 px gave the most accuracy per
    # second of feature extraction, and short, brisk head training suits so few images.
    "quick": {"image_size": 112, "limit_train": 5000, "fine_tune_blocks": 0,
              "epochs_head": 12, "epochs_fine": 0, "augment": False, "tta_flip": False,
              "head_batch_size": 128, "lr_head": 3e-3},
    # The settings' defaults, chosen on validation (bench/preset_sweep.json): 160 px, top 3 blocks, 4
    # fine-tuning epochs at 6e-4 and no mirrored view matched or beat 6 epochs at 3e-4 with it (92.6% against
    # 92.2% validation accuracy) for half the feature extraction and two thirds of stage 2; 2 blocks lost
    # 1.4 points, 3 epochs 0.4. Test figures and times: bench/RESULTS.md.
    "default": {},
    # More resolution, depth, epochs and the mirrored view: 94.2% in about 25 minutes on a 2-core CPU
    # (Keras runtime; bench/RESULTS-2026-11-28.md). Kept after the full-data sweep (bench/sweep_full.md): within twice
    # the default's time its best reached 92.6% test (4 blocks at 3.6e-4), so 95% is out of reach within that budget.
    "best": {"image_size": 192, "fine_tune_blocks": 5, "epochs_fine": 12, "lr_fine": 3e-4, "augment": True,
             "patience": 5},
}


def preset_summary(preset: str) -> str:
    """What a preset sets, e.g. 'backbone mobilenetv2, image_size 112, limit_train 5000' (the rest: defaults)."""
    changes = {"backbone": TrainConfig().backbone, **(PRESETS.get(preset) or {})}
    return ", ".join(f"{k} {v}" for k, v in changes.items())


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
            raise ConfigError(f"{name} must be a whole number >= 0 or {words}, not {value!r}", (name,))
        return value
    if s.kind == "devices":
        try:
            parse_devices(value)
        except ValueError as exc:
            raise ConfigError(str(exc), (name,)) from None
        return str(value).strip().lower()
    if s.choices:
        if value not in s.values:
            raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(s.values)}", (name,))
        return value
    if bool in s.types:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, not {value!r}", (name,))
        return value
    if int in s.types:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{name} must be a whole number, not {value!r}", (name,))
        return int(value)
    if float in s.types:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, not {value!r}", (name,))
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be text, not {value!r}", (name,))
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
                raise ConfigError(f"{name} must be between {lo:g} and {hi:g}, not {value!r}", (name,))
        checked[name] = value
    config = TrainConfig(**checked)
    spec = BACKBONES[config.backbone]
    if isinstance(config.fine_tune_blocks, int) and config.fine_tune_blocks > spec.blocks:
        raise ConfigError(f"fine_tune_blocks must be at most {spec.blocks} ({config.backbone} has {spec.blocks} "
                          f"blocks; 'all' unfreezes them all), not {config.fine_tune_blocks}", ("fine_tune_blocks",))
    if config.epochs_head + config.epochs_fine == 0:
        raise ConfigError("epochs_head and epochs_fine are both 0: nothing to train", ("epochs_head", "epochs_fine"))
    train_pool = config.limit_train or CIFAR_TRAIN_IMAGES
    if config.val_images >= train_pool:
        # the training pool is limit_train (or all 50,000)
        raise ConfigError(f"val_size ({config.val_images}) must be smaller than the training images ({train_pool}); "
                          "leave it empty for 10% of them", ("val_size", "limit_train"))
    return config


# A run folder's config.json, written by this or another version, is judged here and only here:
# config_file_problems for listing runs (never raises), config_from_run for using one.


def config_file_problems(config: dict[str, Any]) -> list[str]:
    """What makes a run's config.json differ from this version's settings (unknown or missing keys)."""
    if not config or store.run_kind(config) != "cifar-tui":  # a Keras run's config holds what its script had
        return []
    known = {f.name for f in fields(TrainConfig)}
    problems = []
    unknown = sorted(set(config) - known)
    if unknown:
        problems.append(f"config.json has settings this version does not know ({', '.join(map(shown, unknown))}); "
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
