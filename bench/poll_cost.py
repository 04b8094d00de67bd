"""The Train screen's per-poll questions about a long run's epochs, with and without a new epoch.

Every half second the Train screen's header and chart keys ask the watched run's RunProgress for its main
metric, its logged metrics, its best validation accuracy and the charted metric (run_header.val_scores,
run_charts.ChartKeys). RunProgress keeps what its epochs give until a new epoch comes, so a poll that
brought no epoch asks nothing of them.
Measured in one run on one machine (ratios only within it), on a RunProgress holding N epoch records, as a
TensorBoard run of N logged steps gives:

- an idle poll: the questions again, no new epoch;
- a poll after one new epoch: the epochs sorted and scanned once;
- the same questions answered afresh each time (a new epoch before each question), as before the
  cache, when each poll sorted and scanned the epochs five times.

Usage, from the repository root:

    .venv/bin/python bench/poll_cost.py [--epochs 300000] [--out bench/poll_cost.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from run_bench import provenance  # noqa: E402

from tui_cifar.runs.reader import RunProgress  # noqa: E402
from tui_cifar.tui.widgets.run_header import val_scores  # noqa: E402


def epoch(step: int) -> dict:
    return {"type": "epoch", "stage": 1, "epoch": step + 1, "step": step, "loss": 1.0, "val_loss": 1.1,
            "accuracy": 0.5, "val_accuracy": 0.4, "wall_time": step * 0.01}


def ask(progress: RunProgress) -> None:
    """What one poll asks: the stats line's validation scores and the chart keys' charted metric."""
    val_scores(progress)
    progress.chart_metric(None)


def seconds(action, repeats: int) -> float:
    """The median wall time of ``action``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(HERE / "poll_cost.json"))
    args = parser.parse_args()

    progress = RunProgress()
    progress.feed([epoch(k) for k in range(args.epochs)])
    ask(progress)
    step = iter(range(args.epochs, 10 * args.epochs))

    def new_epoch_then_ask() -> None:
        progress.feed([epoch(next(step))])
        ask(progress)

    def afresh() -> None:  # each question after a new epoch: no answer kept
        for question in (lambda: progress.main_metric, lambda: progress.logged_metrics,
                         lambda: progress.best_val_accuracy, lambda: progress.logged_metrics,
                         lambda: progress.main_metric):
            progress.epoch_version += 1
            question()

    idle = seconds(lambda: ask(progress), args.repeats)
    fresh_epoch = seconds(new_epoch_then_ask, args.repeats)
    uncached = seconds(afresh, args.repeats)
    result = {
        **provenance(),
        "epochs": args.epochs,
        "runtime": "none (pure Python: no TensorFlow involved)",
        "idle_poll_s": round(idle, 6),
        "poll_after_a_new_epoch_s": round(fresh_epoch, 4),
        "poll_answered_afresh_s": round(uncached, 4),
        "afresh_over_new_epoch": round(uncached / fresh_epoch, 2),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
