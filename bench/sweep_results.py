"""What a `cifar-tui sweep` study found, as a results file: every trial's settings, best validation accuracy,
wall time and stage times (from its run folder), the best trials first, with the machine it ran on.

The sweep itself is the product's own command (it replaced bench/preset_sweep.py), e.g.

    nice -n 10 cifar-tui sweep --study full-cifar10 --storage sqlite:///bench/sweep_full.db \\
        --space bench/sweep_space.json --pruner none --budget 40m --data-dir ../shared/datasets
    python bench/sweep_results.py --storage sqlite:///bench/sweep_full.db --study full-cifar10 \\
        --sweep-command "..." --note "..." --out bench/sweep_full.json

Selection is on validation accuracy only: no trial's test set is read here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import optuna  # noqa: E402

from tui_cifar.runs import reader, store  # noqa: E402


def trial_row(t: optuna.trial.FrozenTrial) -> dict:
    run_dir = Path(t.user_attrs.get("run_dir", ""))
    records, _ = store.read_metrics(run_dir) if (run_dir / store.METRICS_LOG).is_file() else ([], [])
    features = next((r for r in records if r.get("type") == "features_done"), {})
    wall = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
    return {
        "number": t.number, "state": t.state.name.lower(), "params": t.params,
        "best_val_accuracy": t.value if t.state == optuna.trial.TrialState.COMPLETE else None,
        "val_accuracy_per_step": sorted(t.intermediate_values.items()),
        "baseline": bool(t.user_attrs.get("baseline")), "host": t.user_attrs.get("host"),
        "run_dir": str(run_dir), "message": t.user_attrs.get("message"),
        "trial_wall_seconds": round(wall, 1) if wall else None,
        "run_wall_seconds": reader.last_wall_time(records),
        "feature_seconds": features.get("seconds"), "feature_cache_hits": features.get("cache_hits"),
        "feature_images": features.get("images"), "runtime": features.get("runtime"),
        "stage_seconds": reader.stage_times(records),
    }


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# Sweep `{result['study']}` ({result['date']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['flags'])}), {m['memory_gib']} GiB, GPU {m['gpu']}; "
             f"Python {m['python']}.", "", f"Sweep: `{result['sweep_command']}`", "",
             f"Results file: `{result['command']}`", ""]
    if result.get("note"):
        lines += [result["note"], ""]
    lines += ["| trial | state | best val acc | trial wall time | features (cache hits) | settings |", "|---|---|---|---|---|---|"]
    for row in result["trials_by_val"]:
        val = f"{row['best_val_accuracy']:.4f}" if row["best_val_accuracy"] is not None else "-"
        wall = f"{row['trial_wall_seconds'] / 60:.1f} min" if row["trial_wall_seconds"] else "-"
        feats = f"{row['feature_seconds']:.0f} s ({row['feature_cache_hits']})" if row["feature_seconds"] is not None else "-"
        settings = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())
        lines.append(f"| {row['number']}{' (defaults)' if row['baseline'] else ''} | {row['state']} | {val} | {wall} | "
                     f"{feats} | {settings} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--sweep-command", required=True, help="the `cifar-tui sweep` command line(s) that made the study")
    parser.add_argument("--note", default="", help="what the reader must know (e.g. the machine was shared)")
    parser.add_argument("--out", type=Path, required=True, help="JSON; a .md beside it")
    args = parser.parse_args()
    from run_bench import provenance

    study = optuna.load_study(study_name=args.study, storage=args.storage)
    rows = [trial_row(t) for t in study.trials]
    by_val = sorted(rows, key=lambda r: -(r["best_val_accuracy"] or -1))
    result = {**provenance(), "study": args.study, "storage": args.storage, "sweep_command": args.sweep_command,
              "note": args.note, "load_average_at_write": os.getloadavg(), "trials_by_val": by_val,
              "finished": study.user_attrs.get("cifar_tui_finished"), "space": study.user_attrs.get("cifar_tui_space"),
              "fixed": study.user_attrs.get("cifar_tui_fixed")}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
