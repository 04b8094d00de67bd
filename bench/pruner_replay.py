"""Which Optuna pruner `cifar-tui sweep` should use: replay recorded, unpruned trials under each candidate.

A study swept with `--pruner none` holds every trial's whole validation-accuracy curve (one value per
epoch) and each run folder the seconds every epoch took. Replaying the trials in their order under a
pruner gives, without training again, what that pruner would have cost and lost: the epoch-seconds it
would have run (stage-2 epochs cost far more than stage-1 ones, so seconds, not epochs), and whether
the trial that turned out best would have been cut (and how far below the true best the best surviving
trial is). Epoch-seconds leave out feature extraction, which a trial pays before its first epoch whatever
the pruner does. One ordering of the trials (the study's). Writes JSON to --out.

    python bench/pruner_replay.py --storage sqlite:///bench/sweep_subset.db --study subset-cifar10 --last-trial 14 \
        --out bench/pruner_replay.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import optuna  # noqa: E402

from tui_cifar.runs import reader, store  # noqa: E402


def candidates(stage1_steps: int, last_step: int) -> dict:
    return {
        "none": lambda: optuna.pruners.NopPruner(),
        "median from step 1 (3 startup trials)": lambda: optuna.pruners.MedianPruner(n_startup_trials=3),
        "median from the end of stage 1 (the default)": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=stage1_steps),
        "percentile 25 (3 startup trials)": lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=3),
        "successive halving": lambda: optuna.pruners.SuccessiveHalvingPruner(),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=last_step),
    }


def recorded(storage: str, name: str, last_trial: int | None) -> list[dict]:
    """Complete trials (up to ``last_trial``: those of the unpruned workers), in order: their curve and each
    step's seconds (from the run folder's epoch records)."""
    study = optuna.load_study(study_name=name, storage=storage)
    out = []
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        if last_trial is not None and t.number > last_trial:
            continue
        run_dir = Path(t.user_attrs["run_dir"])
        records, _ = store.read_metrics(run_dir)
        head = int(t.user_attrs["settings"]["epochs_head"])
        seconds = {e["epoch"] + (head if e["stage"] == 2 else 0): float(e.get("epoch_time") or 0.0)
                   for e in reader.epoch_records(records)}
        out.append({"number": t.number, "params": t.params, "value": t.value,
                    "curve": sorted(t.intermediate_values.items()), "seconds": seconds, "epochs_head": head})
    return out


def replay(trials: list[dict], make_pruner) -> dict:
    study = optuna.create_study(direction="maximize", pruner=make_pruner(), sampler=optuna.samplers.RandomSampler(0))
    spent = full = 0.0
    kept = []
    for rec in trials:
        trial = study.ask()
        cut = False
        for step, value in rec["curve"]:
            spent += rec["seconds"].get(step, 0.0)
            trial.report(value, step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                cut = True
                break
        full += sum(rec["seconds"].values())
        if not cut:
            study.tell(trial, max(v for _, v in rec["curve"]))
            kept.append(rec)
    truth = max(trials, key=lambda r: r["value"])
    found = max(kept, key=lambda r: r["value"]) if kept else None
    return {
        "epoch_seconds": round(spent, 1), "fraction_of_unpruned": round(spent / full, 3) if full else None,
        "pruned_trials": len(trials) - len(kept), "best_trial_pruned": truth not in kept,
        "best_found": found["number"] if found else None, "best_found_value": found["value"] if found else None,
        "loss_against_true_best": round(truth["value"] - found["value"], 4) if found else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", action="append", required=True, help="repeat with --study for several studies")
    parser.add_argument("--study", action="append", required=True)
    parser.add_argument("--last-trial", type=int, action="append",
                        help="per study: replay trials up to this number (those run with --pruner none)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from run_bench import provenance

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = {**provenance(), "studies": {}}
    for i, (storage, name) in enumerate(zip(args.storage, args.study)):
        last = args.last_trial[i] if args.last_trial else None
        trials = recorded(storage, name, last)
        if len(trials) < 4:
            print(f"{name}: {len(trials)} complete trials, too few to replay", file=sys.stderr)
            continue
        head = trials[0]["epochs_head"]
        last = max(step for t in trials for step, _ in t["curve"])
        result["studies"][name] = {
            "storage": storage, "trials": [t["number"] for t in trials], "true_best": max(t["value"] for t in trials),
            "pruners": {label: replay(trials, make) for label, make in candidates(head, last).items()},
        }
        for label, row in result["studies"][name]["pruners"].items():
            print(name, f"{label:34}", json.dumps(row))
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
