"""What the app remembers between sessions, in the user config folder (paths.config_dir())."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..files import atomic_write_json, read_json
from ..paths import config_dir

LAST_CONFIG = "last_config.json"
DESCRIBE_CACHE = "fine_tune_descriptions.json"
PHOTO_FOLDER = "photo_folder.json"


def _read(path: Path) -> dict[str, Any] | None:
    return read_json(path)[0]


def _write(path: Path, data: dict[str, Any]) -> str | None:
    """Write a settings file; returns an error message instead of raising."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, data)
    except OSError as exc:
        return f"cannot save {path}: {exc.strerror or exc}"
    return None


def load_last_config() -> dict[str, Any] | None:
    """The form values of the last configuration started (or edited), or None."""
    return _read(config_dir() / LAST_CONFIG)


def save_last_config(values: dict[str, Any]) -> str | None:
    return _write(config_dir() / LAST_CONFIG, values)


def load_photo_folder() -> Path | None:
    """The folder of photos last classified on the predict screen, or None."""
    folder = (_read(config_dir() / PHOTO_FOLDER) or {}).get("folder")
    return Path(folder) if isinstance(folder, str) and folder else None


def save_photo_folder(folder: Path) -> str | None:
    return _write(config_dir() / PHOTO_FOLDER, {"folder": str(folder)})


def _describe_key(backbone: str, image_size: int, blocks: int | str) -> str:
    return f"{backbone}|{image_size}|{blocks}"


def cached_description(backbone: str, image_size: int, blocks: int | str) -> str | None:
    data = _read(config_dir() / DESCRIBE_CACHE) or {}
    value = data.get(_describe_key(backbone, image_size, blocks))
    return value if isinstance(value, str) else None


def cache_description(backbone: str, image_size: int, blocks: int | str, text: str) -> None:
    path = config_dir() / DESCRIBE_CACHE
    data = _read(path) or {}
    if len(data) > 500:
        data = {}
    data[_describe_key(backbone, image_size, blocks)] = text
    _write(path, data)
