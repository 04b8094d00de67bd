"""The chart figures: TensorBoard's debiased EMA, metric pairs, log scale."""

from __future__ import annotations

import math

import pytest

from tui_cifar.runs import curves


def test_ema_is_tensorboards_debiased_average():
    # TensorBoard's smoothing with weight 0.6 of [1, 0, 0]: 1, then (0.4*1*0.6)/(1-0.36) ...
    assert curves.ema([1.0, 0.0, 0.0], 0.6) == pytest.approx([1.0, 0.375, 0.183673], rel=1e-5)
    assert curves.ema([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # debiased: a constant stays
    assert curves.ema([3.0, 1.0], 0.0) == [3.0, 1.0]


def test_ema_passes_nan_through_without_poisoning_the_rest():
    out = curves.ema([1.0, math.nan, 1.0], 0.5)
    assert out[0] == 1.0 and math.isnan(out[1]) and out[2] == pytest.approx(1.0)


def test_metric_pairs_pair_val_twins_and_keep_loners():
    names = ["loss", "top3", "accuracy", "val_loss", "val_top3", "val_accuracy", "val_f1", "auc"]
    assert curves.metric_pairs(names) == [("loss", "val_loss"), ("top3", "val_top3"),
                                          ("accuracy", "val_accuracy"), ("val_f1", None), ("auc", None)]


def test_log_scale_drops_what_a_log_axis_cannot_show():
    assert curves.log_scale_points([(1, 0.5), (2, 0.0), (3, -1.0), (4, math.inf), (5, 1e-4)]) == [(1, 0.5), (5, 1e-4)]


def test_next_in_cycles():
    assert curves.next_in(curves.SMOOTHING_WEIGHTS, 0.95) == 0.0
    assert curves.next_in(curves.X_AXES, "epoch") == "step"


def test_wrap_items_breaks_lines_only_between_figures():
    from tui_cifar.formatting import wrap_items

    items = ["run finished", "stage 2/2", "LR 0.00021", "1,800 img/s", "val acc 70.6%", "best 70.6%", "0.42M trainable"]
    text = wrap_items(items, 40)
    assert all(len(line) <= 40 for line in text.splitlines())
    assert "0.42M trainable" in text.splitlines()[-1] and text.replace("\n", " ").count("·") == 6
