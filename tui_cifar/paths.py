"""Where cifar-tui keeps files outside run folders: one place, by the platform's rules.

``platformdirs`` (installed with Textual) follows the XDG variables on Linux
(``$XDG_CACHE_HOME``, ``$XDG_CONFIG_HOME``, which the tests point at temporary
folders) and each platform's own conventions elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "cifar-tui"


def cache_dir() -> Path:
    """Files that can be recomputed or lost: feature cache, logs."""
    return platformdirs.user_cache_path(APP_NAME, appauthor=False)


def config_dir() -> Path:
    """What the app remembers between sessions (last configuration, small caches)."""
    return platformdirs.user_config_path(APP_NAME, appauthor=False)


def features_cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The cache of frozen-backbone features: ``override`` (``TrainConfig.cache_dir``) or the default."""
    return Path(override).expanduser() if override else cache_dir() / "features"


def stderr_log_path() -> Path:
    """Where the app sends native stderr (TensorFlow's start-up lines) while it owns the terminal."""
    return cache_dir() / "tui-stderr.log"
