"""tui_cifar.paths and tui_cifar.formatting: where files go outside run folders, and how a missing figure reads."""

from __future__ import annotations

import os
from pathlib import Path

from tui_cifar import formatting, paths


def test_user_folders_follow_the_xdg_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert paths.features_cache_dir() == tmp_path / "cache" / "cifar-tui" / "features"
    assert paths.stderr_log_path() == tmp_path / "cache" / "cifar-tui" / "tui-stderr.log"
    assert paths.config_dir() == tmp_path / "config" / "cifar-tui"
    # a run's cache_dir setting overrides the default (the trainer and the cost estimate use the same one)
    assert paths.features_cache_dir("~/feats") == Path(os.path.expanduser("~/feats"))
    assert paths.features_cache_dir("") == paths.features_cache_dir(None) == paths.features_cache_dir()


def test_an_empty_xdg_variable_means_the_default(monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", "  ")
    assert paths.cache_dir() == Path(os.path.expanduser("~/.cache")) / "cifar-tui"


def test_a_missing_figure_is_a_dash():
    assert formatting.fmt(None) == formatting.fmt("n/a") == "–"
    assert formatting.fmt(None, ".4f", formatting.ASCII_DASH) == "-"
    assert formatting.fmt(0.5) == "0.500" and formatting.fmt(0.12345, ".4f") == "0.1235"
    assert formatting.format_pct(None) == "–" and formatting.format_pct(0.9234, 2) == "92.34%"
    assert formatting.format_lr(None) == "–" and formatting.format_lr(0.0003) == "0.0003"
    assert formatting.format_started(None) == "–" and formatting.format_started("garbage-but-long-text") == "garbage-but-long"
