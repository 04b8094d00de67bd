"""The final test-set report of a run, with scikit-learn metrics.

This is the only place that reads the test split, once per run, after model
selection is over.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..runs import store
from ..runs.reader import summarize_run
from ..runs.records import write_predictions
from .data import CLASS_NAMES

ROC_POINTS = 100  # per class, enough for a terminal chart


def report_from_probabilities(y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import (
        accuracy_score,
        classification_report,
        confusion_matrix,
        log_loss,
        roc_auc_score,
        roc_curve,
    )

    labels = list(range(len(CLASS_NAMES)))
    y_prob = _distributions(y_prob)
    y_pred = y_prob.argmax(axis=1)
    table = classification_report(
        y_true, y_pred, labels=labels, target_names=CLASS_NAMES, output_dict=True, zero_division=0
    )
    present = np.unique(y_true)
    auc: dict[str, float | None] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    for k, name in enumerate(CLASS_NAMES):
        if k in present and len(present) > 1:
            scores = y_prob[:, k]
            auc[name] = float(roc_auc_score(y_true == k, scores))
            fpr, tpr, _ = roc_curve(y_true == k, scores)
            keep = np.unique(np.linspace(0, len(fpr) - 1, min(ROC_POINTS, len(fpr))).round().astype(int))
            curves[name] = {"fpr": fpr[keep].round(4).tolist(), "tpr": tpr[keep].round(4).tolist()}
        else:
            auc[name] = None
    per_class = {
        name: {
            "precision": table[name]["precision"], "recall": table[name]["recall"],
            "f1": table[name]["f1-score"], "support": int(table[name]["support"]), "roc_auc": auc[name],
        }
        for name in CLASS_NAMES
    }
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    off_diagonal: list[dict[str, Any]] = [
        {"true": CLASS_NAMES[i], "predicted": CLASS_NAMES[j], "count": int(cm[i, j])}
        for i in labels for j in labels if i != j and cm[i, j] > 0
    ]
    off_diagonal.sort(key=lambda pair: -pair["count"])
    # One-vs-rest averages are defined only when every class occurs in the test split.
    macro_auc, weighted_auc = (
        [roc_auc_score(y_true, y_prob, multi_class="ovr", average=avg, labels=labels) for avg in ("macro", "weighted")]
        if len(present) == len(labels) else (None, None)
    )

    def average(key: str, roc_auc: float | None) -> dict[str, Any]:
        row = table[key]
        return {"precision": row["precision"], "recall": row["recall"], "f1": row["f1-score"],
                "support": int(row["support"]), "roc_auc": roc_auc}

    return {
        "test_accuracy": float(accuracy_score(y_true, y_pred)),
        "test_loss": float(log_loss(y_true, y_prob, labels=labels)),
        "num_test": int(len(y_true)),
        "classes": list(CLASS_NAMES),
        "per_class": per_class,
        "macro_avg": average("macro avg", macro_auc),
        "weighted_avg": average("weighted avg", weighted_auc),
        "macro_roc_auc": macro_auc,
        "confusion_matrix": cm.tolist(),
        "roc_curves": curves,
        "most_confused": off_diagonal[:10],
    }


def _distributions(y_prob: np.ndarray) -> np.ndarray:
    """Rows that sum to one in float64, none zero: a float32 softmax (averaged over TTA views, or from LiteRT's
    float16) misses one by more than sklearn's log_loss accepts without a warning (and its multiclass ROC-AUC
    without an error), and log(0) is infinite."""
    p = np.clip(np.asarray(y_prob, dtype=np.float64), 1e-7, 1.0)
    return p / p.sum(axis=1, keepdims=True)


def evaluate_run(run_dir: Path, progress: Callable[[int, int], None] | None = None,
                 data_dir: str | None = None, cache_dir: str | None = None) -> dict[str, Any]:
    """Score the run's best model on the test split; writes report.json and predictions.npz.

    ``progress`` is predict_probabilities' (forward passes done, total); what it raises stops the
    scoring before anything is written. The test set comes from ``data_dir`` and the converted
    model from ``cache_dir`` (the default places when None): the user's own settings, never the
    folders a run's config.json names, which may come from someone else (docs/robustness.md).
    """
    import time

    from ..config import config_from_run
    from .data import load_cifar10, test_indices
    from .forward import saved_model_forward
    from .prediction import load_model_checked, predict_probabilities

    run_dir = Path(run_dir)
    config_data, problem = store.read_json(run_dir / store.CONFIG_FILE)
    if config_data is None:
        raise store.RunStoreError(f"{run_dir}: {problem}")
    config = config_from_run(config_data, run_dir)
    model_path = run_dir / store.MODEL_FILE
    model = saved_model_forward(load_model_checked(model_path), model_path, config.runtime, cache_dir)
    started = time.perf_counter()
    _, _, x_test_all, y_test_all, _ = load_cifar10(data_dir)
    index = test_indices(config.limit_test, config.seed, y_test_all)
    x_test, y_test = x_test_all[index], y_test_all[index]
    y_prob = predict_probabilities(model, x_test, config.tta_flip, progress=progress)
    report = report_from_probabilities(y_test, y_prob)
    report["tta_flip"] = config.tta_flip
    report["runtime"] = model.runtime
    report["evaluation_seconds"] = round(time.perf_counter() - started, 2)
    summary = summarize_run(run_dir)  # the training figures come from the run's log, not from scoring
    report["best_val_accuracy"] = summary.best_val_accuracy
    report["stage_times"] = summary.stage_times
    report["wall_time"] = summary.duration_s
    write_predictions(run_dir / store.PREDICTIONS_FILE, y_test, y_prob, index)
    store.atomic_write_json(run_dir / store.REPORT_FILE, report)
    return report
