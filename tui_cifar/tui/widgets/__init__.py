"""Widgets shared by the cifar-tui screens."""
