"""What the epoch charts draw, as pure functions: smoothing, metric pairs, the x axis.

No Textual here (the core's rule), so the figures are unit-tested without a screen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

# TensorBoard's smoothing slider, in the steps a key press cycles through (0: the raw curve alone).
SMOOTHING_WEIGHTS = (0.0, 0.6, 0.8, 0.9, 0.95)
X_AXES = ("epoch", "step", "wall time")


def ema(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's debiased exponential moving average of a curve.

    ``weight`` 0 returns the values; a non-finite value (a NaN loss) is passed through and does not
    enter the average. The debiasing divides by 1 - weight**n, so the first points are not pulled to 0.
    """
    if weight <= 0:
        return list(values)
    out, last, n = [], 0.0, 0
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        last = last * weight + (1 - weight) * value
        n += 1
        out.append(last / (1 - weight ** n))
    return out


def metric_pairs(names: Sequence[str]) -> list[tuple[str, str | None]]:
    """Each metric with its ``val_`` twin, in first-seen order: [("loss", "val_loss"), ("top3", "val_top3"), ...].

    A ``val_`` metric without a training twin stands alone as (name, None).
    """
    names = list(dict.fromkeys(names))
    present = set(names)
    pairs: list[tuple[str, str | None]] = []
    for name in names:
        if name.startswith("val_") and name[4:] in present:
            continue
        twin = f"val_{name}"
        pairs.append((name, twin if twin in present else None))
    return pairs


def log_scale_points(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points a log-scale y axis can show: positive, finite y only."""
    return [(x, y) for x, y in points if math.isfinite(y) and y > 0]


def next_in(cycle: Sequence[T], current: T) -> T:
    """The value after ``current`` in ``cycle`` (the first after the last, or when current is not in it)."""
    try:
        return cycle[(list(cycle).index(current) + 1) % len(cycle)]
    except ValueError:
        return cycle[0]
